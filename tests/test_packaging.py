"""The wheel: it carries the built-in suites and configs, declares every package harness imports,
and a harness installed from it works from any folder with no checkout in sight.

The install test builds the wheel from a copy of the sources (the checkout's own build/ is left
alone), installs it into a new venv whose only other packages are this environment's (a .pth
file, so no download), and runs the `harness` that venv got, from a folder outside the repo."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"]
BUILTIN = ["tasks", "configs"]


def builtin_files() -> set[str]:
    """Every file of the repository's tasks/ and configs/, as the wheel should name it."""
    return {
        f"harness/_builtin/{path.relative_to(REPO).as_posix()}"
        for name in BUILTIN
        for path in (REPO / name).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def declared() -> set[str]:
    import tomllib  # Python 3.11+, which the test environment is

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    # An engine's extra (llamacpp) counts: harness imports it only for that backend.
    extras = [r for name, reqs in project["optional-dependencies"].items() if name != "test"
              for r in reqs]  # fmt: skip
    return {canonicalize_name(Requirement(r).name) for r in [*project["dependencies"], *extras]}


def imported_modules() -> set[str]:
    """Top-level names of the third-party modules harness/ imports, lazily or not."""
    names = set()
    for path in (REPO / "harness").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "harness"}


def test_every_imported_package_is_declared():
    providers = packages_distributions()
    undeclared = {
        module: providers.get(module)
        for module in imported_modules()
        if not declared() & {canonicalize_name(d) for d in providers.get(module, [module])}
    }
    assert not undeclared, f"imported by harness/ but not in pyproject dependencies: {undeclared}"


def test_every_declared_package_is_pinned():
    pinned = {
        canonicalize_name(line.split("==")[0])
        for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert declared() - pinned == set()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """harness's wheel, built (without network: this environment's setuptools) from a copy."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        shutil.copy2(REPO / name, source / name)
    for name in ["harness", *BUILTIN]:
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(source),
        ],  # fmt: skip
        check=True,
    )
    (built,) = out.glob("harness-*.whl")
    return built


@pytest.mark.slow
def test_wheel_carries_suites_configs_and_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert builtin_files() - names == set()
    assert "harness/_builtin/configs/demo.lock.json" in names
    assert "harness/_builtin/tasks/smoke/data/en.jsonl" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any("__pycache__" in n for n in names)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A new venv with the wheel installed; its other packages are this environment's."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],  # fmt: skip
        check=True,
    )
    return venv


def run_installed(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["COLUMNS"] = "400"  # whole paths in tables
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_installed_wheel_works_outside_the_checkout(installed, tmp_path):
    site = Path(sysconfig.get_path("purelib", vars={"base": str(installed)}))
    where = run_installed(
        installed, tmp_path, "python", "-c", "import harness; print(harness.__file__)"
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    configs = site / "harness" / "_builtin" / "configs"

    tasks = run_installed(installed, tmp_path, "harness", "tasks")
    assert tasks.returncode == 0, tasks.stderr
    (smoke,) = [line for line in tasks.stdout.splitlines() if line.startswith("│ smoke ")]
    assert "│ 192 " in smoke and "local files" in smoke  # its data read from the wheel's copy

    validate = run_installed(installed, tmp_path, "harness", "validate", str(configs / "demo.yaml"))
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert str(configs / "demo.lock.json") in validate.stdout + validate.stderr

    # A built-in config by name, as docs/install.md says.
    by_name = run_installed(installed, tmp_path, "harness", "validate", "demo")
    assert by_name.returncode == 0, by_name.stdout + by_name.stderr
    assert f"{configs / 'demo.yaml'}: valid" in by_name.stdout + by_name.stderr


@pytest.mark.slow
def test_demo_lock_holds_for_the_installed_files(installed, tmp_path):
    """The committed lock names suite files portably (`tasks:tasks/...`), so pinning the
    installed copy again gives the very same names and digests."""
    site = Path(sysconfig.get_path("purelib", vars={"base": str(installed)}))
    configs = site / "harness" / "_builtin" / "configs"
    fresh = tmp_path / "fresh.lock.json"
    done = run_installed(installed, tmp_path, "harness", "lock", str(configs / "demo.yaml"),
                         "--output", str(fresh))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    committed = json.loads((configs / "demo.lock.json").read_text(encoding="utf-8"))
    again = json.loads(fresh.read_text(encoding="utf-8"))
    assert again["suites"] == committed["suites"]
    assert again["models"] == committed["models"]


def test_a_config_name_finds_the_built_in_config(tmp_path, monkeypatch):
    from harness.builtin import CONFIGS, config_argument

    monkeypatch.chdir(tmp_path)
    assert config_argument(Path("demo")) == CONFIGS / "demo.yaml"
    assert config_argument(Path("demo.yaml")) == CONFIGS / "demo.yaml"
    assert (CONFIGS / "demo.lock.json").is_file()
    # A file that exists always wins; a path with folders or an unknown name stays as given.
    (tmp_path / "demo").write_text("name: mine\n")
    assert config_argument(Path("demo")) == Path("demo")
    assert config_argument(Path("sub/demo.yaml")) == Path("sub/demo.yaml")
    assert config_argument(Path("no-such-config")) == Path("no-such-config")

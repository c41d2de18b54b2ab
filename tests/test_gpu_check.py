"""`make gpu-check` (bench/gpu_check.py) runs here, on the CPU with its tiny model and one
language, the same code the GPU check runs: every check that needs no GPU passes, those that do
say SKIP, and the report lands in the file named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.slow
def test_the_gpu_check_runs_on_a_cpu_and_passes(tmp_path):
    out = tmp_path / "gpu-check.txt"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--small"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = out.read_text(encoding="utf-8")
    lines = report.splitlines()
    verdicts = [line.split()[0] for line in lines if line.split()[:1] in (["PASS"], ["FAIL"])]
    assert verdicts and set(verdicts) == {"PASS"}, report
    for check in (
        "selftest qwen2.5",
        "shared-context qwen2.5",
        "native suites: same scores",
        "native suites: items/s",
    ):
        assert any(check in line for line in lines if line.startswith("PASS")), check
    assert "SKIP  device_map auto" in report and "SKIP  preflight GPU figures" in report
    assert "ratio harness/lm-eval" in report
    assert lines[-1].startswith("== PASS in ")
    printed = done.stdout.splitlines()
    assert all(line in printed for line in lines)  # what is printed is what is kept


def test_a_gpu_check_without_a_gpu_fails_with_one_clear_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "torch sees no CUDA device" in done.stdout and "--device cpu --small" in done.stdout


def test_unmet_requirements_names_the_package_the_need_and_the_version(tmp_path, monkeypatch):
    """The report's NOTE lines: a requirement the environment does not meet, read from real
    package metadata on the path (a server's packages next to the carried wheels)."""
    import importlib.metadata

    import numpy

    info = tmp_path / "fakepkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n"
        "Requires-Dist: numpy>=999\nRequires-Dist: not-a-package-here\n"
        'Requires-Dist: pytest; extra == "test"\n',
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import gpu_check

    assert importlib.metadata.version("fakepkg") == "1.0"
    assert gpu_check.unmet_requirements(("fakepkg",)) == [
        "fakepkg needs not-a-package-here, not installed",
        f"fakepkg needs numpy>=999, has {numpy.__version__}",
    ]
    assert gpu_check.unmet_requirements(("lm-eval",)) == []  # this venv is consistent

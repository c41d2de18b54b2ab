"""Where the built-in suites and configs are, however harness was installed.

In the repository they are the top-level `tasks/` and `configs/`, where people read and edit
them; a wheel carries copies of both as `harness/_builtin/` (see setup.py). A checkout or an
editable install has no `_builtin/` and reads the repository's own folders. Either way the
folder of suites is named `tasks`, so lock files name its files the same way (`tasks:tasks/...`)
and `configs/demo.lock.json` verifies against an installed wheel too."""

from __future__ import annotations

from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "_builtin"
"""The built-in folders inside an installed wheel."""
CHECKOUT = Path(__file__).resolve().parents[1]
"""The repository root, when harness runs from a checkout."""


def builtin_dir(name: str) -> Path:
    """`tasks` or `configs`: the wheel's copy when there is one, else the checkout's folder."""
    packaged = PACKAGED / name
    return packaged if packaged.is_dir() else CHECKOUT / name


TASKS = builtin_dir("tasks")
"""The built-in suites (lm-eval task YAML and their data)."""
CONFIGS = builtin_dir("configs")
"""The built-in run configs, with their lock files (`demo.yaml`, `demo.lock.json`, ...)."""


def builtin_configs() -> dict[str, Path]:
    """Name (file stem) -> path of every built-in config."""
    if not CONFIGS.is_dir():
        return {}
    return {path.stem: path for path in sorted(CONFIGS.glob("*.yaml"))}


def config_argument(argument: Path) -> Path:
    """The config file a command line names: the path itself when it exists or looks like a
    path, else the built-in config of that name (`harness run demo` runs
    `<CONFIGS>/demo.yaml`, with its lock file beside it)."""
    if argument.exists() or len(argument.parts) != 1:
        return argument
    return builtin_configs().get(argument.name.removesuffix(".yaml"), argument)

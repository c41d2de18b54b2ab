"""What a task needs besides its data, checked before any model loads.

Offline, three things in lm-eval tasks fail late (after the model has loaded) or reach for the
network:

- a metric lm-eval does not know, or one marked `hf_evaluate: true`, is fetched with
  `evaluate.load(name)` from the Hugging Face hub;
- a task's Python code calls `evaluate.load(...)` (french_bench's ROUGE) or
  `nltk.download(...)` (ifeval's `punkt_tab`, at import time);
- a task's Python code imports a package that is not installed (ifeval's `langdetect`), at
  the top of the module, inside a `try:` whose handler raises again (japanese_leaderboard's
  emoji, neologdn, fugashi), or inside a function the task calls.

`task_requirements` reads the task's metric list and, statically, the source of the Python
modules the task names with `!function` and the task modules those import. What is already
on this machine (an evaluate module in its cache, an NLTK resource on `nltk.data.path`) is fine;
the rest is returned, to be refused with a message that says what to install. Imports are
resolved with `importlib.util.find_spec` on their top-level name, which executes nothing.
`possible_requirements` returns the imports that may or may not run (a `try:` with a fallback,
a function the task does not name, an `if` at module level), for `validate` to mention.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.suites.imports import import_sites, install_hint

_NLTK_CATEGORIES = (
    "tokenizers",
    "corpora",
    "taggers",
    "chunkers",
    "models",
    "stemmers",
    "grammars",
    "sentiment",
    "misc",
    "help",
)


@dataclass(frozen=True)
class Requirement:
    """Something a task would fetch or import at run time that is not on this machine."""

    task: str
    kind: str
    """`metric` (evaluate.load of a metric name), `nltk` (nltk.download) or `package`."""
    name: str
    origin: str
    """Where it is asked for: the task's metric list, or a Python file."""
    place: str = ""
    """For an import: where in the file (`at import`, `in a try block that re-raises`, `in
    function f`)."""

    def explain(self) -> str:
        if self.kind == "metric":
            return (
                f"task '{self.task}' scores with metric '{self.name}', which lm-eval would fetch "
                f"from the Hugging Face hub with evaluate.load('{self.name}') ({self.origin}). "
                f'Load it once on a machine with network (python -c "import evaluate; '
                f"evaluate.load('{self.name}')\") and copy its evaluate_modules cache "
                "(HF_MODULES_CACHE) here, or use a task whose metric is built in."
            )
        if self.kind == "nltk":
            return (
                f"task '{self.task}' calls nltk.download('{self.name}') ({self.origin}). "
                f"Download it on a machine with network (python -m nltk.downloader {self.name}) "
                "and copy the nltk_data directory here (to ~/nltk_data, or set NLTK_DATA)."
            )
        where = f", {self.place}" if self.place else ""
        return (
            f"task '{self.task}' imports '{self.name}' ({self.origin}{where}), which is not "
            f"installed: {install_hint(self.name)}."
        )


def task_requirements(task: str, cfg: dict[str, Any]) -> list[Requirement]:
    """What task `task` (its resolved YAML config `cfg`) needs and this machine lacks."""
    wanted: list[Requirement] = []
    if cfg.get("process_results") is None:
        for metric in cfg.get("metric_list") or []:
            name = metric.get("metric") if isinstance(metric, dict) else None
            if isinstance(name, str) and not _is_function_ref(name):
                if metric.get("hf_evaluate") is True or not _registered_metric(name):
                    wanted.append(Requirement(task, "metric", name, "its metric_list"))
    for module, functions in _task_modules(cfg).items():
        wanted += _module_requirements(task, module, functions)
    return [r for r in dict.fromkeys(wanted) if not _present(r)]


def possible_requirements(task: str, cfg: dict[str, Any]) -> list[Requirement]:
    """Packages the task's modules import where the import may never run (a `try:` with a
    fallback, a function the task does not name, under an `if`) and that are not installed."""
    found = []
    for module, functions in _task_modules(cfg).items():
        tree = _parse(module)
        for name, place, needed in import_sites(tree, functions) if tree else ():
            root = name.split(".")[0]
            if not needed and not (module.parent / f"{root}.py").is_file():
                found.append(Requirement(task, "package", root, str(module), place))
    return [r for r in dict.fromkeys(found) if not _present(r)]


def _is_function_ref(name: str) -> bool:
    """`!function utils.f` in a task YAML is read as '<task dir>/utils.f'."""
    return os.sep in name


def _registered_metric(name: str) -> bool:
    import lm_eval.api.metrics  # noqa: F401  (fills the registry)
    from lm_eval.api.registry import metric_registry

    return name in metric_registry


def _task_modules(cfg: dict[str, Any]) -> dict[Path, set[str] | None]:
    """The Python files a task config names with `!function`, with the functions it names in
    each; and the task modules they import (None: no function named, only import-time code)."""
    found: dict[Path, set[str] | None] = {}
    for value in _strings(cfg):
        if _is_function_ref(value):
            stem, _, function = value.rpartition(".")
            module = Path(stem + ".py")
            if module.is_file():
                found.setdefault(module, set()).add(function)  # type: ignore[union-attr]
    for module in list(found):
        queue = [module]
        while queue:  # imports of imports
            for imported in _imported_task_modules(queue.pop()):
                if imported not in found:
                    found[imported] = None
                    queue.append(imported)
    return found


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _imported_task_modules(module: Path) -> list[Path]:
    """Modules of lm-eval's tasks package, or siblings of `module`, that `module` imports."""
    tasks_root = _lm_eval_tasks_root()
    out = []
    for name in _imports(module):
        parts = name.split(".")
        candidates = [module.parent.joinpath(*parts).with_suffix(".py")]
        if parts[:2] == ["lm_eval", "tasks"] and len(parts) > 2:
            candidates.append(tasks_root.joinpath(*parts[2:]).with_suffix(".py"))
        out += [c for c in candidates if c.is_file()]
    return out


def _imports(module: Path) -> list[str]:
    """Dotted names imported by a module (`from a.b import c` gives a.b and a.b.c)."""
    tree = _parse(module)
    names: list[str] = []
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names += [base] if base else []
            names += [f"{base}.{a.name}" if base else a.name for a in node.names]
    return names


def _module_requirements(task: str, module: Path, functions: set[str] | None) -> list[Requirement]:
    tree = _parse(module)
    if tree is None:
        return []
    origin = str(module)
    wanted = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            arg = node.args[0] if node.args else None
            literal = arg.value if isinstance(arg, ast.Constant) else None
            if isinstance(owner, ast.Name) and isinstance(literal, str):
                if node.func.attr == "load" and owner.id in ("evaluate", "hf_evaluate"):
                    wanted.append(Requirement(task, "metric", literal, origin))
                elif node.func.attr == "download" and owner.id == "nltk":
                    wanted.append(Requirement(task, "nltk", literal, origin))
    for name, place, needed in import_sites(tree, functions):
        root = name.split(".")[0]
        if needed and not (module.parent / f"{root}.py").is_file():
            wanted.append(Requirement(task, "package", root, origin, place))
    return wanted


def _parse(module: Path) -> ast.AST | None:
    try:
        return ast.parse(module.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _present(requirement: Requirement) -> bool:
    if requirement.kind == "metric":
        return _evaluate_cached(requirement.name)
    if requirement.kind == "nltk":
        return _nltk_has(requirement.name)
    return importlib.util.find_spec(requirement.name) is not None


def _evaluate_cached(name: str) -> bool:
    """Whether evaluate.load(name) works offline: a local script, or the module in its cache."""
    if Path(name).exists():
        return True
    from evaluate import config

    cached = Path(config.HF_MODULES_CACHE) / "evaluate_modules" / "metrics"
    folder = cached / f"evaluate-metric--{name.replace('/', '--')}"
    return any(folder.glob(f"*/{name.split('/')[-1]}.py"))


def _nltk_has(resource: str) -> bool:
    import nltk

    for root in nltk.data.path:
        for category in _NLTK_CATEGORIES:
            base = Path(root) / category / resource
            if base.exists() or base.with_suffix(".zip").exists():
                return True
    return False


def _lm_eval_tasks_root() -> Path:
    spec = importlib.util.find_spec("lm_eval.tasks")
    return Path(spec.origin).parent if spec and spec.origin else Path()

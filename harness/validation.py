"""`validate`: everything `harness run` would refuse, or fail on before scoring, found without
loading a model.

`run` checks in stages and stops at the first refusal; `validate` runs every check and keeps
going, so one call lists all that is wrong: the config's schema, each model (on this machine,
runnable by its engine, covered by the lock file, fitting the memory preflight), each suite
(known, its data here and complete for the configs and splits its tasks read, the packages its
task code imports), each gate (its suites, tasks, languages and metric exist), the baseline and
the sandbox. It reuses the very checks `run` makes, so the two cannot disagree; what it cannot
know without loading a model is listed in the report's `unchecked`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, computed_field

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.config import RunConfig

UNCHECKED = [
    "whether each model's weights load and generate (nothing is loaded)",
    "file digests against the lock file (run hashes every file before loading)",
    "the rows of hub dataset copies (their configs and splits are resolved, not read)",
]
"""What only `run` can find out: said in every report, so that `ok` is not read as more."""


class Finding(BaseModel):
    """One thing validate found: an error (`run` would refuse or fail before scoring), a
    warning (it may fail, or a check was partial), or information (what was found)."""

    level: Literal["error", "warning", "info"]
    subject: str
    """What it is about: `config`, `model ID`, `suite NAME`, `gate LABEL`, `lock`, ..."""
    message: str
    fix: str | None = None
    """What to do about it, when the message does not already say."""


class ValidationReport(BaseModel):
    """The result of `validate`: every finding, and what could not be checked."""

    config: str
    """The config file validated (or the config's name when it was given as a record)."""
    findings: list[Finding] = []
    unchecked: list[str] = []

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @computed_field  # in the JSON too
    @property
    def ok(self) -> bool:
        """No errors: `run` would start scoring (warnings may still matter)."""
        return not self.errors

    @computed_field
    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 2

    def __repr__(self) -> str:
        return (
            f"ValidationReport({self.config!r}, ok={self.ok}, errors={len(self.errors)}, "
            f"warnings={len(self.warnings)})"
        )

    __str__ = __repr__

    def add(self, level, subject: str, message: str, fix: str | None = None) -> None:
        self.findings.append(Finding(level=level, subject=subject, message=message, fix=fix))


def validate(
    config: str | Path | RunConfig,
    *,
    model_paths: list[str] | tuple[str, ...] = (),
    data_dir: str | Path | None = None,
    preflight: bool = True,
) -> ValidationReport:
    """Check a config (a file, or a loaded `RunConfig`) as `run` would, without loading a model.

    `model_paths` are `ID=PATH` substitutions and `data_dir` overrides the config's, as
    `run --model-path/--data-dir` take them; `preflight=False` skips the memory check, as
    `run --no-preflight` does (it reads each model's config, and a GGUF's whole header).
    Bad input is reported, not raised."""
    from harness.config import RunConfig, load_config
    from harness.offline import apply_offline_env, refuse_online_settings
    from harness.runner import substitute_paths

    config_file = None if isinstance(config, RunConfig) else Path(config).expanduser()
    report = ValidationReport(config=str(config_file or config.name))
    report.unchecked = list(UNCHECKED)
    try:
        loaded = config if isinstance(config, RunConfig) else load_config(config_file)
        loaded = substitute_paths(loaded, list(model_paths))
    except HarnessError as exc:
        report.add("error", "config", str(exc))
        report.unchecked.insert(0, "models, suites and gates (the config could not be read)")
        return report
    if data_dir is not None:
        loaded = loaded.model_copy(update={"data_dir": Path(data_dir).expanduser().resolve()})
    try:
        refuse_online_settings()
    except HarnessError as exc:
        report.add("error", "environment", str(exc))
    apply_offline_env()  # datasets and the hub client read them; validate never goes online
    sources = _check_models(loaded, config_file, report)
    catalog, infos = _check_suites(loaded, report)
    from harness.validation_gates import check_gates

    check_gates(loaded, catalog, infos, report)
    _check_lock(loaded, config_file, report)
    _check_baseline(loaded, report)
    if preflight:
        _check_preflight(loaded, sources, report)
    else:
        report.unchecked.append("the memory preflight (skipped, as `run --no-preflight` does)")
    _check_sandbox(loaded, report)
    _check_isolation(loaded, report)
    return report


def _check_models(config: RunConfig, config_file: Path | None, report) -> dict:
    """Each model: on this machine, and runnable by its engine here."""
    from harness.errors import ModelNotFoundError
    from harness.models import resolve_model_source
    from harness.models.engines import engine_problems

    sources = {}
    for spec in config.models:
        subject = f"model {spec.id}"
        try:
            source = resolve_model_source(spec)
        except ModelNotFoundError as exc:
            report.add(
                "error",
                subject,
                f"not on this machine: {exc}",
                "`harness run` would skip it. Copy it here, or substitute a local copy with "
                "--model-path ID=PATH.",
            )
            continue
        except HarnessError as exc:  # found, but refused (remote code, a broken config, ...)
            report.add("error", subject, str(exc))
            continue
        sources[spec.id] = source
        size = sum(p.stat().st_size for p in source.weight_files)
        report.add("info", subject, f"{source.describe()} ({size / 2**20:,.0f} MiB)")
        try:
            problems = engine_problems(spec, source, config_file)
        except HarnessError as exc:
            problems = [str(exc)]
        for problem in problems:
            report.add(
                "error",
                subject,
                f"cannot run here: {problem}",
                "`harness run` would refuse the run.",
            )
    return sources


def _check_suites(config: RunConfig, report) -> tuple:
    """Each suite as `run` checks it (its name, task files, data, imports), one at a time so
    that every broken suite is named; plus imports that may fail while scoring."""
    from harness.suites import SuiteCatalog
    from harness.suites.requirements import possible_requirements

    try:
        catalog = SuiteCatalog(config.task_paths, config.data_dir)
    except HarnessError as exc:
        report.add("error", "config", str(exc))
        return None, {}
    infos = {}
    for name in config.suites:
        subject = f"suite {name}"
        try:
            info = catalog.check([name])[0]
        except HarnessError as exc:
            report.add("error", subject, str(exc))
            manager = catalog.manager_for([name])
            if name not in manager.task_index:
                continue
            try:  # still needed to check the gates that name its tasks
                info = catalog.describe(name, manager)
            except HarnessError:
                continue
        else:
            items = f", {info.total_items} items" if info.items else ""
            where = sorted({loc.where for loc in info.sources.values() if loc.where})
            data = f", data in {', '.join(where)}" if where else ""
            report.add("info", subject, f"{info.kind}, {len(info.tasks)} task(s){items}{data}")
        infos[name] = info
        index = catalog.manager_for([name]).task_index
        for task in info.tasks:
            entry = index.get(task)
            for maybe in possible_requirements(task, (entry.cfg or {}) if entry else {}):
                report.add(
                    "warning",
                    subject,
                    f"task '{task}' may import '{maybe.name}' ({maybe.origin}, {maybe.place}), "
                    "which is not installed; if that code runs, the suite fails while scoring",
                    _install_fix(maybe.name),
                )
    return catalog, infos


def _install_fix(module: str) -> str:
    from harness.suites.imports import install_hint

    return install_hint(module)


def _check_lock(config: RunConfig, config_file: Path | None, report) -> None:
    """The lock file `run` will check against must pin every model and suite."""
    if config_file is None:
        report.unchecked.append("the lock file (the config was given as a record, not a file)")
        return
    from harness.lock import lock_path, read_lock

    path = lock_path(config_file)
    if not path.is_file():
        report.add("info", "lock", f"none ({path.name} would pin the files: `harness lock`)")
        return
    try:
        lock = read_lock(path)
    except HarnessError as exc:
        report.add("error", "lock", str(exc))
        return
    missing = [f"model {m.id}" for m in config.models if m.id not in lock.models]
    missing += [f"suite {name}" for name in config.suites if name not in lock.suites]
    if missing:
        report.add(
            "error",
            "lock",
            f"{path} does not pin {', '.join(missing)}: `harness run` would refuse.",
            "Run `harness lock` again.",
        )
    else:
        report.add("info", "lock", f"{path} (run checks every file against it before loading)")


def _check_baseline(config: RunConfig, report) -> None:
    """The baseline of `max_drop` gates is read before anything runs; a bad one is refused."""
    if config.baseline is None:
        return
    from harness.gates import load_baseline

    try:
        found = load_baseline(config.baseline, config.output_dir, config.name, current=None)
    except HarnessError as exc:
        report.add("error", "baseline", str(exc))
        return
    if found is None:
        report.add(
            "warning",
            "baseline",
            f"no earlier complete run of '{config.name}' under {config.output_dir}: max_drop "
            "gates will have nothing to compare with",
        )
    else:
        report.add("info", "baseline", str(found.run.directory))


def _check_preflight(config: RunConfig, sources: dict, report) -> None:
    """The memory preflight `run` enforces (unless --no-preflight), from the models' configs."""
    if not sources:
        return
    from harness.capacity.hardware import detect_hardware
    from harness.capacity.preflight import check_fits, plan_models

    present = config.model_copy(update={"models": [m for m in config.models if m.id in sources]})
    try:
        plans = plan_models(present, detect_hardware(), sources=sources)
        check_fits(plans)
    except HarnessError as exc:
        report.add(
            "error",
            "preflight",
            str(exc),
            "`harness run --no-preflight` loads the models anyway; `harness plan` shows the "
            "memory each needs.",
        )
        return
    except Exception as exc:  # noqa: BLE001  (run's preflight would stop on it too)
        report.add(
            "warning",
            "preflight",
            f"could not plan the memory: {type(exc).__name__}: {exc}",
            "`harness run` would stop at the same step; `harness plan` shows more.",
        )
        report.unchecked.append("the memory preflight (it failed, see the warning)")
        return
    for plan in plans:
        if plan.verdict != "fits":
            report.add("warning", f"model {plan.model}", plan.explain())


def _check_sandbox(config: RunConfig, report) -> None:
    if not config.offline.sandbox:
        report.add("warning", "sandbox", "off in this config (NOT SANDBOXED)")
        return
    from harness.sandbox import sandbox_problem

    if problem := sandbox_problem():
        report.add("error", "sandbox", f"the sandbox cannot run here: {problem}")
    else:
        report.add("info", "sandbox", "available (each model will run in its own)")


def _check_isolation(config: RunConfig, report) -> None:
    """Offline mode `isolate` without the sandbox re-runs `run` under `unshare`; probe it as
    `rerun_isolated` does (a `true` in the namespace), so a refusal is known now."""
    if config.offline.mode != "isolate" or config.offline.sandbox:
        return
    import os
    import shutil
    import subprocess

    unshare = shutil.which("unshare")
    prefixes = [[unshare, "-r", "-n"]] + ([[unshare, "-n"]] if os.geteuid() == 0 else [])
    if unshare is not None and any(
        subprocess.run([*prefix, "true"], capture_output=True).returncode == 0
        for prefix in prefixes
    ):
        report.add("info", "isolation", "a private network namespace is available (unshare)")
        return
    level = "warning" if config.offline.isolation_fallback else "error"
    report.add(
        level,
        "isolation",
        "offline mode isolate cannot get a private network namespace here (`unshare -n` "
        + ("is not installed" if unshare is None else "was refused")
        + ")"
        + (
            ": the run will go on without one, and its report will say so"
            if level == "warning"
            else ": `harness run` would refuse"
        ),
        None
        if level == "warning"
        else "Run as root, enable unprivileged user namespaces, or set `offline: {mode: "
        "isolate, isolation_fallback: true}`.",
    )

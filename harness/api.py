"""The Python API beside `run`: `plan`, `compare`, `attest` and `lock`, each what the command of
the same name does, without printing. Paths may be `str` or `Path`; each returns a typed record
with a short repr (the details are its fields).

    >>> import harness
    >>> harness.plan("configs/demo.yaml")
    CapacityPlan(hardware='...', 1 fits)

Functions that read model or suite files go offline first, as `run` does: the offline
variables are set and the network guard is installed for the rest of the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import RunConfig, load_config
from harness.offline import go_offline_for_reading

__all__ = [
    "Attestation",
    "CapacityPlan",
    "Comparison",
    "LockResult",
    "attest",
    "compare",
    "lock",
    "plan",
]


def _config(
    config: RunConfig | str | Path, model_paths: Sequence[str]
) -> tuple[RunConfig, Path | None]:
    from harness.runner import substitute_paths

    if isinstance(config, RunConfig):
        return substitute_paths(config, list(model_paths)), None
    path = Path(config)
    return substitute_paths(load_config(path), list(model_paths)), path


@dataclass(frozen=True)
class CapacityPlan:
    """`plan`: this machine's hardware and each model's memory plan (`ModelPlan`), decided from
    the model's config without loading it."""

    hardware: object
    """`harness.capacity.hardware.Hardware`."""
    models: list = field(default_factory=list)
    """One `harness.capacity.preflight.ModelPlan` per model of the config."""
    engine_problems: dict[str, list[str]] = field(default_factory=dict)
    """Per model id, why its engine cannot run here (empty when it can)."""

    @property
    def fits(self) -> bool:
        """Every model's weights can load on its device (an unknown architecture does not
        count as fitting)."""
        return all(p.fits is True for p in self.models)

    def __repr__(self) -> str:
        from harness.reports.console import hardware_line

        verdicts: dict[str, int] = {}
        for p in self.models:
            verdicts[p.verdict] = verdicts.get(p.verdict, 0) + 1
        counts = ", ".join(f"{n} {v}" for v, n in verdicts.items())
        return f"CapacityPlan(hardware={hardware_line(self.hardware)!r}, {counts or 'no model'})"


def plan(
    config: RunConfig | str | Path,
    *,
    model_paths: Sequence[str] = (),
    context: int | None = None,
) -> CapacityPlan:
    """Will each model of `config` fit this machine? `model_paths` are `ID=PATH` substitutions
    (`--model-path`); `context` is the tokens per sequence to plan for (`--context`)."""
    from harness.capacity.hardware import detect_hardware
    from harness.capacity.preflight import plan_models
    from harness.models.engines import engine_problems

    loaded, config_file = _config(config, model_paths)
    go_offline_for_reading(loaded.offline.allow_loopback)
    hardware = detect_hardware()
    plans = plan_models(loaded, hardware, context=context)
    problems = {
        spec.id: list(engine_problems(spec, config_file=config_file)) for spec in loaded.models
    }
    return CapacityPlan(hardware, plans, {k: v for k, v in problems.items() if v})


@dataclass(frozen=True)
class Comparison:
    """`compare`: run B against run A, one `harness.compare.TaskComparison` per task."""

    run_a: Path
    run_b: Path
    rows: list = field(default_factory=list)

    @property
    def worse(self) -> list:
        """The tasks on which B is significantly worse than A."""
        return [r for r in self.rows if r.verdict == "worse"]

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.verdict] = counts.get(row.verdict, 0) + 1
        verdicts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no shared task"
        return f"Comparison(run_a={str(self.run_a)!r}, run_b={str(self.run_b)!r}, {verdicts})"


def compare(
    run_a: str | Path,
    run_b: str | Path,
    *,
    model_a: str | None = None,
    model_b: str | None = None,
    alpha: float = 0.05,
) -> Comparison:
    """Compare two finished runs per model, suite and task, with a paired test where the items
    are the same (B against A)."""
    from harness.compare import compare_runs, load_run

    a, b = Path(run_a), Path(run_b)
    return Comparison(a, b, compare_runs(load_run(a), load_run(b), model_a, model_b, alpha))


@dataclass(frozen=True)
class Attestation:
    """`attest`: every file a run recorded, compared with the file on disk now
    (`harness.attest.FileCheck`), and the signature check when a public key was given
    (`harness.signing.VerifyResult`)."""

    run_dir: Path
    files: list = field(default_factory=list)
    signature: object | None = None

    @property
    def changed(self) -> list:
        """The files that no longer match (changed or missing)."""
        return [c for c in self.files if c.status != "match"]

    @property
    def ok(self) -> bool:
        """Every file matches and, if checked, the signature verifies over unchanged files."""
        return not self.changed and (self.signature is None or self.signature.ok)

    def __repr__(self) -> str:
        signed = "" if self.signature is None else f", signature_ok={self.signature.ok}"
        return (
            f"Attestation(run_dir={str(self.run_dir)!r}, files={len(self.files)}, "
            f"changed={len(self.changed)}{signed})"
        )


def attest(run_dir: str | Path, *, public_key: str | Path | None = None) -> Attestation:
    """Re-check a finished run: does every file it read still have its recorded sha256? With
    `public_key`, also verify the run's signed attestation and every file it names."""
    from harness.attest import attest as check_files

    directory = Path(run_dir)
    signature = None
    if public_key is not None:
        from harness.signing import verify_run

        signature = verify_run(directory, Path(public_key))
    return Attestation(directory, check_files(directory), signature)


@dataclass(frozen=True)
class LockResult:
    """`lock`: the lock file written, and what it pins (`harness.lock.LockFile`)."""

    path: Path
    lock: object

    def __repr__(self) -> str:
        return (
            f"LockResult(path={str(self.path)!r}, models={len(self.lock.models)}, "
            f"suites={len(self.lock.suites)})"
        )


def lock(
    config: str | Path,
    *,
    model_paths: Sequence[str] = (),
    data_dir: str | Path | None = None,
    output: str | Path | None = None,
    say=lambda message: None,
) -> LockResult:
    """Pin every file of the config's models and suites: write their sha256 to `output`
    (default `<config>.lock.json` beside the config). Every model must be on this machine."""
    from harness.environment import package_versions
    from harness.lock import build_lock, lock_path, write_lock
    from harness.models import resolve_model_source
    from harness.pins import model_pins, suite_pins
    from harness.suites import SuiteCatalog

    loaded, config_file = _config(Path(config), model_paths)
    if data_dir is not None:
        loaded = loaded.model_copy(update={"data_dir": Path(data_dir).expanduser().resolve()})
    go_offline_for_reading(loaded.offline.allow_loopback)
    suites = SuiteCatalog(loaded.task_paths, loaded.data_dir).check(loaded.suites)
    suite_entries = {info.name: suite_pins(info, loaded) for info in suites}
    models = {}
    for spec in loaded.models:
        source = resolve_model_source(spec)  # an absent model is an error here
        say(f"{spec.id}: sha256 of the files of {source.describe()}")
        models[spec.id] = model_pins(spec, source)
    target = Path(output) if output is not None else lock_path(config_file)
    version = package_versions().get("harness")
    written = build_lock(config_file, models, suite_entries, version)
    write_lock(target, written)
    return LockResult(target, written)

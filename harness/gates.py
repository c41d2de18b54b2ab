"""Gates: the config's decisions, judged on a run's results.

Every gate applies to every model it names (default: all) and every task it selects, and gives
one `GateCheck` per model and task with the numbers: the score and its standard error, what
it was held against (the minimum, the reference model's score, the baseline's score), the
threshold, the margin, and the noise allowance. A check is

- `pass`: the score meets the threshold;
- `within noise`: it falls short by no more than `noise_z` standard errors (of the score, or of
  the difference of the two scores compared): not a failure, but said;
- `fail`: it falls short by more;
- `missing`: the model or task has no score (it failed, or was skipped): a failure;
- `not judged`: a `max_drop` gate with no baseline score, or a `relative_to` model not in the
  run: said, not a failure.

A run with a `fail` or `missing` check exits with code 4.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.config import Gate, RunConfig
from harness.errors import BadInputError, ConfigError
from harness.record import RunRecord, TaskResult, as_record

FAILING = ("fail", "missing")


@dataclass
class GateCheck:
    """One gate judged for one model on one task."""

    gate: str
    rule: str
    model: str
    suite: str
    task: str
    language: str | None
    metric: str
    value: float | None
    stderr: float | None
    reference: float | None
    """The minimum, the reference model's score, or the baseline's score."""
    reference_stderr: float | None
    threshold: float | None
    margin: float | None
    """Score minus threshold: negative when short."""
    noise: float | None
    """How far short a score may be and still be within noise."""
    status: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_gates(
    config: RunConfig, results: dict | RunRecord, baseline: dict | RunRecord | None = None
) -> list[GateCheck]:
    """Every check of every gate of `config` on a run's record (and a baseline's)."""
    record = as_record(results)
    base = as_record(baseline) if baseline is not None else None
    checks = []
    for gate in config.gates:
        checks += _judge(gate, config, record, base)
    return checks


def summary(checks: list[GateCheck]) -> dict[str, Any]:
    """Counts by status, and the verdict per model and language."""
    counts: dict[str, int] = {}
    verdicts: dict[str, dict[str, str]] = {}
    order = ["pass", "not judged", "within noise", "fail", "missing"]
    for check in checks:
        counts[check.status] = counts.get(check.status, 0) + 1
        per_model = verdicts.setdefault(check.model, {})
        key = check.language or check.suite
        current = per_model.get(key, "pass")
        if order.index(check.status) > order.index(current):
            current = check.status
        per_model[key] = current
    return {
        "passed": not any(c.status in FAILING for c in checks),
        "counts": counts,
        "verdicts": verdicts,
    }


def load_baseline(
    reference: str, results_root: Path, config_name: str, current: Path | None
) -> RunRecord | None:
    """A baseline run's record: from a run directory or file, or `previous` (the
    latest earlier finished run of this config in the results index). None when `previous` has
    no earlier run."""
    if reference == "previous":
        from harness.history import previous_run

        run_dir = previous_run(results_root, config_name, exclude=current)
        if run_dir is None:
            return None
        path = run_dir / "results.json"
    else:
        path = Path(reference)
        path = path / "results.json" if path.is_dir() else path
    from harness.record import load_record

    if not path.is_file():
        raise ConfigError(
            f"baseline {reference}: no results.json at {path}. Give a run directory of an "
            "earlier run, or `previous`."
        )
    try:
        return load_record(path)
    except BadInputError as exc:
        raise ConfigError(f"baseline {reference}: {exc}") from None


def _judge(gate: Gate, config: RunConfig, results: RunRecord, baseline: RunRecord | None):
    reference_model = None
    if gate.rule == "relative":
        reference_model = (
            config.primary_model if gate.relative_to == "primary" else gate.relative_to
        )
    run_models = list(results.models)
    models = [m for m in (gate.models or run_models) if m != reference_model]
    subjects = [s for s in _subjects(gate, results) if _applies(gate, results, *s[:2])]
    if not subjects:
        # A gate that selects nothing would pass in silence: a misspelt task or metric.
        yield GateCheck(
            gate=gate.label(), rule=gate.rule, model="—", suite="—", task="—", language=None,
            metric=gate.metric or "", value=None, stderr=None, reference=None,
            reference_stderr=None, threshold=None, margin=None, noise=None, status="missing",
            detail="the gate selects no scored task of this run"
            + (f" with metric {gate.metric}" if gate.metric else ""),
        )  # fmt: skip
        return
    for suite, task, language in subjects:
        for model in models:
            value, stderr, metric = _score(results, model, suite, task, gate.metric)
            check = dict(
                gate=gate.label(),
                rule=gate.rule,
                model=model,
                suite=suite,
                task=task,
                language=language,
                metric=metric or gate.metric or "",
                value=value,
                stderr=stderr,
            )
            yield _decide(gate, config, check, results, baseline, reference_model)


def _decide(gate, config, check, results, baseline, reference_model) -> GateCheck:
    z = config.noise_z
    none = dict(reference=None, reference_stderr=None, threshold=None, margin=None, noise=None)
    if check["value"] is None:
        why = _why_missing(results, check["model"], check["suite"])
        return GateCheck(**check, **none, status="missing", detail=why)
    value, stderr = check["value"], check["stderr"] or 0.0
    metric_name = check["metric"] or None
    if gate.rule == "min":
        reference, reference_stderr = gate.min, None
        threshold, noise = gate.min, z * stderr
    elif gate.rule == "relative":
        if reference_model not in results.models:
            why = f"reference model {reference_model} is not in this run"
            return GateCheck(**check, **none, status="not judged", detail=why)
        reference, reference_stderr, _ = _score(
            results, reference_model, check["suite"], check["task"], metric_name
        )
        if reference is None:
            why = f"reference model {reference_model} has no score here"
            return GateCheck(**check, **none, status="missing", detail=why)
        threshold = gate.min_ratio * reference
        noise = z * math.hypot(stderr, gate.min_ratio * (reference_stderr or 0.0))
    else:
        found = _score(baseline, check["model"], check["suite"], check["task"], metric_name)
        reference, reference_stderr, _ = found if baseline else (None, None, None)
        if reference is None:
            detail = "no baseline run" if baseline is None else "no score in the baseline run"
            return GateCheck(**check, **none, status="not judged", detail=detail)
        threshold = reference - gate.max_drop
        noise = z * math.hypot(stderr, reference_stderr or 0.0)
    margin = value - threshold
    if margin >= 0:
        status, detail = "pass", f"{value:.4g} meets {threshold:.4g} by {margin:.4g}"
    elif -margin <= noise:
        status = "within noise"
        detail = f"{value:.4g} is {-margin:.4g} below {threshold:.4g}, within {noise:.4g} of noise"
    else:
        status = "fail"
        detail = f"{value:.4g} is {-margin:.4g} below {threshold:.4g} (noise {noise:.4g})"
    return GateCheck(
        **check,
        reference=reference,
        reference_stderr=reference_stderr,
        threshold=threshold,
        margin=margin,
        noise=noise,
        status=status,
        detail=detail,
    )


def _subjects(gate: Gate, results: RunRecord):
    """(suite, task, language) triples the gate selects, from the run's suites."""
    for suite, info in results.suites.items():
        languages = info.languages
        leaves = info.tasks
        if gate.task is not None:
            picked = [t for t in [suite, *leaves] if t in gate.names("task")]
        elif gate.language is not None:
            picked = [t for t in leaves if languages.get(t) in gate.names("language")]
        elif suite in gate.names("suite"):
            picked = [suite] if _suite_has_score(results, suite) else leaves
        else:
            picked = []
        for task in dict.fromkeys(picked):
            yield suite, task, languages.get(task)


def _applies(gate: Gate, results: RunRecord, suite: str, task: str) -> bool:
    """Whether a selected task has the gate's metric: a task scored without it (the short
    answers of a language, for an accuracy gate) is out of the gate's scope. A task nobody
    scored stays in scope, and is missing."""
    if gate.metric is None:
        return True
    scored = [_task(results, model, suite, task).metrics for model in results.models]
    scored = [metrics for metrics in scored if metrics]
    return not scored or any(k.split(",")[0] == gate.metric for m in scored for k in m)


def _suite_has_score(results: RunRecord, suite: str) -> bool:
    return any(_task(results, model, suite, suite).metrics for model in results.models)


def _task(results: RunRecord | None, model: str, suite: str, task: str) -> TaskResult:
    """A model's result on a task; an empty one where it has none."""
    entry = results.models.get(model) if results is not None else None
    scored = entry.suites.get(suite) if entry is not None else None
    found = scored.tasks.get(task) if scored is not None else None
    return found if found is not None else TaskResult()


def _score(results: RunRecord | None, model: str, suite: str, task: str, metric: str | None):
    """(value, stderr, metric name) of a task's score, or Nones."""
    from harness.evaluation import primary_metric

    metrics = _task(results, model, suite, task).metrics
    if metric is None:
        key, value, stderr = primary_metric(metrics)
        return value, stderr, key.split(",")[0] or None
    key = next((k for k in metrics if k.split(",")[0] == metric), None)
    if key is None:
        return None, None, metric
    name, _, filt = key.partition(",")
    return _number(metrics[key]), _number(metrics.get(f"{name}_stderr,{filt}")), name


def _why_missing(results: RunRecord, model: str, suite: str) -> str:
    entry = results.models.get(model)
    if entry is None:
        return "model not in this run"
    if entry.status in ("skipped", "failed") and not entry.suites:
        return f"model {entry.status}: {entry.error or ''}".strip()
    suite_entry = entry.suites.get(suite)
    if suite_entry is None:
        return "suite not scored"
    if suite_entry.status == "failed":
        return f"suite failed: {suite_entry.error or ''}"
    return "no such metric in the results"


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None

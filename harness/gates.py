"""Gates: the config's decisions, judged on a run's results with honest statistics.

Every gate applies to every model it names (default: all) and every task it selects, and gives
one `GateCheck` per model and task. Each check rests on a confidence interval
(`decision.confidence`, 95% by default) of its margin, the score minus the threshold:

- for `min` and `above_chance`, the interval of the score: Wilson for proportions (accuracy,
  exact match), a seeded bootstrap for other per-item metrics (`harness.statistics`);
- for `relative_to` and `max_drop`, the interval of the difference of the two scores on the
  items both scored, by a paired bootstrap;
- where there are no per-item values (corpus metrics such as chrF), the normal interval of
  lm-eval's own standard error, and the method says so.

A check is

- `pass`: the whole interval of the margin is at or above 0;
- `fail`: the whole interval is below 0;
- `inconclusive`: the interval straddles 0: the run cannot tell;
- `insufficient evidence`: fewer items than `decision.min_items`;
- `missing`: the model or task has no score (it failed, or was skipped);
- `not judged`: a partial run (unless `decision.judge_partial`), a `max_drop` gate with no
  baseline score, a `relative_to` model not in the run, `above_chance` on a task that is not
  multiple choice.

`fail` and `missing` fail the run (exit code 4), and so do `inconclusive` and `insufficient
evidence` unless `decision.inconclusive_fails` is false: "we can't tell" is not a pass. A run
whose every check is `not judged` because it is partial does not pass either.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.config import Gate, RunConfig
from harness.errors import BadInputError, ConfigError
from harness.record import RunRecord, TaskResult, as_record

ORDER = ("pass", "not judged", "insufficient evidence", "inconclusive", "missing", "fail")
"""Statuses from best to worst: a model's verdict on a language is its worst check."""

UNCERTAIN = ("inconclusive", "insufficient evidence")


def failing(inconclusive_fails: bool = True) -> tuple[str, ...]:
    """The statuses that fail a run."""
    return ("fail", "missing", *(UNCERTAIN if inconclusive_fails else ()))


FAILING = failing()


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
    items: int | None = None
    """Items the decision rests on (for a comparison: the items both sides scored)."""
    reference: float | None = None
    """The minimum, the chance level, the reference model's score, or the baseline's score."""
    reference_stderr: float | None = None
    threshold: float | None = None
    margin: float | None = None
    """Score minus threshold: negative when short."""
    margin_low: float | None = None
    margin_high: float | None = None
    method: str | None = None
    chance: float | None = None
    status: str = "missing"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_gates(
    config: RunConfig, results: dict | RunRecord, baseline: dict | RunRecord | None = None
) -> list[GateCheck]:
    """Every check of every gate of `config` on a run's record (and a baseline's). Per-item
    values are read from each run's sample logs, under its `run.directory`."""
    record = as_record(results)
    base = as_record(baseline) if baseline is not None else None
    scores = _Scores(record, base)
    checks = []
    for gate in config.gates:
        checks += _judge(gate, config, record, scores)
    scope = record.scope
    if scope is not None and scope.partial and not config.decision.judge_partial:
        why = "partial run (" + "; ".join(scope.reasons) + "); set decision.judge_partial to judge"
        for check in checks:
            if check.status != "not judged":
                check.status, check.detail = "not judged", f"{why}. Alone: {check.detail}"
    return checks


def summary(checks: list[GateCheck], config: RunConfig, record: RunRecord) -> dict[str, Any]:
    """The gates record of results.json: counts by status, the verdict per model and language,
    and whether the run passed."""
    counts: dict[str, int] = {}
    verdicts: dict[str, dict[str, str]] = {}
    for check in checks:
        counts[check.status] = counts.get(check.status, 0) + 1
        per_model = verdicts.setdefault(check.model, {})
        key = check.language or check.suite
        current = per_model.get(key, "pass")
        if ORDER.index(check.status) > ORDER.index(current):
            current = check.status
        per_model[key] = current
    decision = config.decision
    partial = record.scope is not None and record.scope.partial
    judged = not partial or decision.judge_partial
    bad = failing(decision.inconclusive_fails)
    return {
        "confidence": decision.confidence,
        "min_items": decision.min_items,
        "inconclusive_fails": decision.inconclusive_fails,
        "judged": judged,
        "passed": judged and not any(c.status in bad for c in checks),
        "counts": counts,
        "verdicts": verdicts,
    }


def load_baseline(
    reference: str, results_root: Path, config_name: str, current: Path | None
) -> RunRecord | None:
    """A baseline run's record: from a run directory or file, or `previous` (the latest
    earlier complete, non-partial run of this config in the results index). None when
    `previous` has no earlier run."""
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


def _judge(gate: Gate, config: RunConfig, results: RunRecord, scores: _Scores):
    reference_model = None
    if gate.rule == "relative":
        reference_model = (
            config.primary_model if gate.relative_to == "primary" else gate.relative_to
        )
    models = [m for m in (gate.models or list(results.models)) if m != reference_model]
    subjects = [s for s in _subjects(gate, results) if _applies(gate, results, *s[:2])]
    if not subjects:
        # A gate that selects nothing would pass in silence: a misspelt task or metric.
        yield GateCheck(
            gate=gate.label(), rule=gate.rule, model="—", suite="—", task="—", language=None,
            metric=gate.metric or "", value=None, stderr=None, status="missing",
            detail="the gate selects no scored task of this run"
            + (f" with metric {gate.metric}" if gate.metric else ""),
        )  # fmt: skip
        return
    for suite, task, language in subjects:
        for model in models:
            value, stderr, metric = _score(results, model, suite, task, gate.metric)
            check = GateCheck(
                gate=gate.label(), rule=gate.rule, model=model, suite=suite, task=task,
                language=language, metric=metric or gate.metric or "", value=value, stderr=stderr,
            )  # fmt: skip
            _decide(gate, config, check, results, scores, reference_model)
            yield check


def _decide(gate, config, check: GateCheck, results, scores: _Scores, reference_model) -> None:
    from harness.statistics import Interval, decide, difference_interval, mean_interval

    decision = config.decision
    if check.value is None:
        check.status, check.detail = "missing", _why_missing(results, check.model, check.suite)
        return
    metric = check.metric
    own = scores.items(results, check.model, check.suite, check.task, metric)
    if own and abs(sum(own.values()) / len(own) - check.value) > 1e-6:
        # The items do not average to lm-eval's score (a group that weighs its tasks
        # equally, a filter): decide on lm-eval's own standard error instead.
        own = None
    check.chance = scores.chance(results, check.model, check.suite, check.task)
    if gate.rule in ("min", "above_chance"):
        if gate.rule == "min":
            check.reference = check.threshold = gate.min
        elif check.chance is None:
            check.status = "not judged"
            check.detail = "not a multiple-choice task: it has no chance level"
            return
        else:
            check.reference = check.threshold = check.chance
        check.margin = check.value - check.threshold
        # The interval is of the score; the margin's is shifted by the threshold.
        if own is not None:
            interval = mean_interval(list(own.values()), decision.confidence)
        else:
            interval = _normal(check.value, check.stderr, decision, scores.count(results, check))
        shift = check.threshold
    else:
        if gate.rule == "relative":
            if reference_model not in results.models:
                check.status = "not judged"
                check.detail = f"reference model {reference_model} is not in this run"
                return
            ratio, other_run, other_model = gate.min_ratio, results, reference_model
            detail_missing = f"reference model {reference_model} has no score here"
        else:
            ratio, other_run, other_model = 1.0, scores.baseline, check.model
            detail_missing = "no score in the baseline run"
            if other_run is None:
                check.status, check.detail = "not judged", "no baseline run"
                return
        reference, reference_stderr, _ = _score(
            other_run, other_model, check.suite, check.task, metric or None
        )
        if reference is None:
            check.status = "missing" if gate.rule == "relative" else "not judged"
            check.detail = detail_missing
            return
        check.reference, check.reference_stderr = reference, reference_stderr
        check.threshold = (
            ratio * reference if gate.rule == "relative" else reference - gate.max_drop
        )
        check.margin = check.value - check.threshold
        theirs = scores.items(other_run, other_model, check.suite, check.task, metric)
        shared = sorted(set(own or {}) & set(theirs or {}))
        # The interval is of a - ratio * b; the margin is that (relative), or a - b + max_drop.
        shift = 0.0 if gate.rule == "relative" else -gate.max_drop
        if own is not None and theirs is not None and shared:
            a = [own[k] for k in shared]
            b = [theirs[k] for k in shared]
            interval = difference_interval(a, b, paired=True, ratio=ratio,
                                           confidence=decision.confidence)  # fmt: skip
            if len(shared) < max(len(own), len(theirs)):
                check.detail = f"compared on the {len(shared)} items both scored; "
                check.margin = interval.estimate - shift  # on those items, like its interval
        else:
            difference = check.value - ratio * reference
            spread = math.hypot(check.stderr or 0.0, ratio * (reference_stderr or 0.0))
            stderr = spread if check.stderr is not None else None
            interval = _normal(difference, stderr, decision, scores.count(results, check))
    check.items = interval.n
    check.method = interval.method
    check.margin_low, check.margin_high = interval.low - shift, interval.high - shift
    if check.items is not None and check.items < decision.min_items:
        check.status = "insufficient evidence"
        check.detail += (
            f"{check.items} items, fewer than the {decision.min_items} a decision needs "
            "(decision.min_items)"
        )
        return
    check.status = decide(
        Interval(check.margin_low, check.margin_high, check.margin, interval.n, interval.method,
                 interval.confidence),
        0.0,
    )  # fmt: skip
    level = f"{decision.confidence:.0%}"
    span = f"[{check.margin_low:+.4g}, {check.margin_high:+.4g}]"
    if check.status == "pass":
        check.detail += f"{check.value:.4g} meets {check.threshold:.4g}: margin {span} ({level})"
    elif check.status == "fail":
        check.detail += f"{check.value:.4g} is below {check.threshold:.4g}: margin {span} ({level})"
    else:
        check.detail += (
            f"{check.value:.4g} against {check.threshold:.4g}: the {level} interval of the "
            f"margin {span} includes 0, so this run cannot tell"
        )


def _normal(estimate: float, stderr: float | None, decision, items: int):
    """The normal interval of an estimate from lm-eval's standard error(s), for metrics with
    no per-item value (corpus metrics such as chrF, whose stderr lm-eval bootstraps)."""
    from scipy.stats import norm

    from harness.statistics import Interval

    level = decision.confidence
    if stderr is None:
        # No spread known: an interval that decides nothing, said as such.
        return Interval(-math.inf, math.inf, estimate, items, "no standard error", level)
    spread = float(norm.ppf(0.5 + level / 2)) * stderr
    method = f"normal {level:.0%} from lm-eval's standard error"
    return Interval(estimate - spread, estimate + spread, estimate, items, method, level)


class _Scores:
    """Per-item values and chance levels, read once from the sample logs of a run."""

    def __init__(self, record: RunRecord, baseline: RunRecord | None) -> None:
        self.baseline = baseline
        self._rows: dict[tuple, list[dict] | None] = {}

    def rows(self, record: RunRecord, model: str, suite: str, task: str) -> list[dict] | None:
        key = (record.run.directory, model, suite, task)
        if key not in self._rows:
            self._rows[key] = _read_rows(record, model, suite, task)
        return self._rows[key]

    def count(self, record: RunRecord, check: GateCheck) -> int:
        """Items of a check's task as lm-eval counted them (for scores without item values)."""
        counts = _task(record, check.model, check.suite, check.task).n_samples
        if counts is not None:
            return counts.effective
        rows = self.rows(record, check.model, check.suite, check.task)
        return len(rows) if rows else 0

    def items(self, record, model, suite, task, metric) -> dict[tuple, float] | None:
        """Per-item values by (task, doc id, target), or None where there are none."""
        from harness.statistics import per_item_values

        if record is None:
            return None
        rows = self.rows(record, model, suite, task)
        if not rows:
            return None
        try:
            values = per_item_values(rows, metric)
        except ValueError:
            return None  # a corpus metric: no per-item values
        keys = [(r.get("task"), r.get("doc_id"), json.dumps(r.get("target"))) for r in rows]
        found = dict(zip(keys, values, strict=True))
        if len(found) != len(values):
            return None  # items that cannot be told apart: no pairing
        return found

    def chance(self, record, model, suite, task) -> float | None:
        entry = _task(record, model, suite, task)
        if entry.chance is not None:
            return entry.chance
        from harness.statistics import chance_level, choice_counts

        rows = self.rows(record, model, suite, task)
        try:
            counts = choice_counts(rows) if rows else None
        except ValueError:
            return None
        return chance_level(counts) if counts else None


def _read_rows(record: RunRecord, model: str, suite: str, task: str) -> list[dict] | None:
    """The per-sample rows of a task; for a group, the rows of its leaf tasks together."""
    run_dir = Path(record.run.directory)
    entry = record.models.get(model)
    scored = entry.suites.get(suite) if entry is not None else None
    if scored is None:
        return None
    own = scored.tasks.get(task)
    if own is not None and own.samples_file:
        names = [task]
    elif task == suite and suite in record.suites:
        names = record.suites[suite].tasks  # a group's score: the items of its tasks
    else:
        return None
    rows: list[dict] = []
    for name in names:
        found = scored.tasks.get(name)
        if found is None or not found.samples_file:
            return None
        path = run_dir / found.samples_file
        try:
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                     if line.strip()]  # fmt: skip
        except (OSError, json.JSONDecodeError):
            return None
    return rows


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

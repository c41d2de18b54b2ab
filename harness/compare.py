"""`harness compare RUN_A RUN_B`: is B different from A, per model, suite and task?

Two uses: the same model on new hardware or software (portability: are the answers the same?),
and a new model on the same tasks (is it better or worse?). Models are matched by id, or as a
pair given by the caller. Items are matched by document id and reference answer, from the
per-sample logs, and tested in pairs:

- a per-item score that is right or wrong (accuracy, exact match): McNemar's exact test on the
  items one run got right and the other wrong;
- another per-item score: Wilcoxon's signed-rank test on the paired differences;
- a score with no per-item value (chrF, a group's aggregate): a z-test on the two standard
  errors.

The verdict is `same` (no item's answer changed and the score is equal), `better` or `worse`
(B against A, at significance `alpha`), or `no significant difference`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import BadInputError
from harness.evaluation import primary_metric
from harness.record import RunRecord, TaskResult


@dataclass
class TaskComparison:
    """One task of one model pair, compared."""

    model_a: str
    model_b: str
    suite: str
    task: str
    metric: str
    a: float | None
    b: float | None
    a_stderr: float | None
    b_stderr: float | None
    delta: float | None
    paired_items: int
    changed_answers: int
    max_loglik_change: float | None
    test: str
    p_value: float | None
    verdict: str
    note: str = ""
    """Set when the runs scored different items: what was compared instead."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedRun:
    """A finished run: its typed record and the directory its sample logs are in."""

    record: RunRecord
    directory: Path


def load_run(run_dir: Path) -> LoadedRun:
    """A finished run's results.json as a `RunRecord`; one clear error for a directory that is
    not a run of this harness's schema."""
    from harness.record import load_record

    return LoadedRun(load_record(Path(run_dir)), Path(run_dir))


def model_pairs(a: LoadedRun, b: LoadedRun, model_a: str | None, model_b: str | None):
    """Which model of A is compared with which of B."""
    if model_a or model_b:
        pair = (model_a or model_b, model_b or model_a)
        for run, model in ((a, pair[0]), (b, pair[1])):
            if model not in run.record.models:
                raise BadInputError(
                    f"model '{model}' is not in {run.directory} (its models: "
                    f"{', '.join(run.record.models)})"
                )
        return [pair]
    models_a, models_b = a.record.models, b.record.models
    common = [m for m in models_a if m in models_b]
    if common:
        return [(m, m) for m in common]
    if len(models_a) == 1 and len(models_b) == 1:
        return [(next(iter(models_a)), next(iter(models_b)))]
    raise BadInputError(
        "the two runs share no model id; name the pair with --model-a ID --model-b ID"
    )


def compare_runs(
    a: LoadedRun,
    b: LoadedRun,
    model_a: str | None = None,
    model_b: str | None = None,
    alpha: float = 0.05,
) -> list[TaskComparison]:
    """Every task both runs scored, for every model pair."""
    out = []
    for first, second in model_pairs(a, b, model_a, model_b):
        suites_a = a.record.models[first].suites
        suites_b = b.record.models[second].suites
        for suite, entry_a in suites_a.items():
            entry_b = suites_b.get(suite)
            if entry_b is None or entry_a.status != "ok" or entry_b.status != "ok":
                continue
            for task, task_a in entry_a.tasks.items():
                task_b = entry_b.tasks.get(task)
                if task_b and task_a.metrics and task_b.metrics:
                    higher = entry_a.lm_eval.get("higher_is_better") or {}
                    compared = _compare_task(a, b, (first, second), suite, task, task_a, task_b)
                    out.append(_decide(compared, higher.get(task) or {}, alpha))
    return out


def _compare_task(a, b, models, suite, task, task_a, task_b) -> TaskComparison:
    key, value_a, se_a = primary_metric(task_a.metrics)
    metric = key.split(",")[0]
    value_b, se_b = _metric(task_b.metrics, key)
    delta = None if value_a is None or value_b is None else value_b - value_a
    rows_a = _rows(a, task_a)
    rows_b = _rows(b, task_b)
    pairs = [(rows_a[k], rows_b[k]) for k in rows_a if k in rows_b]
    note = ""
    if len(pairs) < max(len(rows_a), len(rows_b)) or (
        not pairs and (task_a.n_samples != task_b.n_samples)
    ):
        # Unlike sets of items (a --limit run, an edited task): only the shared items say
        # anything about the difference.
        note = (f"the runs scored different items ({len(rows_a)} and {len(rows_b)}); "
                f"{len(pairs)} in both")  # fmt: skip
        shared = _shared_scores(metric, pairs)
        if shared is None:
            return TaskComparison(
                model_a=models[0], model_b=models[1], suite=suite, task=task, metric=metric,
                a=value_a, b=value_b, a_stderr=se_a, b_stderr=se_b, delta=None,
                paired_items=len(pairs), changed_answers=0, max_loglik_change=None,
                test="none", p_value=None, verdict="not comparable",
                note=note + ", and this metric has no per-item values to compare them on",
            )  # fmt: skip
        (value_a, value_b), se_a, se_b = shared, None, None
        delta = value_b - value_a
        note += ": both scores are over those"
    changed = sum(  # a sampled item (`harness.repeats`) has its k `answers`
        1
        for x, y in pairs
        if x.get("answer", x.get("answers")) != y.get("answer", y.get("answers"))
    )
    loglik = _max_loglik_change(pairs)
    test, p_value = _test(metric, pairs, delta, se_a, se_b)
    return TaskComparison(
        model_a=models[0], model_b=models[1], suite=suite, task=task, metric=metric,
        a=value_a, b=value_b, a_stderr=se_a, b_stderr=se_b, delta=delta,
        paired_items=len(pairs), changed_answers=changed, max_loglik_change=loglik,
        test=test, p_value=p_value, verdict="", note=note,
    )  # fmt: skip


def _shared_scores(metric: str, pairs) -> tuple[float, float] | None:
    """Both runs' mean per-item score over the shared items, or None without item values."""
    values = [(x.get("metrics", {}).get(metric), y.get("metrics", {}).get(metric))
              for x, y in pairs]  # fmt: skip
    if not values or not all(_is_number(u) and _is_number(v) for u, v in values):
        return None
    return sum(u for u, _ in values) / len(values), sum(v for _, v in values) / len(values)


def _decide(c: TaskComparison, higher_is_better: dict, alpha: float) -> TaskComparison:
    if c.verdict:
        return c  # decided already: not comparable
    if c.paired_items and c.changed_answers == 0 and c.delta == 0:
        c.verdict = "same"
    elif c.p_value is None:
        c.verdict = "not tested"
    elif c.p_value < alpha and c.delta:
        higher = higher_is_better.get(c.metric, True)
        c.verdict = "better" if (c.delta > 0) == higher else "worse"
    else:
        c.verdict = "no significant difference"
    return c


def _metric(metrics: dict, key: str) -> tuple[float | None, float | None]:
    name, _, filt = key.partition(",")
    return _number(metrics.get(key)), _number(metrics.get(f"{name}_stderr,{filt}"))


def _rows(run: LoadedRun, task_entry: TaskResult) -> dict[tuple, dict]:
    """Per-sample rows of a task by (doc id, reference): the same item in both runs."""
    relative = task_entry.samples_file
    if not relative:
        return {}
    path = run.directory / relative
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {(r.get("doc_id"), json.dumps(r.get("target"), sort_keys=True)): r for r in rows}


def _test(metric: str, pairs, delta, se_a, se_b) -> tuple[str, float | None]:
    values = [
        (x.get("metrics", {}).get(metric), y.get("metrics", {}).get(metric)) for x, y in pairs
    ]
    values = [(u, v) for u, v in values if _is_number(u) and _is_number(v)]
    if values and len(values) == len(pairs):
        if all(u in (0, 1) and v in (0, 1) for u, v in values):
            from scipy.stats import binomtest

            only_a = sum(1 for u, v in values if u > v)
            only_b = sum(1 for u, v in values if v > u)
            if only_a + only_b == 0:
                return "McNemar exact", 1.0
            return "McNemar exact", binomtest(min(only_a, only_b), only_a + only_b).pvalue
        from scipy.stats import wilcoxon

        differences = [v - u for u, v in values]
        if not any(differences):
            return "Wilcoxon signed-rank", 1.0
        return "Wilcoxon signed-rank", float(wilcoxon(differences).pvalue)
    if delta is not None and se_a is not None and se_b is not None:
        spread = math.hypot(se_a, se_b)
        if spread == 0:
            return "z-test on standard errors", 1.0 if delta == 0 else 0.0
        return "z-test on standard errors", math.erfc(abs(delta) / spread / math.sqrt(2))
    return "none", None


def _max_loglik_change(pairs) -> float | None:
    changes = [
        abs(p - q)
        for x, y in pairs
        for p, q in zip(x.get("loglikelihoods") or [], y.get("loglikelihoods") or [], strict=False)
    ]
    return max(changes) if changes else None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None

"""Decision statistics for gates: confidence intervals for a task's score and for the difference
of two scores, a three-way decision against a threshold, a minimum number of items, and the
chance level of a multiple-choice task.

The intervals come from scipy (`binomtest(...).proportion_ci`, `bootstrap`); this module only
chooses among them, and says in each `Interval.method` what it chose. scipy and numpy are
imported inside the functions so that importing harness stays fast.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

MIN_ITEMS_DEFAULT = 20
"""Fewer items than this are "insufficient evidence", whatever the interval says.

Wilson and exact intervals stay honest at any n, but the bootstrap does not: it takes the
sample for the population, so its intervals are too narrow by about sqrt((n-1)/n) and its
resamples can take only a few distinct values; by 20 items that shortfall is under 3%. Below
20 items a proportion near 0.5 also has a 95% interval about ±0.2 wide, too wide for any gate
but the crudest. The built-in smoke suites have 24 items per language, so they qualify."""

_BATCH = 200
"""Resamples (and jackknife samples) per vectorized call: bounds memory at about
200 x items floats, where scipy's default holds all of them at once (items x items for BCa)."""


@dataclass(frozen=True)
class Interval:
    """A confidence interval for a score, or for the difference of two scores."""

    low: float
    high: float
    estimate: float
    """The point estimate: the mean score, or the difference of the means."""
    n: int
    """Items behind it (for two independent samples, the smaller of the two)."""
    method: str
    """How it was computed, for the report: "wilson 95%", "bootstrap BCa 95%, ..."."""
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def proportion_interval(
    successes: int, n: int, confidence: float = 0.95, method: str = "wilson"
) -> Interval:
    """Interval for a proportion of `successes` in `n` trials: "wilson" (the score interval,
    good coverage at any n, the default) or "exact" (Clopper-Pearson, never below the nominal
    coverage, wider). Both are right at the edges: 0 of n has low 0, n of n has high 1."""
    from scipy.stats import binomtest

    if method not in ("wilson", "exact"):
        raise ValueError(f"method must be 'wilson' or 'exact', not {method!r}")
    if n < 1:
        raise ValueError(f"a proportion needs at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    _check_confidence(confidence)
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence, method=method)
    name = "wilson" if method == "wilson" else "exact (Clopper-Pearson)"
    low, high = max(0.0, float(ci.low)), min(1.0, float(ci.high))
    return Interval(low, high, successes / n, n, f"{name} {_percent(confidence)}", confidence)


def is_proportion(values: Iterable[Any]) -> bool:
    """Whether every per-item value is 0 or 1 (bools, ints, floats 0.0 and 1.0), so that the
    mean is a proportion. An empty sequence is not: there is nothing to count."""
    values = list(values)
    return bool(values) and all(isinstance(v, numbers.Real) and v in (0, 1) for v in values)


def mean_interval(
    values: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> Interval:
    """Interval for the mean of per-item scores: Wilson on the count when every value is 0 or
    1, otherwise a seeded bootstrap of the mean (BCa; see `_bootstrap`)."""
    data = _as_array(values, "values")
    _check_confidence(confidence)
    if is_proportion(data.tolist()):
        return proportion_interval(int(data.sum()), len(data), confidence)
    return _bootstrap((data,), _mean, float(data.mean()), len(data), confidence, resamples, seed)


def difference_interval(
    a: Sequence[float],
    b: Sequence[float],
    paired: bool,
    ratio: float = 1.0,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Interval for mean(a) - ratio * mean(b), by a seeded bootstrap.

    `paired`: a and b are scores on the same items in the same order (a model and a reference
    model, or a run and its baseline on the same items): the items are resampled together,
    which removes the item-to-item variation both share and gives a narrower, still honest,
    interval. Otherwise each sample is resampled on its own.

    Gates use it as: `min_ratio` -> ratio=min_ratio against 0; `max_drop` -> ratio=1 against
    -max_drop."""
    x, y = _as_array(a, "a"), _as_array(b, "b")
    _check_confidence(confidence)
    estimate = float(x.mean() - ratio * y.mean())
    if paired:
        if len(x) != len(y):
            raise ValueError(f"paired samples must have the same items: {len(x)} and {len(y)}")
        # The mean of the per-item differences is the difference of the means.
        return _bootstrap((x - ratio * y,), _mean, estimate, len(x), confidence, resamples, seed)

    def statistic(u, v, axis=-1):
        return u.mean(axis=axis) - ratio * v.mean(axis=axis)

    n = min(len(x), len(y))
    return _bootstrap((x, y), statistic, estimate, n, confidence, resamples, seed)


def decide(interval: Interval, threshold: float, higher_is_better: bool = True) -> str:
    """The decision an interval supports: "pass" when it lies wholly at or above `threshold`,
    "fail" when wholly below, "inconclusive" when it straddles it (mirrored when lower is
    better).

    Boundary: an interval whose low end equals the threshold passes (a score "at or above"
    meets it); one whose high end equals it is inconclusive, not a fail. A point estimate
    exactly at the threshold with any width is therefore inconclusive. With a two-sided 95%
    interval, each of "pass" and "fail" is wrong at most 2.5% of the time when the true score
    lies on the other side of the threshold."""
    low, high = interval.low, interval.high
    if not higher_is_better:
        low, high, threshold = -high, -low, -threshold
    if low >= threshold:
        return "pass"
    if high < threshold:
        return "fail"
    return "inconclusive"


def enough_items(n: int, minimum: int = MIN_ITEMS_DEFAULT) -> bool:
    """Whether `n` items are enough to decide anything (`MIN_ITEMS_DEFAULT`); below it callers
    report "insufficient evidence"."""
    if minimum < 1:
        raise ValueError(f"the minimum number of items must be at least 1, got {minimum}")
    return n >= minimum


def chance_level(choice_counts: Sequence[int]) -> float:
    """Expected accuracy of guessing uniformly on a multiple-choice task: the mean of 1/k over
    its items, k being each item's number of choices."""
    if not choice_counts:
        raise ValueError("chance level of no items")
    if any(k < 1 for k in choice_counts):
        raise ValueError(f"every item needs at least one choice, got {min(choice_counts)}")
    return sum(1 / k for k in choice_counts) / len(choice_counts)


def per_item_values(rows: Iterable[dict], metric: str) -> list[float]:
    """The per-item values of `metric` ("acc", "exact_match"; lm-eval's "acc,none" is read as
    "acc") from per-sample log rows: harness's (`samples/<model>/<task>.jsonl`, values under
    "metrics") or lm-eval's logged samples (values at the top level). A row without the metric,
    or with no number for it (a corpus metric such as bleu), is an error, never skipped."""
    name = metric.split(",")[0]
    values = []
    for row in rows:
        kept = row.get("metrics")
        source = kept if isinstance(kept, dict) else row
        value = source.get(name)
        where = f"item {row.get('doc_id')!r} of task {row.get('task', '?')!r}"
        if name not in source:
            raise ValueError(f"{where} has no per-item value of metric {metric!r}")
        if not isinstance(value, (bool, int, float)) or not math.isfinite(value):
            raise ValueError(f"{where}: metric {metric!r} is {value!r}, not a per-item number")
        values.append(float(value))
    return values


def choice_counts(rows: Iterable[dict]) -> list[int] | None:
    """Number of choices of each item of a multiple-choice task, or None when the rows are
    not multiple choice (generate_until, loglikelihood).

    Harness's rows list "choices" for multiple choice only. lm-eval's logged samples have one
    request per choice in "arguments", each a (context, continuation) pair of strings; a
    generation request's second argument is a dict of settings, and a loglikelihood task has
    one pair per item (no choice to guess). Rows that disagree are an error."""
    counts = [_choices_of(row) for row in rows]
    if all(k is None for k in counts):
        return None
    if any(k is None for k in counts):
        raise ValueError("the rows mix multiple-choice items with other kinds")
    return counts  # type: ignore[return-value]


def _choices_of(row: dict) -> int | None:
    if isinstance(row.get("choices"), list):
        return len(row["choices"])
    arguments = row.get("arguments")
    if not arguments:
        return None
    # lm-eval's EvaluationTracker writes {"gen_args_0": {"arg_0": ..., "arg_1": ...}, ...}.
    requests = list(arguments.values()) if isinstance(arguments, dict) else list(arguments)
    requests = [list(r.values()) if isinstance(r, dict) else r for r in requests]
    pairs = all(
        isinstance(r, (list, tuple)) and len(r) == 2 and all(isinstance(s, str) for s in r)
        for r in requests
    )
    return len(requests) if pairs and len(requests) >= 2 else None


def _bootstrap(samples, statistic, estimate, n, confidence, resamples, seed) -> Interval:
    """A seeded bootstrap interval of `statistic` over `samples` (one or two arrays).

    BCa rather than percentile: per-item scores such as f1 or chrF are bounded and often skewed
    (many zeros, a few high), and BCa corrects the percentile interval for the bias and skew of
    the bootstrap distribution, with coverage error O(1/n) against the percentile's O(1/sqrt
    n). It fails only on degenerate data: constant samples (then the interval is the point, and
    `method` says so), or resamples that all fall on one side of the estimate, which makes its
    bias correction infinite (then the percentile interval of the same resamples is used, and
    `method` says so)."""
    import numpy as np
    from scipy.stats import DegenerateDataWarning, bootstrap

    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    described = f"{_percent(confidence)}, {resamples} resamples, seed {seed}"
    if all(float(np.ptp(s)) == 0 for s in samples):
        # the value itself: a mean of 25 x 0.4 sums to 0.4000000000000001
        estimate = float(statistic(*(s[:1] for s in samples)))
        method = f"constant data: every resample gives {estimate:g}, the interval is the point"
        return Interval(estimate, estimate, estimate, n, method, confidence)
    kwargs = dict(n_resamples=resamples, batch=_BATCH, confidence_level=confidence, vectorized=True)
    # A degenerate BCa gives nan: handled below, and said in `method`.
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", DegenerateDataWarning)
        rng = np.random.default_rng(seed)
        result = bootstrap(samples, statistic, method="BCa", rng=rng, **kwargs)
    low, high = result.confidence_interval
    method = f"bootstrap BCa {described}"
    if not (math.isfinite(low) and math.isfinite(high)):
        kwargs["n_resamples"] = 0  # with bootstrap_result: the same resamples, no new ones
        result = bootstrap(
            samples, statistic, method="percentile", bootstrap_result=result, **kwargs
        )
        low, high = result.confidence_interval
        method = f"bootstrap percentile {described} (BCa undefined on these data)"
    return Interval(float(low), float(high), estimate, n, method, confidence)


def _mean(values, axis=-1):
    return values.mean(axis=axis)


def _as_array(values: Sequence[float], name: str):
    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or len(data) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers")
    if not np.isfinite(data).all():
        raise ValueError(f"{name} has values that are not finite numbers")
    return data


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"

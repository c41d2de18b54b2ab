"""Decision statistics (`harness.statistics`): intervals checked against values computed here by
hand (stdlib only, not scipy again), decisions at the boundary, bootstrap determinism and
coverage, and reading per-item values from real per-sample logs."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from statistics import NormalDist

import pytest

from harness.statistics import (
    MIN_ITEMS_DEFAULT,
    Interval,
    chance_level,
    choice_counts,
    decide,
    difference_interval,
    enough_items,
    is_proportion,
    mean_interval,
    per_item_values,
    proportion_interval,
)

REPO = Path(__file__).resolve().parents[1]
Z95 = NormalDist().inv_cdf(0.975)


def wilson_by_hand(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    center = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    return center - half, center + half


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def solve(f, low: float = 0.0, high: float = 1.0) -> float:
    """The root of an increasing f on [low, high], by bisection."""
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if f(middle) < 0 else (low, middle)
    return (low + high) / 2


def clopper_pearson_by_hand(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    low = 0.0 if k == 0 else solve(lambda p: binomial_tail(k, n, p) - alpha / 2)
    # P(X <= k) = 1 - P(X >= k + 1) falls as p grows
    high = 1.0 if k == n else solve(lambda p: alpha / 2 - (1 - binomial_tail(k + 1, n, p)))
    return low, high


# Proportions


@pytest.mark.parametrize("k", [0, 3, 5])
def test_wilson_matches_the_formula_at_the_edges(k):
    interval = proportion_interval(k, 5)
    low, high = wilson_by_hand(k, 5)
    assert interval.low == pytest.approx(max(low, 0.0), abs=1e-12)
    assert interval.high == pytest.approx(min(high, 1.0), abs=1e-12)
    assert (interval.estimate, interval.n, interval.method) == (k / 5, 5, "wilson 95%")


def test_wilson_known_values():
    assert proportion_interval(0, 5).high == pytest.approx(0.4345, abs=1e-4)
    assert proportion_interval(0, 5).low == 0.0
    assert proportion_interval(5, 5).high == 1.0
    assert proportion_interval(5, 5).low == pytest.approx(5 / (5 + Z95**2))


@pytest.mark.parametrize("k", [0, 3, 5])
def test_exact_matches_clopper_pearson_by_hand(k):
    interval = proportion_interval(k, 5, method="exact")
    low, high = clopper_pearson_by_hand(k, 5)
    assert interval.low == pytest.approx(low, abs=1e-9)
    assert interval.high == pytest.approx(high, abs=1e-9)
    assert interval.method == "exact (Clopper-Pearson) 95%"


def test_exact_closed_forms_at_the_edges():
    assert proportion_interval(0, 5, method="exact").high == pytest.approx(1 - 0.025 ** (1 / 5))
    assert proportion_interval(0, 5, method="exact").high == pytest.approx(0.5218, abs=1e-4)
    assert proportion_interval(5, 5, method="exact").low == pytest.approx(0.025 ** (1 / 5))


def test_a_single_trial():
    assert proportion_interval(1, 1).low == pytest.approx(1 / (1 + Z95**2))
    assert proportion_interval(1, 1).high == 1.0
    assert proportion_interval(0, 1, method="exact").high == pytest.approx(0.975)


def test_exact_is_wider_than_wilson():
    wilson, exact = proportion_interval(7, 24), proportion_interval(7, 24, method="exact")
    assert exact.low < wilson.low and exact.high > wilson.high


def test_other_confidence_levels():
    z = NormalDist().inv_cdf(0.95)
    interval = proportion_interval(3, 5, confidence=0.9)
    assert (interval.low, interval.high) == pytest.approx(wilson_by_hand(3, 5, z))
    assert interval.method == "wilson 90%"


@pytest.mark.parametrize(
    "successes, n, method",
    [(0, 0, "wilson"), (6, 5, "wilson"), (-1, 5, "wilson"), (1, 5, "normal")],
)
def test_bad_proportions_are_refused(successes, n, method):
    with pytest.raises(ValueError):
        proportion_interval(successes, n, method=method)


def test_is_proportion():
    assert is_proportion([True, False, 1, 0, 1.0, 0.0])
    assert not is_proportion([1.0, 0.5])
    assert not is_proportion([1, 2])
    assert not is_proportion([float("nan")])
    assert not is_proportion(["1"])
    assert not is_proportion([])


# Decisions


def test_the_demo_english_score_passes_chance():
    interval = mean_interval([1.0] * 15 + [0.0] * 9)
    assert interval.method == "wilson 95%"
    assert interval.estimate == 0.625
    assert interval.low == pytest.approx(wilson_by_hand(15, 24)[0])
    assert interval.low > 0.4  # well above chance
    assert decide(interval, 0.25) == "pass"


def test_four_of_twenty_four_against_chance_is_inconclusive():
    interval = mean_interval([1] * 4 + [0] * 20)
    low, high = wilson_by_hand(4, 24)  # about 0.067 to 0.359: straddles 0.25
    assert interval.low == pytest.approx(low) and interval.high == pytest.approx(high)
    assert low < 0.25 < high
    assert decide(interval, 0.25) == "inconclusive"


def test_a_score_exactly_at_the_threshold_is_inconclusive():
    assert decide(mean_interval([1] * 12 + [0] * 12), 0.5) == "inconclusive"
    assert decide(mean_interval([0.2, 0.4, 0.6, 0.8] * 6), 0.5) == "inconclusive"


def test_boundary_convention():
    def at(low, high):
        return Interval(low, high, (low + high) / 2, 30, "test", 0.95)

    assert decide(at(0.5, 0.7), 0.5) == "pass"  # touching from above meets it
    assert decide(at(0.3, 0.5), 0.5) == "inconclusive"  # touching from below is no fail
    assert decide(at(0.3, 0.49), 0.5) == "fail"
    assert decide(at(0.3, 0.5), 0.5, higher_is_better=False) == "pass"
    assert decide(at(0.5, 0.7), 0.5, higher_is_better=False) == "inconclusive"
    assert decide(at(0.51, 0.7), 0.5, higher_is_better=False) == "fail"


def test_enough_items():
    assert MIN_ITEMS_DEFAULT == 20
    assert enough_items(24) and enough_items(20)
    assert not enough_items(19)
    assert enough_items(5, minimum=5) and not enough_items(4, minimum=5)
    with pytest.raises(ValueError):
        enough_items(5, minimum=0)


# Bootstrap


SKEWED = [0.0] * 10 + [0.1, 0.2, 0.25, 0.3, 0.5, 0.6, 0.8, 0.9, 1.0, 0.35] * 2


def test_bootstrap_is_deterministic_with_a_seed():
    first, again = mean_interval(SKEWED, seed=7), mean_interval(SKEWED, seed=7)
    assert first == again
    other = mean_interval(SKEWED, seed=8)
    assert (other.low, other.high) != (first.low, first.high)
    assert first.method == "bootstrap BCa 95%, 2000 resamples, seed 7"
    assert first.estimate == pytest.approx(sum(SKEWED) / len(SKEWED))
    assert first.low < first.estimate < first.high


def test_bootstrap_width_is_close_to_the_normal_interval():
    interval = mean_interval(SKEWED)
    n = len(SKEWED)
    mean = sum(SKEWED) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in SKEWED) / (n - 1))
    normal_width = 2 * Z95 * sd / math.sqrt(n)
    assert interval.high - interval.low == pytest.approx(normal_width, rel=0.2)


def test_bootstrap_coverage_on_a_known_mean():
    # Exponential scores with mean 0.3, 30 items a run: the 95% interval should hold the true
    # mean in about 95% of 200 runs (binomial sd 1.5%; BCa undercovers a little at n=30).
    rng = random.Random(1)
    covered = 0
    for run in range(200):
        values = [rng.expovariate(1 / 0.3) for _ in range(30)]
        interval = mean_interval(values, resamples=1000, seed=run)
        covered += interval.low <= 0.3 <= interval.high
    assert 0.88 <= covered / 200 <= 0.99


def test_constant_data_gives_the_point():
    interval = mean_interval([0.4] * 25)
    assert (interval.low, interval.high, interval.estimate) == (0.4, 0.4, 0.4)
    assert "constant" in interval.method and "point" in interval.method
    assert decide(interval, 0.4) == "pass"
    assert decide(interval, 0.41) == "fail"
    # all-zero or all-one data are proportions: Wilson, not a point
    assert mean_interval([1.0] * 25).low == pytest.approx(25 / (25 + Z95**2))


def test_degenerate_bca_falls_back_to_percentile_and_says_so():
    # With two resamples both can land on one side of the mean: BCa's bias correction is
    # infinite there. Some of these seeds do; none may give a non-finite interval.
    methods = []
    for seed in range(40):
        interval = mean_interval([0.0] * 19 + [1.5], resamples=2, seed=seed)
        assert math.isfinite(interval.low) and math.isfinite(interval.high)
        methods.append(interval.method)
    assert any("percentile" in m and "BCa undefined" in m for m in methods)
    assert any(m.startswith("bootstrap BCa") for m in methods)


def test_bad_values_are_refused():
    for bad in ([], [0.5, float("nan")], [0.5, float("inf")]):
        with pytest.raises(ValueError):
            mean_interval(bad)
    with pytest.raises(ValueError):
        mean_interval([0.2, 0.5], confidence=95)


# Differences


def correlated_pair(n: int = 60, seed: int = 3) -> tuple[list[float], list[float]]:
    """Two models on the same items: item difficulty dominates, the models differ a little."""
    rng = random.Random(seed)
    difficulty = [rng.random() for _ in range(n)]
    a = [min(1.0, d + 0.05 + rng.gauss(0, 0.03)) for d in difficulty]
    b = [max(0.0, d + rng.gauss(0, 0.03)) for d in difficulty]
    return a, b


def test_paired_difference_is_narrower_on_correlated_data():
    a, b = correlated_pair()
    paired = difference_interval(a, b, paired=True)
    independent = difference_interval(a, b, paired=False)
    assert paired.estimate == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    assert paired.estimate == pytest.approx(independent.estimate)
    assert paired.high - paired.low < (independent.high - independent.low) / 4
    assert 0 < paired.low and paired.high < 0.1  # a is better, by about 0.05
    assert decide(paired, 0.0) == "pass"
    assert decide(independent, 0.0) == "inconclusive"
    assert paired == difference_interval(a, b, paired=True)  # seeded


def test_difference_with_a_ratio():
    a, b = correlated_pair()
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    interval = difference_interval(a, b, paired=True, ratio=0.9)
    assert interval.estimate == pytest.approx(mean_a - 0.9 * mean_b)
    assert decide(interval, 0.0) == "pass"  # a >= 0.9 x b, clearly
    assert decide(difference_interval(b, a, paired=True, ratio=1.2), 0.0) == "fail"


def test_a_max_drop_gate():
    a, b = correlated_pair()
    # b against a as its baseline: b dropped by about 0.05
    drop = difference_interval(b, a, paired=True)
    assert decide(drop, -0.1) == "pass"  # max_drop 0.1
    assert decide(drop, -0.01) == "fail"  # max_drop 0.01


def test_difference_of_constant_samples_is_the_point():
    interval = difference_interval([0.5] * 20, [0.25] * 30, paired=False, ratio=2)
    assert (interval.low, interval.high, interval.estimate) == (0.0, 0.0, 0.0)
    assert interval.n == 20
    paired = difference_interval([0.5, 0.7] * 10, [0.4, 0.6] * 10, paired=True)
    assert paired.low == pytest.approx(0.1) and paired.high == pytest.approx(0.1)


def test_paired_samples_must_have_the_same_items():
    with pytest.raises(ValueError, match="same items"):
        difference_interval([0.1] * 5, [0.2] * 6, paired=True)


# Chance level and per-sample logs


def test_chance_level():
    assert chance_level([4, 4, 2]) == pytest.approx((0.25 + 0.25 + 0.5) / 3)
    assert chance_level([4] * 24) == 0.25
    for bad in ([], [4, 0]):
        with pytest.raises(ValueError):
            chance_level(bad)


def multiple_choice_row(doc_id: int, acc: float, k: int = 4) -> dict:
    """A row as harness writes it for a multiple-choice task (`evaluation.sample_records`)."""
    return {
        "task": "smoke_en",
        "doc_id": doc_id,
        "prompt": "Q: ?\nA:",
        "choices": [f"choice {i}" for i in range(k)],
        "target": 0,
        "answer": 0 if acc else 1,
        "loglikelihoods": [-1.0 - i for i in range(k)],
        "metrics": {"acc": acc, "acc_norm": acc},
        "correct": bool(acc),
    }


def test_rows_in_harness_shape():
    rows = [multiple_choice_row(i, 1.0 if i < 15 else 0.0) for i in range(24)]
    values = per_item_values(rows, "acc")
    assert values == [1.0] * 15 + [0.0] * 9
    assert per_item_values(rows, "acc,none") == values
    counts = choice_counts(rows)
    assert counts == [4] * 24
    assert decide(mean_interval(values), chance_level(counts)) == "pass"
    mixed = [multiple_choice_row(0, 1.0, k=4), multiple_choice_row(1, 0.0, k=2)]
    assert chance_level(choice_counts(mixed)) == pytest.approx(0.375)


def test_generation_rows_are_not_multiple_choice():
    rows = [
        {"task": "gen", "doc_id": i, "prompt": "Q", "target": "x", "answer": "x" if i else "y"}
        | {"metrics": {"exact_match": float(i > 0)}, "correct": i > 0}
        for i in range(3)
    ]
    assert choice_counts(rows) is None
    assert per_item_values(rows, "exact_match") == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="rows mix"):
        choice_counts(rows + [multiple_choice_row(9, 1.0)])


def test_a_row_without_the_metric_is_an_error():
    rows = [multiple_choice_row(0, 1.0), multiple_choice_row(1, 0.0)]
    del rows[1]["metrics"]["acc"]
    with pytest.raises(ValueError, match="'acc'") as raised:
        per_item_values(rows, "acc")
    assert "item 1" in str(raised.value)
    with pytest.raises(ValueError, match="'f1'"):
        per_item_values(rows[:1], "f1")


def test_rows_in_lm_eval_shape():
    # lm-eval's logged samples: metric values at the top level, "metrics" lists their names,
    # one request per choice in "arguments" (context, continuation).
    mc = {
        "doc_id": 0,
        "doc": {"question": "?"},
        "target": 1,
        "arguments": [["Q: ?\nA:", " a"], ["Q: ?\nA:", " b"], ["Q: ?\nA:", " c"]],
        "resps": [[[-1.0, False]], [[-0.5, True]], [[-2.0, False]]],
        "filtered_resps": [[-1.0, False], [-0.5, True], [-2.0, False]],
        "filter": "none",
        "metrics": ["acc", "acc_norm"],
        "acc": 1.0,
        "acc_norm": 1.0,
    }
    assert choice_counts([mc]) == [3]
    assert per_item_values([mc], "acc") == [1.0]
    # lm-eval's EvaluationTracker writes "arguments" as nested dicts
    pairs = {
        "gen_args_0": {"arg_0": "Q", "arg_1": " a"},
        "gen_args_1": {"arg_0": "Q", "arg_1": " b"},
    }
    tracked = mc | {"arguments": pairs}
    assert choice_counts([tracked]) == [2]
    generation = mc | {"arguments": [["Q: ?\nA:", {"until": ["\n"]}]], "exact_match": 0.0}
    assert choice_counts([generation]) is None
    corpus = mc | {"bleu": ["reference", "prediction"]}
    with pytest.raises(ValueError, match="not a per-item number"):
        per_item_values([corpus], "bleu")


def demo_run() -> Path | None:
    """A real demo run: $HARNESS_DEMO_RUN, or the newest under results/demo/."""
    if os.environ.get("HARNESS_DEMO_RUN"):
        return Path(os.environ["HARNESS_DEMO_RUN"])
    runs = sorted((REPO / "results" / "demo").glob("*/results.json"))
    return runs[-1].parent if runs else None


def test_rows_of_a_real_demo_run():
    run = demo_run()
    if run is None or not (run / "results.json").is_file():
        pytest.skip("no demo run: `make demo`, or set HARNESS_DEMO_RUN to a run directory")
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    checked = 0
    for model in results["models"].values():
        for suite in model["suites"].values():
            for name, task in suite.get("tasks", {}).items():
                if "samples_file" not in task:
                    continue
                path = run / task["samples_file"]
                lines = path.read_text(encoding="utf-8").splitlines()
                rows = [json.loads(line) for line in lines]
                values = per_item_values(rows, "acc")
                assert is_proportion(values)
                assert len(values) == task["n_samples"]["effective"]
                assert sum(values) / len(values) == pytest.approx(task["metrics"]["acc,none"])
                data = REPO / "tasks" / "smoke" / "data" / f"{name.removeprefix('smoke_')}.jsonl"
                if data.is_file():
                    items = [json.loads(line) for line in data.read_text().splitlines()]
                    by_item = [len(items[row["doc_id"]]["choices"]) for row in rows]
                    assert choice_counts(rows) == by_item
                checked += 1
    assert checked > 0


def test_importing_it_does_not_import_scipy():
    code = "import sys, harness.statistics; print('scipy' in sys.modules, 'numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]

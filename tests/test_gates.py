"""Gates judged on crafted results with real per-sample logs: pass, fail, inconclusive,
insufficient evidence, missing, not judged, with the numbers, the margin and its interval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.config import RunConfig
from harness.errors import ConfigError
from harness.gates import judge_gates, summary

from .records import crafted_record


def results(
    run_dir: Path,
    scores: dict[str, dict[str, tuple[int, int]]],
    failed: dict | None = None,
    scope: dict | None = None,
    correct: dict[tuple[str, str], list[int]] | None = None,
):
    """A run record with real per-sample logs under `run_dir`: model -> task -> (items right,
    items) for the native_hi and native_ta suites (one four-choice task each), the first
    `right` items right unless `correct` lists which; models whose suite failed."""
    suites = {
        "native_hi": {"tasks": ["native_hi_mc"], "languages": {"native_hi_mc": "hi"}},
        "native_ta": {"tasks": ["native_ta_mc"], "languages": {"native_ta_mc": "ta"}},
    }
    models = {}
    for model, tasks in scores.items():
        entry = {"status": "ok", "suites": {}}
        for task, (right, n) in tasks.items():
            suite = task.removesuffix("_mc")
            hits = (correct or {}).get((model, task)) or [int(i < right) for i in range(n)]
            rows = [
                {"task": task, "doc_id": i, "target": 0, "choices": ["a", "b", "c", "d"],
                 "metrics": {"acc": hit}}
                for i, hit in enumerate(hits)
            ]  # fmt: skip
            relative = f"samples/{model}/{task}.jsonl"
            (run_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            (run_dir / relative).write_text("".join(json.dumps(r) + "\n" for r in rows))
            p = sum(hits) / n
            stderr = math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else 0.0
            entry["suites"][suite] = {
                "status": "ok",
                "tasks": {
                    task: {
                        "metrics": {"acc,none": p, "acc_stderr,none": stderr},
                        "n_samples": {"original": n, "effective": n},
                        "samples_file": relative,
                    }
                },
            }
        models[model] = entry
    for model, error in (failed or {}).items():
        models[model] = {"status": "failed", "error": error, "suites": {}}
    return crafted_record(
        suites=suites,
        models=models,
        run={"directory": str(run_dir)},
        scope=scope or {"partial": False, "items_scored": 0},
    )


def config(gates: list[dict], models=("qwen", "glm"), **extra) -> RunConfig:
    return RunConfig.model_validate(
        {
            "name": "t",
            "models": [{"id": m, "path": "/m"} for m in models],
            "suites": ["native_hi", "native_ta"],
            "gates": gates,
            **extra,
        }
    )


def by_model(checks):
    return {(c.model, c.task): c for c in checks}


def wilson(right: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval, by its formula (not by the library harness uses)."""
    p = right / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_min_pass_fail_and_inconclusive(tmp_path):
    data = results(
        tmp_path,
        {
            "qwen": {"native_hi_mc": (80, 100), "native_ta_mc": (62, 100)},
            "glm": {"native_hi_mc": (75, 100), "native_ta_mc": (30, 100)},
        },
    )
    gates = config([{"language": "hi", "min": 0.6}, {"language": "ta", "min": 0.6}])
    checks = by_model(judge_gates(gates, data))
    hi = checks[("qwen", "native_hi_mc")]
    low, high = wilson(80, 100)
    assert hi.status == "pass" and hi.threshold == 0.6 and hi.items == 100
    assert hi.margin == pytest.approx(0.20)
    assert (hi.margin_low, hi.margin_high) == (pytest.approx(low - 0.6), pytest.approx(high - 0.6))
    assert hi.method == "wilson 95%"
    unsure = checks[("qwen", "native_ta_mc")]  # 0.62, but its interval reaches below 0.6
    assert unsure.status == "inconclusive" and "cannot tell" in unsure.detail
    assert unsure.margin_low < 0 < unsure.margin_high
    failed = checks[("glm", "native_ta_mc")]
    assert failed.status == "fail" and failed.margin_high < 0
    verdict = summary(list(checks.values()), gates, data)
    assert verdict["passed"] is False and verdict["judged"] is True
    assert verdict["counts"] == {"pass": 2, "inconclusive": 1, "fail": 1}


def test_inconclusive_fails_the_run_unless_the_config_says_otherwise(tmp_path):
    data = results(tmp_path, {"qwen": {"native_hi_mc": (62, 100)}})
    strict = config([{"language": "hi", "min": 0.6}], models=("qwen",))
    lenient = config(
        [{"language": "hi", "min": 0.6}], models=("qwen",), decision={"inconclusive_fails": False}
    )
    [check] = judge_gates(strict, data)
    assert check.status == "inconclusive"
    assert summary([check], strict, data)["passed"] is False
    assert summary([check], lenient, data)["passed"] is True


@pytest.mark.parametrize(
    ("right", "n", "minimum", "status"),
    [
        (5, 5, 0.5, "insufficient evidence"),  # perfect, on too few items
        (0, 40, 0.25, "fail"),  # score 0: Wilson still has width, and it is below 0.25
        (40, 40, 0.9, "pass"),  # score 1: Wilson's low end is above 0.9
        (20, 40, 0.5, "inconclusive"),  # exactly at the threshold
    ],
)
def test_decisions_at_the_edges(tmp_path, right, n, minimum, status):
    data = results(tmp_path, {"qwen": {"native_hi_mc": (right, n)}})
    [check] = judge_gates(config([{"language": "hi", "min": minimum}], models=("qwen",)), data)
    assert check.status == status
    low, high = wilson(right, n)
    assert check.margin_low == pytest.approx(low - minimum)
    assert check.margin_high == pytest.approx(high - minimum)


def test_a_smaller_sample_makes_passing_harder_not_easier(tmp_path):
    gates = config([{"language": "hi", "min": 0.6}], models=("qwen",))
    small = results(tmp_path / "small", {"qwen": {"native_hi_mc": (18, 24)}})
    large = results(tmp_path / "large", {"qwen": {"native_hi_mc": (300, 400)}})
    [few] = judge_gates(gates, small)
    [many] = judge_gates(gates, large)  # the same 0.75
    assert few.status == "inconclusive" and many.status == "pass"


def test_relative_to_primary_pairs_the_items(tmp_path):
    # glm is right on the first 70 items, a subset of qwen's first 80: paired, the difference
    # is known far better than the two scores' errors would say apart.
    data = results(
        tmp_path,
        {
            "qwen": {"native_hi_mc": (80, 100), "native_ta_mc": (80, 100)},
            "glm": {"native_hi_mc": (70, 100), "native_ta_mc": (40, 100)},
        },
    )
    gate = {"suite": "native_hi", "relative_to": "primary", "min_ratio": 0.75}
    [hi] = judge_gates(config([gate]), data)
    assert hi.model == "glm" and hi.reference == 0.80 and hi.threshold == pytest.approx(0.60)
    assert hi.status == "pass" and hi.items == 100 and "bootstrap" in hi.method
    unpaired = 1.96 * math.hypot(hi.stderr, 0.75 * hi.reference_stderr)
    assert hi.margin - unpaired < 0 < hi.margin_low  # unpaired, it would be inconclusive
    ta_gate = {"language": "ta", "relative_to": "qwen", "min_ratio": 0.75}
    [ta] = judge_gates(config([ta_gate]), data)
    assert ta.status == "fail" and ta.margin == pytest.approx(0.40 - 0.60)


def test_max_drop_against_a_baseline_on_the_items_both_scored(tmp_path):
    same_80 = [1] * 40 + [0] * 40 + [1] * 10 + [0] * 10  # like the baseline on its 80 items
    now = results(
        tmp_path / "now",
        {"qwen": {"native_hi_mc": (60, 100), "native_ta_mc": (50, 100)}},
        correct={("qwen", "native_ta_mc"): same_80},
    )
    before = results(
        tmp_path / "before",
        {"qwen": {"native_hi_mc": (70, 100), "native_ta_mc": (40, 80)}},
    )
    drops = [{"suite": "native_hi", "max_drop": 0.02}, {"suite": "native_ta", "max_drop": 0.02}]
    gates = config(drops, models=("qwen",))
    checks = by_model(judge_gates(gates, now, before))
    hi = checks[("qwen", "native_hi_mc")]
    assert hi.status == "fail" and hi.margin == pytest.approx(0.60 - 0.68)  # a 0.10 drop
    ta = checks[("qwen", "native_ta_mc")]  # the 80 shared items are the same: no drop
    assert ta.items == 80 and "80 items both scored" in ta.detail
    assert ta.status == "pass" and ta.margin_low == pytest.approx(0.02)
    no_baseline = judge_gates(gates, now, None)
    assert {c.status for c in no_baseline} == {"not judged"}
    assert summary(no_baseline, gates, now)["passed"] is True


def test_a_partial_run_is_not_judged(tmp_path):
    scope = {"partial": True, "reasons": ["limit of 5 items per task"], "items_scored": 5}
    data = results(tmp_path, {"qwen": {"native_hi_mc": (100, 100)}}, scope=scope)
    gates = config([{"language": "hi", "min": 0.5}], models=("qwen",))
    [check] = judge_gates(gates, data)
    assert check.status == "not judged" and "limit of 5 items per task" in check.detail
    verdict = summary([check], gates, data)
    assert verdict["judged"] is False and verdict["passed"] is False
    opted_in = config(
        [{"language": "hi", "min": 0.5}], models=("qwen",), decision={"judge_partial": True}
    )
    [judged] = judge_gates(opted_in, data)
    assert judged.status == "pass"


def test_above_chance(tmp_path):
    data = results(
        tmp_path,
        {"qwen": {"native_hi_mc": (80, 100)}, "glm": {"native_hi_mc": (20, 100)},
         "kimi": {"native_hi_mc": (10, 100)}},
    )  # fmt: skip
    gates = config([{"language": "hi", "above_chance": True}], models=("qwen", "glm", "kimi"))
    checks = by_model(judge_gates(gates, data))
    assert {c.chance for c in checks.values()} == {0.25}
    assert checks[("qwen", "native_hi_mc")].status == "pass"
    assert checks[("glm", "native_hi_mc")].status == "inconclusive"  # below chance, not surely
    assert checks[("kimi", "native_hi_mc")].status == "fail"


def test_a_metric_without_item_values_uses_lm_evals_standard_error(tmp_path):
    data = results(tmp_path, {"qwen": {"native_hi_mc": (30, 100)}})
    task = data.models["qwen"].suites["native_hi"].tasks["native_hi_mc"]
    task.metrics.update({"chrf,none": 40.0, "chrf_stderr,none": 2.0})
    gates = config([{"language": "hi", "metric": "chrf", "min": 36}], models=("qwen",))
    [check] = judge_gates(gates, data)
    assert check.status == "pass" and "normal" in check.method
    assert check.margin_low == pytest.approx(40 - 1.959964 * 2 - 36, abs=1e-4)


def test_a_failed_model_is_missing_and_fails_the_gate(tmp_path):
    data = results(tmp_path, {"qwen": {"native_hi_mc": (90, 100)}}, failed={"glm": "out of memory"})
    gates = config([{"language": "hi", "min": 0.5}])
    checks = by_model(judge_gates(gates, data))
    assert checks[("glm", "native_hi_mc")].status == "missing"
    assert "out of memory" in checks[("glm", "native_hi_mc")].detail
    verdict = summary(list(checks.values()), gates, data)
    assert verdict["passed"] is False
    assert verdict["verdicts"] == {"qwen": {"hi": "pass"}, "glm": {"hi": "missing"}}


def test_gate_selects_only_the_models_it_names(tmp_path):
    data = results(
        tmp_path, {"qwen": {"native_hi_mc": (90, 100)}, "glm": {"native_hi_mc": (10, 100)}}
    )
    checks = judge_gates(config([{"task": "native_hi_mc", "min": 0.5, "models": ["qwen"]}]), data)
    assert [(c.model, c.status) for c in checks] == [("qwen", "pass")]


def test_a_metric_scope_and_a_gate_that_selects_nothing(tmp_path):
    data = results(tmp_path, {"qwen": {"native_hi_mc": (90, 100)}}, failed={"glm": "out of memory"})
    gate = {"language": "hi", "metric": "exact_match", "min": 0.5}
    [check] = judge_gates(config([gate]), data)  # no task of the run reports exact_match
    assert check.status == "missing" and check.task == "—"
    assert check.detail == "the gate selects no scored task of this run with metric exact_match"
    checks = judge_gates(config([{"language": "hi", "metric": "acc", "min": 0.5}]), data)
    assert [(c.model, c.status) for c in checks] == [("qwen", "pass"), ("glm", "missing")]


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"min": 0.5}, "name exactly one of suite, task or language"),
        ({"language": "hi"}, "give exactly one rule"),
        ({"language": "hi", "min": 0.5, "max_drop": 0.1}, "give exactly one rule"),
        ({"language": "hi", "min": 0.5, "above_chance": True}, "give exactly one rule"),
        ({"language": "hi", "relative_to": "qwen"}, "relative_to and min_ratio go together"),
        ({"language": "hi", "relative_to": "kimi", "min_ratio": 0.9}, "unknown model"),
    ],
)
def test_malformed_gates_are_config_errors(tmp_path, gate, message):
    from harness.config import load_config

    from .conftest import write_config

    path = write_config(
        tmp_path,
        {
            "name": "t",
            "models": [{"id": "qwen", "path": "m"}],
            "suites": ["smoke"],
            "gates": [gate],
        },
    )
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_noise_z_is_refused_with_its_replacement(tmp_path):
    from harness.config import load_config

    from .conftest import write_config

    path = write_config(
        tmp_path,
        {"name": "t", "models": [{"id": "qwen", "path": "m"}], "suites": ["smoke"],
         "noise_z": 1.96},
    )  # fmt: skip
    with pytest.raises(ConfigError, match="decision: {confidence"):
        load_config(path)


def test_a_gate_may_name_several_languages(tmp_path):
    data = results(tmp_path, {"qwen": {"native_hi_mc": (90, 100), "native_ta_mc": (20, 100)}})
    gates = config([{"name": "floor", "language": ["hi", "ta"], "metric": "acc", "min": 0.5}],
                   models=("qwen",))  # fmt: skip
    checks = by_model(judge_gates(gates, data))
    assert checks[("qwen", "native_hi_mc")].status == "pass"
    assert checks[("qwen", "native_ta_mc")].status == "fail"
    verdict = summary(list(checks.values()), gates, data)
    assert verdict["verdicts"] == {"qwen": {"hi": "pass", "ta": "fail"}}

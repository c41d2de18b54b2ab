"""Gates judged on crafted results: pass, within noise, fail, missing, not judged, with the
numbers and the margin."""

from __future__ import annotations

import pytest

from harness.config import RunConfig
from harness.errors import ConfigError
from harness.gates import judge_gates, summary

from .records import crafted_record


def results(scores: dict[str, dict[str, tuple[float, float]]], failed: dict | None = None):
    """A results.json document: model -> task -> (acc, stderr) for the native_hi and native_ta
    suites (one multiple-choice task each), and models whose suite failed."""
    suites = {
        "native_hi": {"tasks": ["native_hi_mc"], "languages": {"native_hi_mc": "hi"}},
        "native_ta": {"tasks": ["native_ta_mc"], "languages": {"native_ta_mc": "ta"}},
    }
    models = {}
    for model, tasks in scores.items():
        entry = {"status": "ok", "suites": {}}
        for task, (value, stderr) in tasks.items():
            suite = task.removesuffix("_mc")
            entry["suites"][suite] = {
                "status": "ok",
                "tasks": {task: {"metrics": {"acc,none": value, "acc_stderr,none": stderr}}},
            }
        models[model] = entry
    for model, error in (failed or {}).items():
        models[model] = {"status": "failed", "error": error, "suites": {}}
    return crafted_record(suites=suites, models=models)


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


def test_min_pass_within_noise_and_fail():
    data = results(
        {
            "qwen": {"native_hi_mc": (0.70, 0.06), "native_ta_mc": (0.55, 0.07)},
            "glm": {"native_hi_mc": (0.62, 0.06), "native_ta_mc": (0.30, 0.06)},
        }
    )
    checks = by_model(
        judge_gates(config([{"language": "hi", "min": 0.6}, {"language": "ta", "min": 0.6}]), data)
    )
    hi = checks[("qwen", "native_hi_mc")]
    assert hi.status == "pass" and hi.margin == pytest.approx(0.10) and hi.threshold == 0.6
    short = checks[("qwen", "native_ta_mc")]  # 0.05 short, noise 1.96 x 0.07 = 0.137
    assert short.status == "within noise" and short.margin == pytest.approx(-0.05)
    assert short.noise == pytest.approx(1.96 * 0.07)
    failed = checks[("glm", "native_ta_mc")]  # 0.30 short, noise 0.118
    assert failed.status == "fail" and "0.3 below 0.6" in failed.detail
    assert summary(list(checks.values()))["passed"] is False


def test_relative_to_primary_uses_the_stderr_of_the_difference():
    data = results(
        {
            "qwen": {"native_hi_mc": (0.80, 0.03), "native_ta_mc": (0.80, 0.03)},
            "glm": {"native_hi_mc": (0.70, 0.03), "native_ta_mc": (0.50, 0.03)},
        }
    )
    gate = {"suite": "native_hi", "relative_to": "primary", "min_ratio": 0.9}
    [hi] = judge_gates(config([gate]), data)
    assert hi.model == "glm" and hi.reference == 0.80 and hi.threshold == pytest.approx(0.72)
    assert hi.noise == pytest.approx(1.96 * (0.03**2 + (0.9 * 0.03) ** 2) ** 0.5)
    assert hi.status == "within noise"
    ta_gate = {"language": "ta", "relative_to": "qwen", "min_ratio": 0.9}
    [ta] = judge_gates(config([ta_gate]), data)
    assert ta.status == "fail" and ta.margin == pytest.approx(0.50 - 0.72)


def test_max_drop_against_a_baseline():
    now = results({"qwen": {"native_hi_mc": (0.60, 0.02), "native_ta_mc": (0.50, 0.02)}})
    before = results({"qwen": {"native_hi_mc": (0.70, 0.02), "native_ta_mc": (0.515, 0.02)}})
    drops = [{"suite": "native_hi", "max_drop": 0.02}, {"suite": "native_ta", "max_drop": 0.02}]
    gates = config(drops, models=("qwen",))
    checks = by_model(judge_gates(gates, now, before))
    assert checks[("qwen", "native_hi_mc")].status == "fail"  # 0.10 drop
    assert checks[("qwen", "native_ta_mc")].status == "pass"  # 0.015 drop
    no_baseline = judge_gates(gates, now, None)
    assert {c.status for c in no_baseline} == {"not judged"}
    assert summary(no_baseline)["passed"] is True


def test_a_drop_smaller_than_its_uncertainty_is_within_noise():
    now = results({"qwen": {"native_hi_mc": (0.60, 0.05)}})
    before = results({"qwen": {"native_hi_mc": (0.70, 0.05)}})
    gates = config([{"language": "hi", "max_drop": 0.02}], models=("qwen",))
    [check] = judge_gates(gates, now, before)  # 0.08 over, noise 1.96 x 0.0707 = 0.139
    assert check.status == "within noise"
    exact = config([{"language": "hi", "max_drop": 0.02}], models=("qwen",), noise_z=0)
    [strict] = judge_gates(exact, now, before)
    assert strict.status == "fail"


def test_a_failed_model_is_missing_and_fails_the_gate():
    data = results({"qwen": {"native_hi_mc": (0.9, 0.01)}}, failed={"glm": "out of memory"})
    checks = by_model(judge_gates(config([{"language": "hi", "min": 0.5}]), data))
    assert checks[("glm", "native_hi_mc")].status == "missing"
    assert "out of memory" in checks[("glm", "native_hi_mc")].detail
    verdict = summary(list(checks.values()))
    assert verdict["passed"] is False
    assert verdict["verdicts"] == {"qwen": {"hi": "pass"}, "glm": {"hi": "missing"}}


def test_gate_selects_only_the_models_it_names():
    data = results({"qwen": {"native_hi_mc": (0.9, 0.01)}, "glm": {"native_hi_mc": (0.1, 0.01)}})
    checks = judge_gates(config([{"task": "native_hi_mc", "min": 0.5, "models": ["qwen"]}]), data)
    assert [(c.model, c.status) for c in checks] == [("qwen", "pass")]


def test_a_metric_scope_and_a_gate_that_selects_nothing():
    data = results({"qwen": {"native_hi_mc": (0.9, 0.01)}}, failed={"glm": "out of memory"})
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


def test_a_gate_may_name_several_languages():
    data = results({"qwen": {"native_hi_mc": (0.9, 0.01), "native_ta_mc": (0.2, 0.01)}})
    gates = config([{"name": "floor", "language": ["hi", "ta"], "metric": "acc", "min": 0.5}],
                   models=("qwen",))  # fmt: skip
    checks = by_model(judge_gates(gates, data))
    assert checks[("qwen", "native_hi_mc")].status == "pass"
    assert checks[("qwen", "native_ta_mc")].status == "fail"
    assert summary(list(checks.values()))["verdicts"] == {"qwen": {"hi": "pass", "ta": "fail"}}

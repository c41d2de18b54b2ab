"""`harness run` end to end on a tiny real Qwen2 built in the test: results.json, per-sample
logs and report.md, written from a run in its own process."""

from __future__ import annotations

import hashlib
import json

import pytest

from harness.phases import PHASES

from .conftest import only_run_dir, run_harness, write_config, write_generation_task

LANGUAGES = ["en", "hi", "ta", "ar", "fr", "de", "ko", "ja"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("tiny-run")
    config = write_config(
        root,
        {
            "name": "tiny",
            "models": [{"id": "tiny-qwen2", "path": str(tiny_model_dir), "device": "cpu"}],
            "suites": ["smoke"],
        },
    )
    proc = run_harness("run", str(config), "--limit", "5", "--output", str(root / "results"))
    return proc, only_run_dir(root / "results") if proc.returncode == 0 else None


def test_run_exits_zero_and_names_the_report(tiny_run):
    proc, run_dir = tiny_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{run_dir}/report.html" in proc.stderr


def test_results_json_has_every_language_with_stderr(tiny_run):
    _, run_dir = tiny_run
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "complete" and results["exit_code"] == 0
    tasks = results["models"]["tiny-qwen2"]["suites"]["smoke"]["tasks"]
    for lang in LANGUAGES:
        metrics = tasks[f"smoke_{lang}"]["metrics"]
        assert 0.0 <= metrics["acc,none"] <= 1.0
        assert metrics["acc_stderr,none"] > 0
        assert "acc_norm,none" in metrics
        assert tasks[f"smoke_{lang}"]["n_samples"] == {"original": 24, "effective": 5}
    assert results["suites"]["smoke"]["languages"]["smoke_ta"] == "ta"
    assert "acc,none" in tasks["smoke"]["metrics"]  # the group's aggregate


def test_results_record_identity_environment_and_timing(tiny_run, tiny_model_dir):
    _, run_dir = tiny_run
    results = json.loads((run_dir / "results.json").read_text())
    model = results["models"]["tiny-qwen2"]
    [weights] = model["identity"]["weight_files"]
    blob = (tiny_model_dir / "model.safetensors").read_bytes()
    assert weights["sha256"] == hashlib.sha256(blob).hexdigest()
    assert weights["size_bytes"] == len(blob)
    assert (model["dtype"], model["device"]) == ("float32", "cpu")
    assert model["parameters"] > 0 and model["load_seconds"] > 0
    assert results["environment"]["packages"]["lm_eval"]
    assert results["environment"]["hardware"]["cpu_count"] >= 1
    assert results["run"]["wall_seconds"] > 0
    assert results["config"]["suites"] == ["smoke"] and len(results["config_hash"]) == 64
    assert results["offline"]["attempts"] == []
    assert results["offline"]["guard"]["self_test"]["passed"] is True
    plan = results["preflight"]["models"]["tiny-qwen2"]
    assert plan["verdict"] == "fits" and plan["parameters"]["total"] == model["parameters"]
    assert plan["weights_bytes"] == 4 * model["parameters"]  # float32
    assert "Memory preflight" in (run_dir / "report.md").read_text()
    assert results["offline"]["env"]["HF_DATASETS_OFFLINE"] == "1"


def test_per_sample_logs(tiny_run):
    _, run_dir = tiny_run
    results = json.loads((run_dir / "results.json").read_text())
    tasks = results["models"]["tiny-qwen2"]["suites"]["smoke"]["tasks"]
    rows = [json.loads(line) for line in (run_dir / tasks["smoke_ja"]["samples_file"]).open()]
    assert len(rows) == 5
    data_files = results["suites"]["smoke"]["data_files"]
    [ja_file] = [f["path"] for f in data_files if f["path"].endswith("ja.jsonl")]
    data = [json.loads(line) for line in open(ja_file, encoding="utf-8")]
    for row in rows:
        item = data[row["doc_id"]]
        assert item["question"] in row["prompt"]
        assert row["choices"] == item["choices"] and row["target"] == item["answer"]
        assert row["answer"] in range(4) and len(row["loglikelihoods"]) == 4
        assert row["correct"] == (row["answer"] == row["target"]) == (row["metrics"]["acc"] == 1.0)
    accuracy = sum(r["correct"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(tasks["smoke_ja"]["metrics"]["acc,none"])


def test_report_markdown(tiny_run):
    _, run_dir = tiny_run
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# Run `tiny`")
    assert "| model | smoke | en (smoke_en; chance 0.250) | hi (smoke_hi; chance 0.250) |" in report
    assert "> **PARTIAL: 40 of 192 items (limit of 5 items per task)**" in report
    assert "| tiny-qwen2 |" in report
    assert "## Offline attestation" in report
    assert "Network attempts during the run: **0**" in report
    assert not list(run_dir.rglob("*.tmp")), "a temporary file was left behind"


def test_model_and_suite_selection(tmp_path, tiny_model_dir):
    config = write_config(
        tmp_path,
        {
            "name": "pick",
            "models": [
                {"id": "a", "path": str(tiny_model_dir), "device": "cpu"},
                {"id": "b", "path": str(tiny_model_dir), "device": "cpu"},
            ],
            "suites": ["smoke"],
        },
    )
    proc = run_harness(
        "run",
        str(config),
        "--model",
        "b",
        "--suite",
        "smoke_fr",
        "--limit",
        "2",
        "--output",
        str(tmp_path / "results"),
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())
    assert list(results["models"]) == ["b"]
    assert list(results["models"]["b"]["suites"]) == ["smoke_fr"]


def test_a_generation_task_from_task_paths(tmp_path, tiny_model_dir):
    rows = [{"prompt": f"Say {w}:", "target": w} for w in ("yes", "no", "maybe")]
    write_generation_task(tmp_path / "tasks", "echo_gen", rows)
    config = write_config(
        tmp_path,
        {
            "name": "gen",
            "models": [{"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}],
            "suites": ["echo_gen"],
            "task_paths": ["tasks"],
        },
    )
    proc = run_harness("run", str(config), "--output", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(tmp_path / "results")
    results = json.loads((run_dir / "results.json").read_text())
    task = results["models"]["tiny"]["suites"]["echo_gen"]["tasks"]["echo_gen"]
    assert task["metrics"]["exact_match,none"] == 0.0  # random weights do not say "yes"
    samples = [json.loads(line) for line in (run_dir / task["samples_file"]).open()]
    assert [s["target"] for s in samples] == ["yes", "no", "maybe"]
    assert all(isinstance(s["answer"], str) and s["correct"] is False for s in samples)
    assert samples[0]["prompt"] == "Say yes:"


def test_tokenizer_fitness_per_language_next_to_the_scores(tiny_run, tiny_model_dir):
    from transformers import AutoTokenizer

    _, run_dir = tiny_run
    results = json.loads((run_dir / "results.json").read_text())
    fitness = results["models"]["tiny-qwen2"]["tokenizer"]
    assert set(fitness) == set(LANGUAGES)
    for language, fit in fitness.items():
        assert fit["items"] == 5 and fit["roundtrip_lossless"] == 1.0  # byte-level BPE
        assert fit["unknown_rate"] == 0.0 and fit["tokens_per_char"] > 0
        assert 0 < fit["context_share"] < 1
        assert (fit["tokens_per_word"] is None) == (language == "ja")
    # Recount one language from the per-sample log with the same tokenizer.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [
        json.loads(line)
        for line in (run_dir / "samples" / "tiny-qwen2" / "smoke_hi.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    texts = [t for row in rows for t in [row["prompt"], *row["choices"]]]
    expected = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    assert fitness["hi"]["tokens"] == expected
    assert "## Tokenizer fitness" in (run_dir / "report.md").read_text()


def test_results_have_phases_and_throughput(tiny_run):
    _, run_dir = tiny_run
    results = json.loads((run_dir / "results.json").read_text())
    phases = results["run"]["phases"]
    assert list(phases) == list(PHASES)
    assert all(p["seconds"] >= 0 and p["peak_rss_bytes"] > 0 for p in phases.values())
    # wall_seconds runs from the job's start to before the reports: start-up and report are outside.
    inside = sum(p["seconds"] for name, p in phases.items() if name not in ("startup", "report"))
    assert 0 < inside <= results["run"]["wall_seconds"]

    model = results["models"]["tiny-qwen2"]
    speed = model["throughput"]
    suite = model["suites"]["smoke"]
    assert suite["work"]["loglikelihood_items"] == 8 * 5  # 8 languages, --limit 5
    assert suite["work"]["loglikelihood_requests"] == 8 * 5 * 4  # four choices each
    assert speed["loglikelihood_items"] == 40
    assert speed["loglikelihood_items_per_second"] == round(40 / speed["loglikelihood_seconds"], 3)
    assert speed["generation_tokens_per_second"] is None  # no generation task in smoke
    assert speed["load_seconds"] == model["load_seconds"] and speed["peak_rss_bytes"] > 0
    assert speed["context_sharing"]["used"] is True
    assert speed["context_sharing"]["max_relative_difference"] <= 1e-5

    report = (run_dir / "report.md").read_text()
    assert "### Speed and memory" in report and "| model load |" in report
    html = (run_dir / "report.html").read_text()
    assert "generated tokens/s" in html and "data load" in html

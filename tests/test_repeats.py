"""Sampling and repeats (`harness.repeats`): pass@k and the summary on hand-computed values, the
settings every engine receives, config validation, and a sampled run end to end on a tiny model:
k answers per item in the per-sample log, mean ± stderr and pass@k in results.json and the
report, the same answers for the same seed and others for another."""

from __future__ import annotations

import json
import math

import pytest

from harness.config import GenerationLimits
from harness.repeats import (
    batch_seed,
    draw_seed,
    lm_eval_seeds,
    pass_at_k,
    sampling_kwargs,
    start_draws,
    summarize,
    task_summary,
)

from .conftest import only_run_dir, run_harness, write_config, write_generation_task


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 0, 1, 0.0),
        (4, 1, 1, 0.25),  # pass@1 is the share of right answers
        (4, 2, 2, 1 - 1 / 6),  # 1 - C(2,2)/C(4,2)
        (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
        (4, 3, 2, 1.0),  # fewer wrong answers than k: a right one is always drawn
        (4, 1, 4, 1.0),
        (4, 0, 4, 0.0),
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
    ],
)
def test_pass_at_k_is_the_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)])
def test_pass_at_k_refuses_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


def test_summary_of_exact_match_samples():
    # Three items, four samples each: per-item means 0.5, 0 and 1.
    per_sample = [[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
    summary = summarize(per_sample, "exact_match,none")
    assert summary["k"] == 4 and summary["items"] == 3 and summary["metric"] == "exact_match"
    assert summary["mean"] == pytest.approx(0.5)
    # sample sd of (0.5, 0, 1) is 0.5; over sqrt(3) items
    assert summary["stderr"] == pytest.approx(0.5 / math.sqrt(3))
    assert summary["pass_at_k"] == {1: pytest.approx(0.5), 4: pytest.approx(2 / 3)}


def test_summary_of_another_metric_has_no_pass_at_k():
    summary = summarize([[0.5, 1.0], [0.0, 0.5]], "f1")
    assert summary["mean"] == pytest.approx(0.5)
    assert summary["stderr"] == pytest.approx(math.sqrt(0.125 / 2))  # means 0.75, 0.25
    assert summary["pass_at_k"] == {}


def test_summary_of_one_item_has_no_stderr_and_refuses_ragged_items():
    assert summarize([[1.0, 0.0]], "exact_match")["stderr"] is None
    with pytest.raises(ValueError, match="different numbers of samples"):
        summarize([[1.0, 0.0], [1.0]], "exact_match")
    with pytest.raises(ValueError, match="no items"):
        summarize([], "exact_match")


def test_task_summary_reads_the_log_rows_of_the_metric_filter():
    def row(doc_id, values, filt):
        return {
            "doc_id": doc_id,
            "filter": filt,
            "sample_metrics": [{"exact_match": v} for v in values],
        }

    rows = [
        row(0, [1, 0], "strict"),
        row(1, [0, 0], "strict"),
        row(0, [1, 1], "flexible"),
        row(1, [1, 1], "flexible"),
    ]
    strict = task_summary(rows, "exact_match,strict")
    assert strict["items"] == 2 and strict["mean"] == pytest.approx(0.25)
    assert strict["pass_at_k"] == {1: pytest.approx(0.25), 2: pytest.approx(0.5)}
    assert task_summary(rows, "exact_match,flexible")["mean"] == 1.0
    assert task_summary(rows, "chrf,strict") is None  # no value per answer
    assert task_summary([{"doc_id": 0, "answer": "x"}], "exact_match,none") is None


def test_sampling_settings_every_engine_receives():
    assert sampling_kwargs(GenerationLimits()) == {}  # each task decodes as it says
    assert sampling_kwargs(GenerationLimits(temperature=0)) == {
        "do_sample": False,
        "temperature": 0.0,
    }
    limits = GenerationLimits(temperature=0.6, top_p=0.95, top_k=20, repeats=4, seed=7)
    assert sampling_kwargs(limits) == {
        "do_sample": True,
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
    }
    assert set(lm_eval_seeds(7).values()) == {7}
    assert set(lm_eval_seeds(7)) == {
        "random_seed",
        "numpy_random_seed",
        "torch_random_seed",
        "fewshot_random_seed",
    }


def test_batch_seed_depends_on_the_seed_the_batch_and_the_draw():
    settings = {"do_sample": True, "temperature": 0.6}
    first = batch_seed(1234, ["a", "b"], settings, 0)
    assert first == batch_seed(1234, ["a", "b"], dict(reversed(settings.items())), 0)
    others = {
        batch_seed(1235, ["a", "b"], settings, 0),
        batch_seed(1234, ["b", "a"], settings, 0),
        batch_seed(1234, ["a", "b"], {**settings, "top_p": 0.9}, 0),
        batch_seed(1234, ["a", "b"], settings, 1),  # the same prompts sampled again
    }
    assert first not in others and len(others) == 4
    assert 0 <= first < 2**63


def test_draw_seed_counts_the_draws_of_each_prompt_per_engine():
    """The one derivation every engine seeds from: a prompt's k-th draw gets batch_seed's k-th
    value whatever else was drawn in between; a new engine (a resumed run) and the next call
    of generate_until start again."""

    class Engine:
        pass

    settings = {"do_sample": True, "temperature": 0.6}
    engine = Engine()
    drawn = [draw_seed(engine, ["a"], settings, 7), draw_seed(engine, ["b"], settings, 7)]
    drawn.append(draw_seed(engine, ["a"], settings, 7))
    assert drawn == [
        batch_seed(7, ["a"], settings, 0),
        batch_seed(7, ["b"], settings, 0),
        batch_seed(7, ["a"], settings, 1),
    ]
    resumed = Engine()
    assert draw_seed(resumed, ["a"], settings, 7) == drawn[0]
    assert draw_seed(resumed, ["a"], {**settings, "top_k": 20}, 7) != drawn[2]
    start_draws(engine)  # the next generate_until: the same prompt draws as if first
    assert draw_seed(engine, ["a"], settings, 7) == drawn[0]


@pytest.mark.parametrize(
    ("generation", "message"),
    [
        ({"repeats": 4}, "repeats: 4 with greedy decoding"),
        ({"repeats": 4, "temperature": 0}, "repeats: 4 with greedy decoding"),
        ({"top_p": 0.95}, "top_p and top_k apply to sampling"),
        ({"temperature": 0.6, "top_p": 1.5}, "top_p"),
        ({"temperature": 0.6, "repeats": 0}, "repeats"),
    ],
)
def test_sampling_settings_are_checked(generation, message):
    with pytest.raises(ValueError, match=message):
        GenerationLimits(**generation)


def test_repeats_without_temperature_is_exit_2(tmp_path):
    config = write_config(
        tmp_path,
        {
            "name": "greedy-repeats",
            "models": [{"id": "m", "path": str(tmp_path), "generation": {"repeats": 4}}],
            "suites": ["smoke_en"],
        },
    )
    for command in (["validate"], ["run", "--output", str(tmp_path / "out")]):
        proc = run_harness(*command, str(config))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "repeats: 4 with greedy decoding" in proc.stderr
        assert "set temperature above 0" in proc.stderr and "Traceback" not in proc.stderr


def _sampled_run(tmp_path, model_dir, seed: int, name: str):
    # An exact-match task a random-weight model passes now and then: everything but the letter
    # `e` is ignored, so an answer is right when it holds exactly one `e`.
    tasks = tmp_path / "tasks"
    if not tasks.exists():
        rows = [{"prompt": f"Write a word with one e ({i}):", "target": "e"} for i in range(10)]
        write_generation_task(tasks, "sampled_e", rows, ignore="[^e]")
    # DeepSeek-R1-style card values; four samples per item
    generation = {"temperature": 0.6, "top_p": 0.95, "repeats": 4, "seed": seed}
    config = write_config(
        tmp_path,
        {
            "name": "sampled",
            "models": [
                {
                    "id": "reasoner",
                    "path": str(model_dir),
                    "device": "cpu",
                    "chat_template": True,
                    "generation": generation,
                }
            ],
            "suites": ["sampled_e"],
            "task_paths": ["tasks"],
        },
        name=f"{name}.yaml",
    )
    proc = run_harness("run", str(config), "--output", str(tmp_path / name))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(tmp_path / name)
    results = json.loads((run_dir / "results.json").read_text())
    task = results["models"]["reasoner"]["suites"]["sampled_e"]["tasks"]["sampled_e"]
    rows = [json.loads(line) for line in (run_dir / task["samples_file"]).open()]
    return run_dir, task, rows, proc


def test_a_sampled_run_keeps_every_answer_and_reports_mean_and_pass_at_k(
    tmp_path, tiny_chat_model_dir
):
    run_dir, task, rows, proc = _sampled_run(tmp_path, tiny_chat_model_dir, 1234, "first")
    assert len(rows) == 10
    for row in rows:
        assert len(row["answers"]) == 4 and all(isinstance(a, str) for a in row["answers"])
        assert len(row["sample_metrics"]) == 4 and len(row["sample_correct"]) == 4
        assert row["sample_correct"] == [m["exact_match"] == 1.0 for m in row["sample_metrics"]]
        assert row["sample_correct"] == [a.count("e") == 1 for a in row["answers"]]
        assert row["metrics"]["exact_match"] == pytest.approx(sum(row["sample_correct"]) / 4)
        assert row["correct"] is None and len(row["generated_tokens"]) == 4
        assert len(row["sample_hit_token_limit"]) == 4 and len(row["sample_thought"]) == 4
        assert row["hit_token_limit"] == any(row["sample_hit_token_limit"])
    # The generation summary counts every answer, four per item.
    assert task["generation"]["answers"] == 40
    assert task["generation"]["hit_token_limit"] == sum(
        sum(r["sample_hit_token_limit"]) for r in rows
    )
    # The task's score, recomputed from the log: mean over items of per-item means, pass@k.
    per_item = [sum(r["sample_correct"]) / 4 for r in rows]
    mean = sum(per_item) / 10
    stderr = math.sqrt(sum((m - mean) ** 2 for m in per_item) / 9 / 10)
    repeats = task["repeats"]
    assert repeats["k"] == 4 and repeats["items"] == 10 and repeats["metric"] == "exact_match"
    assert repeats["mean"] == pytest.approx(mean)
    assert repeats["stderr"] == pytest.approx(stderr)
    assert repeats["pass_at_k"]["1"] == pytest.approx(mean)
    passed = sum(any(r["sample_correct"]) for r in rows) / 10
    assert repeats["pass_at_k"]["4"] == pytest.approx(passed)
    # lm-eval's own numbers are the same: it aggregated the per-item means.
    assert task["metrics"]["exact_match,none"] == pytest.approx(mean)
    assert task["metrics"]["exact_match_stderr,none"] == pytest.approx(stderr)
    # A random-weight model is right now and then: the summary is not trivially 0 or 1.
    assert 0 < repeats["pass_at_k"]["1"] < repeats["pass_at_k"]["4"] <= 1
    # A gate reads the per-item means: not proportions, so its interval is the bootstrap's.
    from harness.statistics import mean_interval, per_item_values

    values = per_item_values(rows, "exact_match,none")
    assert values == pytest.approx(per_item)
    assert mean_interval(values).method.startswith("bootstrap")
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "## Repeats" in report
    cell = f"{mean:.3f} ± {stderr:.3f} (mean of 4 samples; pass@1 {mean:.3f}, pass@4 "
    assert cell in report
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "pass@4" in html
    assert "pass@4" in proc.stdout

    # Same seed, another run: the same answers. Another seed: other answers.
    _, again, rows_again, _ = _sampled_run(tmp_path, tiny_chat_model_dir, 1234, "again")
    assert [r["answers"] for r in rows_again] == [r["answers"] for r in rows]
    assert again["repeats"] == repeats
    _, _, rows_other, _ = _sampled_run(tmp_path, tiny_chat_model_dir, 7, "other")
    assert [r["answers"] for r in rows_other] != [r["answers"] for r in rows]
    # The samples of an item differ from each other (a sampler, not one answer four times).
    assert all(len(set(r["answers"])) > 1 for r in rows)


def test_a_resumed_run_samples_the_answers_of_an_uninterrupted_one(tiny_model_dir, tmp_path):
    """Sampled generations are never taken from the request cache; a resumed run (a fresh
    model object, answers of a killed run in the cache) samples them again, and gets the same
    answers, since each batch is seeded from what it holds. Copies of a prompt that land in
    batches of their own (batch size below k) still get samples of their own."""
    from lm_eval.api.instance import Instance
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.generation import ReasoningAwareHFLM

    from .test_resume import request_cache

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def fresh_lm(seed: int = 1234):
        lm = ReasoningAwareHFLM(pretrained=model, tokenizer=tokenizer, batch_size=2, device="cpu")
        lm.sampling_seed = seed
        return lm

    settings = {"until": ["\n"], "max_gen_toks": 6, "do_sample": True, "temperature": 0.6}
    prompts = ["Q: 2 + 3?\nA:", "Q: Paris?\nA:", "Q: 서울?\nA:"]
    items = [
        Instance("generate_until", doc={}, arguments=(p, dict(settings)), idx=0,
                 metadata=("t", n, 3))
        for n, p in enumerate(prompts)
    ]  # fmt: skip
    requests = [item for item in items for _ in range(3)]  # lm-eval's repeats: each k times
    full = fresh_lm().generate_until(requests, disable_tqdm=True)
    for n in range(3):
        assert len(set(full[3 * n : 3 * n + 3])) > 1, "the copies of a prompt were not sampled"
    assert fresh_lm().generate_until(requests, disable_tqdm=True) == full
    assert fresh_lm(seed=7).generate_until(requests, disable_tqdm=True) != full

    answered = [(requests[i], full[i]) for i in range(4)]  # what a killed run committed
    cache = request_cache(tmp_path / "requests.db", fresh_lm(), answered)
    try:
        assert cache.generate_until(requests) == full
    finally:
        cache.dbdict.close()

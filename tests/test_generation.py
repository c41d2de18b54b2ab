"""Generation for reasoning models: thinking is not cut by stop sequences, is removed before
scoring, and answers cut by the token limit are counted. A non-thinking model gets lm-eval's
own answers.

A random model never thinks, so `reasoner` is a tiny real Qwen2 trained here (a few seconds)
until it answers four prompts by heart, three of them after a `<think>` block, one of those
opened by the prompt as a chat template does for DeepSeek-R1 distills.
"""

from __future__ import annotations

import json

import pytest

from harness.generation import ThinkTags, split_answer

from .conftest import only_run_dir, run_harness, train_tiny_qwen2, write_config

ITEMS = [
    ("Q: capital of France?\nA:", " <think>\nIt is a country.\nIts capital?\n</think>\nParis\n",
     "Paris"),
    ("Q: two plus three?\nA:", " <think>\nadd them\n</think>\n5\n", "5"),
    ("Q: capital of Italy?\nA:", " Rome\n", "Rome"),
    ("Q: where is Tokyo?\nA:<think>\n", "Tokyo\nis in Asia\n</think>\n\nJapan\n", "Japan"),
]  # fmt: skip
TASK = """
task: think_gen
custom_dataset: !function harness.suites.jsonl.load_local_jsonl
dataset_kwargs:
  data_files: {test: items.jsonl}
output_type: generate_until
test_split: test
doc_to_text: "{{prompt}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 40
  do_sample: false
process_results: !function harness.suites.short_answer.process_results
metric_list:
  - {metric: exact_match, aggregation: mean, higher_is_better: true}
  - {metric: chrf, aggregation: chrf, higher_is_better: true}
metadata: {version: 1.0, language: en}
"""


def train_reasoner(directory):
    """A tiny Qwen2 trained to continue each prompt of ITEMS as written, then stop."""
    texts = [prompt + continuation for prompt, continuation, _ in ITEMS]
    model, tokenizer = train_tiny_qwen2(directory, texts, steps=600)
    for prompt, continuation, _ in ITEMS:  # learnt by heart, or the tests below mean nothing
        encoded = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**encoded, max_new_tokens=40, do_sample=False)
        said = tokenizer.decode(out[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        assert said == continuation, (prompt, said)
    return directory


@pytest.fixture(scope="module")
def reasoner(tmp_path_factory):
    return train_reasoner(tmp_path_factory.mktemp("models") / "reasoner")


@pytest.fixture
def think_task(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "think.yaml").write_text(TASK, encoding="utf-8")
    lines = [json.dumps({"prompt": p, "answer": a}) + "\n" for p, _, a in ITEMS]
    (tasks / "items.jsonl").write_text("".join(lines), encoding="utf-8")
    return tasks


def run_think_task(tmp_path, tasks, model_dir, **generation):
    model = {"id": "reasoner", "path": str(model_dir), "device": "cpu", "batch_size": 2}
    if generation:
        model["generation"] = generation
    config = write_config(
        tmp_path,
        {"name": "think", "models": [model], "suites": ["think_gen"], "task_paths": [str(tasks)]},
    )
    proc = run_harness("run", str(config), "--output", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(tmp_path / "results")
    results = json.loads((run_dir / "results.json").read_text())
    task = results["models"]["reasoner"]["suites"]["think_gen"]["tasks"]["think_gen"]
    samples = [json.loads(line) for line in (run_dir / task["samples_file"]).open()]
    report = (run_dir / "report.md").read_text()
    return task, sorted(samples, key=lambda s: s["doc_id"]), report


@pytest.mark.slow
def test_answers_after_thinking_are_scored(tmp_path, think_task, reasoner):
    task, samples, report = run_think_task(tmp_path, think_task, reasoner)
    assert [s["answer"] for s in samples] == ["Paris", "5", " Rome", "Japan"]
    assert [s["thought"] for s in samples] == [True, True, False, True]
    assert task["metrics"]["exact_match,none"] == 1.0
    assert task["generation"] == {"answers": 4, "hit_token_limit": 0, "thought": 3}
    assert "</think>" in samples[0]["raw_output"][0] and "raw_output" not in samples[2]
    assert "| reasoner | think_gen | 4 | 3 | 0 |" in report


@pytest.mark.slow
def test_stock_lm_eval_stops_inside_the_thinking(think_task, reasoner):
    """Why harness generates itself: lm-eval's HF model applies "\\n" inside the thinking."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(reasoner)
    tokenizer = AutoTokenizer.from_pretrained(reasoner)
    out = simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=2, device="cpu"),
        tasks=["think_gen"],
        task_manager=TaskManager(include_path=str(think_task), include_defaults=False),
        log_samples=True,
    )
    answers = [
        s["filtered_resps"][0]
        for s in sorted(out["samples"]["think_gen"], key=lambda s: s["doc_id"])
    ]
    assert answers == [" <think>", " <think>", " Rome", "Tokyo"]
    assert out["results"]["think_gen"]["exact_match,none"] == 0.25


@pytest.mark.slow
def test_answers_cut_by_the_token_limit_are_counted(tmp_path, think_task, reasoner):
    limits = {"max_new_tokens": 6, "think_budget": 0}
    task, samples, report = run_think_task(tmp_path, think_task, reasoner, **limits)
    assert [s["hit_token_limit"] for s in samples] == [True, True, False, True]
    assert [s["answer"] for s in samples] == ["", "", " Rome", ""]
    assert task["generation"]["hit_token_limit"] == 3
    assert "| reasoner | think_gen | 4 | 3 | **3** |" in report


@pytest.mark.slow
def test_thinking_has_its_own_budget(tmp_path, think_task, reasoner):
    """Six tokens for the answer, and as many again to think first: enough for these four."""
    limits = {"max_new_tokens": 6, "think_budget": 30}
    task, samples, _ = run_think_task(tmp_path, think_task, reasoner, **limits)
    assert [s["answer"] for s in samples] == ["Paris", "5", " Rome", "Japan"]
    assert task["generation"]["hit_token_limit"] == 0


@pytest.mark.slow
def test_the_answer_limit_holds_after_thinking(tmp_path, think_task, reasoner):
    """One token of answer: a thinking model's answer is cut after its thinking, not before."""
    limits = {"max_new_tokens": 1, "think_budget": 30}
    task, samples, _ = run_think_task(tmp_path, think_task, reasoner, **limits)
    assert [s["hit_token_limit"] for s in samples] == [True, True, True, True]
    assert all("</think>" in s["raw_output"][0] for s in samples if s["thought"])


@pytest.mark.slow
def test_thinking_can_be_turned_off(tmp_path, think_task, reasoner):
    task, samples, _ = run_think_task(tmp_path, think_task, reasoner, think_start="", think_end="")
    assert [s["answer"] for s in samples] == [" <think>", " <think>", " Rome", "Tokyo"]
    assert task["generation"]["thought"] == 0


def test_without_thinking_the_answers_are_lm_evals(tiny_model_dir):
    """Same batches, same greedy decoding, same cut: identical strings on a model that rambles."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.generation import ReasoningAwareHFLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = ["Q: भारत की राजधानी?\nA:", "Q: 2 + 3?\nA:", "Q: Paris?\nA:", "Q: 서울?\nA:", "Q:"]
    settings = [
        {"until": ["\n"], "max_gen_toks": 12, "do_sample": False},
        {"until": ["은"], "max_gen_toks": 5},
    ]
    requests = [
        Instance("generate_until", doc={}, arguments=(p, dict(s)), idx=0, metadata=("t", i, 1))
        for i, (p, s) in enumerate((p, s) for s in settings for p in prompts)
    ]
    theirs = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=3, device="cpu")
    ours = ReasoningAwareHFLM(pretrained=model, tokenizer=tokenizer, batch_size=3, device="cpu")
    expected = theirs.generate_until(requests)
    assert ours.generate_until(requests) == expected
    assert any(len(answer) > 3 for answer in expected)  # the model does say something


@pytest.mark.parametrize(
    ("raw", "opened", "answer"),
    [
        ("<think>a\nb</think>\n\nParis\nmore", False, "Paris"),
        ("  <think>x</think> Bern", False, "Bern"),
        ("<think>never closed\n", False, ""),
        ("reasoning\n</think>\nRome\n", True, "Rome"),
        ("<think>a</think>one<think>b</think>two\n", False, "two"),
        (" Paris\nQ: next", False, " Paris"),
        ("<thinking is a word", False, "<thinking is a word"),
    ],
)
def test_split_answer(raw, opened, answer):
    assert split_answer(raw, ["\n"], ThinkTags(), opened) == answer

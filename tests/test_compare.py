"""`harness compare` finds no difference between two runs of the same model (scored afresh, not
from the cache), and a real one between a model and the same model with perturbed weights.

A random model scores about chance either way, so the model here is a tiny Qwen2 trained in the
test (seconds) until it knows the answer to each of 40 questions; the perturbed copy has noise
added to every weight and forgets them.
"""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import only_run_dir, run_harness, train_tiny_qwen2, write_config

WORDS = ["river", "mango", "train", "cloud", "lamp", "bread", "stone", "kite"]
ITEMS = [
    {"question": f"code {i}", "choices": [WORDS[(i + k) % 8] for k in range(4)], "answer": i % 4}
    for i in range(40)
]
TASK = """
task: codes
custom_dataset: !function harness.suites.jsonl.load_local_jsonl
dataset_kwargs:
  data_files: {test: codes.jsonl}
output_type: multiple_choice
test_split: test
doc_to_text: "Q: {{question}}\\nA:"
doc_to_choice: "{{choices}}"
doc_to_target: answer
metric_list:
  - {metric: acc, aggregation: mean, higher_is_better: true}
metadata: {version: 1.0, language: en}
"""


def train_knower(directory):
    """A tiny Qwen2 trained on each question followed by its right answer."""
    texts = [f"Q: {i['question']}\nA: {i['choices'][i['answer']]}" for i in ITEMS]
    train_tiny_qwen2(directory, texts, steps=400, vocab_size=200)
    return directory


def perturbed_copy(source, directory, scale: float = 4.0):
    """The same model with Gaussian noise of `scale` times each tensor's spread added."""
    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(source, directory)
    model = AutoModelForCausalLM.from_pretrained(source)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(noise * scale * parameter.std().clamp(min=1e-3))
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    knower = train_knower(root / "knower")
    noisy = perturbed_copy(knower, root / "noisy")
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "codes.yaml").write_text(TASK, encoding="utf-8")
    (tasks / "codes.jsonl").write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    config = write_config(
        root,
        {
            "name": "codes",
            "models": [{"id": "tiny", "path": str(knower), "device": "cpu"}],
            "suites": ["codes"],
            "task_paths": [str(tasks)],
        },
    )
    dirs = {}
    for name, extra in [("first", []), ("again", ["--no-cache"]),
                        ("noisy", ["--model-path", f"tiny={noisy}"])]:  # fmt: skip
        proc = run_harness("run", str(config), "--output", str(root / name), *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        dirs[name] = only_run_dir(root / name)
    return dirs


def compare(a, b, tmp_path, *extra):
    out = tmp_path / "comparison.json"
    proc = run_harness("compare", str(a), str(b), "--json", str(out), *extra)
    return proc, json.loads(out.read_text())


@pytest.mark.slow
def test_the_trained_model_knows_its_answers(runs):
    results = json.loads((runs["first"] / "results.json").read_text())
    assert (
        results["models"]["tiny"]["suites"]["codes"]["tasks"]["codes"]["metrics"]["acc,none"] >= 0.9
    )


@pytest.mark.slow
def test_two_runs_of_the_same_model_are_the_same(runs, tmp_path):
    again = json.loads((runs["again"] / "results.json").read_text())
    assert "cache" not in again["models"]["tiny"]  # scored afresh, the cache off
    proc, [row] = compare(runs["first"], runs["again"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert row["verdict"] == "same" and row["changed_answers"] == 0 and row["p_value"] == 1.0
    assert row["paired_items"] == 40 and row["max_loglik_change"] == 0.0


@pytest.mark.slow
def test_perturbed_weights_are_found_worse(runs, tmp_path):
    proc, [row] = compare(runs["first"], runs["noisy"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert row["test"] == "McNemar exact" and row["paired_items"] == 40
    assert row["verdict"] == "worse" and row["p_value"] < 1e-4 and row["delta"] < -0.4
    assert "worse" in proc.stdout
    failing, _ = compare(runs["first"], runs["noisy"], tmp_path, "--fail-on-worse")
    assert failing.returncode == 4
    reverse, [back] = compare(runs["noisy"], runs["first"], tmp_path)
    assert back["verdict"] == "better"


@pytest.mark.slow
def test_a_new_model_is_compared_by_naming_the_pair(runs, tmp_path):
    proc = run_harness("compare", str(runs["first"]), str(runs["noisy"]), "--model-a", "nope")
    assert proc.returncode == 2 and "model 'nope' is not in" in proc.stderr

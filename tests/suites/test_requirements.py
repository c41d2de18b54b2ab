"""Tasks that would fetch a metric or an NLTK resource at run time, or import a package that is
not installed, are refused before any model loads, with what to install; what is already on the
machine lets them through."""

from __future__ import annotations

import json

import pytest

from harness.suites.requirements import task_requirements

from ..conftest import run_harness, write_config

TASK = """
task: {name}
custom_dataset: !function harness.suites.jsonl.load_local_jsonl
dataset_kwargs:
  data_files: {{test: items.jsonl}}
output_type: generate_until
test_split: test
doc_to_text: "{{{{q}}}}"
doc_to_target: "{{{{a}}}}"
generation_kwargs: {{until: ["\\n"], max_gen_toks: 4}}
metric_list:
{metrics}
metadata: {{version: 1.0, language: fr}}
"""
ROUGE_UTILS = """
import evaluate


def rouge1(items):
    return items


def rouge1_agg(items):
    refs, preds = zip(*items)
    return evaluate.load("rouge").compute(predictions=preds, references=refs)["rouge1"]
"""


def task_dir(tmp_path, name: str, metrics: str, utils: str | None = None):
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / f"{name}.yaml").write_text(TASK.format(name=name, metrics=metrics), encoding="utf-8")
    (tasks / "items.jsonl").write_text(json.dumps({"q": "Capitale ?", "a": "Paris"}) + "\n")
    if utils:
        (tasks / "utils.py").write_text(utils, encoding="utf-8")
    return tasks


def refused(tmp_path, model_dir, suite: str, tasks, env=None):
    config = write_config(
        tmp_path,
        {
            "name": "needs",
            "models": [{"id": "tiny", "path": str(model_dir), "device": "cpu"}],
            "suites": [suite],
            "task_paths": [str(tasks)],
        },
    )
    proc = run_harness("run", str(config), "--output", str(tmp_path / "out"), env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "loading" not in proc.stderr and not (tmp_path / "out").exists()
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_unknown_metric_is_refused_before_loading(tmp_path, tiny_model_dir):
    tasks = task_dir(tmp_path, "fr_bert", "  - {metric: bertscore, aggregation: mean}")
    message = refused(tmp_path, tiny_model_dir, "fr_bert", tasks)
    assert "metric 'bertscore'" in message and "evaluate.load('bertscore')" in message


def test_evaluate_load_in_task_code_is_refused(tmp_path, tiny_model_dir):
    metrics = "  - {metric: !function utils.rouge1, aggregation: !function utils.rouge1_agg}"
    tasks = task_dir(tmp_path, "fr_rouge", metrics, utils=ROUGE_UTILS)
    message = refused(tmp_path, tiny_model_dir, "fr_rouge", tasks)
    assert "evaluate.load('rouge')" in message and "utils.py" in message


def test_ifeval_nltk_download_is_refused(tmp_path, tiny_model_dir):
    """lm-eval's ifeval calls nltk.download('punkt_tab') when imported, and needs langdetect."""
    data = tmp_path / "data" / "google" / "IFEval"
    data.mkdir(parents=True)
    row = {"key": 1, "prompt": "Write one word.", "instruction_id_list": [], "kwargs": []}
    (data / "ifeval_input_data.jsonl").write_text(json.dumps(row) + "\n")
    config = write_config(
        tmp_path,
        {
            "name": "ifeval",
            "data_dir": "data",
            "models": [{"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}],
            "suites": ["ifeval"],
        },
    )
    env = {"NLTK_DATA": str(tmp_path / "no-nltk-data")}
    proc = run_harness("run", str(config), "--output", str(tmp_path / "out"), env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "calls nltk.download('punkt_tab')" in proc.stderr
    assert "python -m nltk.downloader punkt_tab" in proc.stderr
    assert "imports 'langdetect'" in proc.stderr and "pip install langdetect" in proc.stderr
    assert "loading" not in proc.stderr and not (tmp_path / "out").exists()


def test_built_in_metrics_need_nothing():
    cfg = {"metric_list": [{"metric": "acc"}, {"metric": "exact_match"}, {"metric": "chrf"}]}
    assert task_requirements("t", cfg) == []


def test_hf_evaluate_flag_needs_the_module_even_for_a_built_in_name():
    cfg = {"metric_list": [{"metric": "f1", "hf_evaluate": True}]}
    assert [r.name for r in task_requirements("t", cfg)] == ["f1"]


def test_what_is_already_here_is_accepted(tmp_path, monkeypatch):
    import nltk
    from evaluate import config

    monkeypatch.setattr(config, "HF_MODULES_CACHE", tmp_path / "modules")
    cached = tmp_path / "modules" / "evaluate_modules" / "metrics" / "evaluate-metric--rouge"
    (cached / "0123abcd").mkdir(parents=True)
    (cached / "0123abcd" / "rouge.py").write_text("# the module evaluate.load saved\n")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])
    (tmp_path / "nltk_data" / "tokenizers" / "punkt_tab").mkdir(parents=True)
    utils = tmp_path / "utils.py"
    utils.write_text(ROUGE_UTILS + "\nimport nltk\nnltk.download('punkt_tab')\n")
    cfg = {"metric_list": [{"metric": f"{tmp_path}/utils.rouge1"}]}
    assert task_requirements("t", cfg) == []
    utils.write_text(ROUGE_UTILS + "\nimport nltk\nnltk.download('wordnet')\n")
    assert [(r.kind, r.name) for r in task_requirements("t", cfg)] == [("nltk", "wordnet")]


GUARDED = [
    "try:\n    import nonexistent_pkg\nexcept ImportError:\n    pass\n",
    "def f():\n    import nonexistent_pkg\n",
]


@pytest.mark.parametrize("guarded", GUARDED)
def test_optional_imports_are_left_to_the_task(tmp_path, guarded):
    (tmp_path / "utils.py").write_text(guarded + "def f2(x):\n    return x\n")
    cfg = {"process_results": f"{tmp_path}/utils.f2"}
    assert task_requirements("t", cfg) == []
    (tmp_path / "utils.py").write_text("import nonexistent_pkg\n")
    assert [r.name for r in task_requirements("t", cfg)] == ["nonexistent_pkg"]

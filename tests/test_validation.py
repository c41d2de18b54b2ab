"""`validate` finds, without loading a model, what `run` would refuse or fail on before scoring:
a local dataset copy without the config or split a task reads, a task module importing a
package that is not installed (inside a try that raises again, or in a function the task
calls), a gate naming a metric or task the suites do not have. Everything here is a real file:
a dataset copy as `hf download` lays it out, task YAML and Python, configs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import harness
from harness.suites.requirements import possible_requirements, task_requirements

from .conftest import run_harness, write_config

COPY_README = """---
configs:
- config_name: ta
  data_files:
  - split: test
    path: ta/test.jsonl
---
# a two-item copy of an xcopa-like dataset, config `ta` only
"""
TASK = """
task: copytask
dataset_path: acme/xcopa_like
dataset_name: {config}
output_type: multiple_choice
test_split: test
{extra}
doc_to_text: "{{{{premise}}}}"
doc_to_choice: "{{{{[choice1, choice2]}}}}"
doc_to_target: label
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
metadata: {{version: 1.0, language: ta}}
"""
MISSING = "harness_test_no_such_module"
RERAISING = f"""
try:
    import {MISSING}
except ModuleNotFoundError as err:
    raise ModuleNotFoundError("install it") from err


def keep(dataset):
    return dataset
"""


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, str]:
    """Empty Hugging Face caches (only what a test writes is found); the offline variables
    validate sets are undone after the test."""
    caches = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_DATASETS_CACHE": str(tmp_path / "ds")}
    for key, value in caches.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, os.environ.get(key, "1"))
    return caches


def write_copy(data_dir: Path, readme: str | None = COPY_README) -> Path:
    """acme/xcopa_like under data_dir with config `ta` only (a README naming it, or none)."""
    copy = data_dir / "acme" / "xcopa_like"
    (copy / "ta").mkdir(parents=True)
    if readme is not None:
        (copy / "README.md").write_text(readme, encoding="utf-8")
    row = {"premise": "மழை பெய்தது.", "choice1": "குடை", "choice2": "வெயில்", "label": 0}
    (copy / "ta" / "test.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\n")
    return copy


def setup(tmp_path, model_dir, *, config="ta", extra="", module=None, gates=()) -> Path:
    """A data_dir with the copy, a task directory with the task, and a config using both."""
    write_copy(tmp_path / "data")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "copytask.yaml").write_text(TASK.format(config=config, extra=extra))
    if module is not None:
        (tasks / "utils.py").write_text(module, encoding="utf-8")
    return write_config(
        tmp_path,
        {
            "name": "copy",
            "models": [{"id": "tiny", "path": str(model_dir), "device": "cpu"}],
            "suites": ["copytask"],
            "task_paths": ["tasks"],
            "data_dir": "data",
            "gates": list(gates),
        },
    )


def errors(report) -> str:
    return "\n".join(f"{f.subject}: {f.message} {f.fix or ''}" for f in report.errors)


def test_a_complete_copy_is_valid(tmp_path, tiny_model_dir, env):
    report = harness.validate(setup(tmp_path, tiny_model_dir), preflight=False)
    assert report.ok, errors(report)
    assert report.exit_code == 0 and "ok=True" in repr(report)
    assert any("data in data_dir" in f.message for f in report.findings)


def test_a_copy_without_the_config_is_an_error(tmp_path, tiny_model_dir, env):
    report = harness.validate(setup(tmp_path, tiny_model_dir, config="it"), preflight=False)
    assert not report.ok and report.exit_code == 2
    text = errors(report)
    assert "suite copytask" in text and "acme/xcopa_like (config it)" in text
    assert "BuilderConfig 'it' not found" in text and "['ta']" in text
    assert repr(report) == (
        f"ValidationReport({str(tmp_path / 'run.yaml')!r}, ok=False, errors=1, warnings=0)"
    )


def test_a_copy_without_a_split_the_task_reads_is_an_error(tmp_path, tiny_model_dir, env):
    """Few-shot examples come from the validation split when the task names one; lm-eval
    reads it when it builds the task, so a copy with only `test` fails there."""
    config = setup(tmp_path, tiny_model_dir, extra="validation_split: validation")
    text = errors(harness.validate(config, preflight=False))
    assert "no split validation" in text and "it has test" in text


def test_a_copy_without_a_configs_header_serves_only_its_default(tmp_path, env):
    """JGLUE's files without the README's `configs:`: datasets infers one config, `default`."""
    copy = write_copy(tmp_path / "data", readme=None)
    from harness.suites.sources import DataNeed, copy_problem

    assert "BuilderConfig 'ta' not found" in copy_problem(copy, DataNeed("acme/x", "ta"))
    assert copy_problem(copy, DataNeed("acme/x", None, splits=("test",))) is None


def test_a_reraised_import_in_a_try_is_an_error(tmp_path, tiny_model_dir, env):
    config = setup(
        tmp_path,
        tiny_model_dir,
        extra="process_docs: !function utils.keep",
        module=RERAISING,
    )
    text = errors(harness.validate(config, preflight=False))
    assert f"imports '{MISSING}'" in text and "utils.py" in text
    assert f"pip install {MISSING}" in text


def test_imports_in_functions_count_when_the_task_calls_them(tmp_path, env):
    module = tmp_path / "utils.py"
    module.write_text(
        f"import re\n\n\ndef keep(d):\n    return helper(d)\n\n\ndef helper(d):\n"
        f"    import {MISSING}\n    return d\n\n\ndef unused():\n    import {MISSING}_2\n"
        f"\n\ntry:\n    import {MISSING}_3\nexcept ImportError:\n    pass\n"
    )
    cfg = {"process_docs": f"{tmp_path}/utils.keep"}
    assert [(r.name, r.place) for r in task_requirements("t", cfg)] == [(MISSING, "in helper()")]
    maybe = {r.name for r in possible_requirements("t", cfg)}
    assert maybe == {f"{MISSING}_2", f"{MISSING}_3"}


def test_the_install_hint_names_lm_evals_extra():
    from harness.suites.imports import install_hint

    assert "lm_eval[japanese-leaderboard]" in install_hint("fugashi")
    assert install_hint(MISSING) == f"pip install {MISSING}"


@pytest.mark.parametrize(
    "gate, named",
    [
        ({"suite": "copytask", "metric": "bleu_score", "min": 0.1}, "metric 'bleu_score'"),
        ({"task": "no_such_task", "min": 0.1}, "task 'no_such_task'"),
        ({"language": "sw", "above_chance": True}, "language 'sw'"),
    ],
)
def test_a_gate_naming_what_the_suites_lack_is_an_error(tmp_path, tiny_model_dir, env, gate, named):
    report = harness.validate(setup(tmp_path, tiny_model_dir, gates=[gate]), preflight=False)
    assert [f.subject.split()[0] for f in report.errors] == ["gate"], errors(report)
    assert named in errors(report)


def test_a_gate_on_a_reported_metric_is_valid(tmp_path, tiny_model_dir, env):
    gate = {"suite": "copytask", "metric": "acc", "min": 0.1}
    report = harness.validate(setup(tmp_path, tiny_model_dir, gates=[gate]), preflight=False)
    assert report.ok, errors(report)


def test_a_config_that_cannot_be_read_is_reported_not_raised(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodels: [\n", encoding="utf-8")
    report = harness.validate(str(path))
    assert [f.subject for f in report.errors] == ["config"]
    assert "bad.yaml" in report.errors[0].message
    assert report.unchecked[0].startswith("models, suites and gates")


def test_the_command_exits_2_names_the_problem_and_prints_json(tmp_path, tiny_model_dir, env):
    config = setup(tmp_path, tiny_model_dir, config="it", gates=[{"task": "zz", "min": 0.1}])
    proc = run_harness("validate", str(config), "--no-preflight", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "BuilderConfig 'it' not found" in proc.stderr and "task 'zz'" in proc.stderr
    assert "Traceback" not in proc.stderr and "not checked without loading" in proc.stderr
    as_json = run_harness("validate", str(config), "--no-preflight", "--json", env=env)
    assert as_json.returncode == 2
    document = json.loads(as_json.stdout)
    assert document["ok"] is False and document["exit_code"] == 2
    failing = sorted(f["subject"] for f in document["findings"] if f["level"] == "error")
    assert failing[0].startswith("gate") and failing[1] == "suite copytask", failing


def test_tasks_available_says_present_only_for_a_copy_that_serves_the_task(tmp_path, env):
    write_copy(tmp_path / "data")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name, config in (("copy_ta", "ta"), ("copy_it", "it")):
        text = TASK.format(config=config, extra="").replace("copytask", name)
        (tasks / f"{name}.yaml").write_text(text)
    proc = run_harness("tasks", "--path", str(tasks), "--data-dir", str(tmp_path / "data"), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = {n: next(x for x in proc.stdout.splitlines() if n in x) for n in ("copy_ta", "copy_it")}
    assert "present" in row["copy_ta"], proc.stdout
    assert "present" not in row["copy_it"] and "incomplete copy" in row["copy_it"], proc.stdout

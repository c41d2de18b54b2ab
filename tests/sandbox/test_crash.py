"""A worker killed mid-run (SIGKILL) is one model's failure, never a lost run: what it had
scored is written, the report names the signal, and the next run resumes from the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ..conftest import SMOKE_DATA, only_run_dir, run_harness, write_config

KILLER = """
import os
import signal


def doc_to_text(doc):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def killing_task(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "utils.py").write_text(KILLER)
    (directory / "killer.yaml").write_text(
        "task: killer_task\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {SMOKE_DATA / 'en.jsonl'}\n"
        "output_type: multiple_choice\ntest_split: test\n"
        "doc_to_text: !function utils.doc_to_text\n"
        'doc_to_choice: "{{choices}}"\ndoc_to_target: answer\n'
        "metric_list:\n  - metric: acc\nmetadata:\n  version: 1.0\n"
    )
    return directory


@pytest.mark.slow
def test_a_killed_worker_fails_its_model_and_the_next_run_resumes(tmp_path, tiny_model_dir):
    tasks = killing_task(tmp_path / "tasks")
    spec = {"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}
    config = write_config(
        tmp_path,
        {"name": "crash", "models": [spec], "suites": ["smoke_en", "killer_task"],
         "task_paths": [str(tasks)]},
    )  # fmt: skip
    out = tmp_path / "r"
    proc = run_harness("run", str(config), "--limit", "2", "--output", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    run_dir = only_run_dir(out)
    results = json.loads((run_dir / "results.json").read_text())
    model = results["models"]["tiny"]
    assert model["status"] == "failed" and "signal 9" in model["error"]
    assert model["suites"]["smoke_en"]["status"] == "ok"
    assert (run_dir / "samples" / "tiny" / "smoke_en.jsonl").is_file()
    assert "signal 9" in (run_dir / "report.md").read_text()
    assert results["status"] == "failed" and results["exit_code"] == 1

    shutil.rmtree(run_dir)
    (tasks / "utils.py").write_text("def doc_to_text(doc):\n    return doc['question']\n")
    proc = run_harness("run", str(config), "--limit", "2", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    again = json.loads((only_run_dir(out) / "results.json").read_text())
    assert again["models"]["tiny"]["cache"]["reused"] == ["smoke_en"]


@pytest.mark.slow
def test_a_run_narrowed_to_one_model_scores_it_though_gates_name_another(tmp_path, tiny_model_dir):
    models = [{"id": "a", "path": str(tiny_model_dir)}, {"id": "b", "path": str(tiny_model_dir)}]
    gate = {"name": "close to a", "suite": "smoke_en", "relative_to": "primary", "min_ratio": 0.5}
    config = write_config(
        tmp_path,
        {"name": "narrow", "models": models, "primary": "a", "suites": ["smoke_en"],
         "gates": [gate]},
    )  # fmt: skip
    # A relative results root, as the config's default `results` is, from another directory.
    proc = run_harness("run", str(config), "--model", "b", "--limit", "2", "--output", "r",
                       cwd=tmp_path)  # fmt: skip
    results = json.loads((only_run_dir(tmp_path / "r") / "results.json").read_text())
    assert results["models"]["b"]["status"] == "ok", proc.stdout + proc.stderr
    assert results["models"]["b"]["suites"]["smoke_en"]["status"] == "ok"
    assert list((tmp_path / "r" / ".cache").iterdir()), "the worker's cache is under the root"

"""The typed run record: the published schema, refusal of old or foreign documents, and the
checks on what a worker may send."""

from __future__ import annotations

import json

import pytest

from harness.record import SCHEMA_VERSION, ModelRecord, RunRecord, schema
from harness.sandbox.messages import Samples

from .conftest import run_harness


def test_schema_command_prints_the_record_schema():
    proc = run_harness("schema", "--results")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed == json.loads(json.dumps(schema()))
    assert printed["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert printed["additionalProperties"] is False


@pytest.mark.parametrize("command", ["attest", "compare"])
def test_an_old_or_foreign_results_file_is_one_clear_error(tmp_path, command):
    old = tmp_path / "old"
    old.mkdir()
    (old / "results.json").write_text(json.dumps({"run": {}, "models": {}}))
    args = [command, str(old)] + ([str(old)] if command == "compare" else [])
    proc = run_harness(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no schema_version" in proc.stderr and "Traceback" not in proc.stderr

    (old / "results.json").write_text(json.dumps({"schema_version": 99}))
    proc = run_harness(*args)
    assert proc.returncode == 2 and "schema_version 99" in proc.stderr


def test_a_model_entry_with_an_unknown_field_or_status_is_refused():
    ModelRecord.model_validate({"status": "ok", "suites": {}})
    with pytest.raises(ValueError):
        ModelRecord.model_validate({"status": "ok", "suites": {}, "verdict": "passed"})
    with pytest.raises(ValueError):
        ModelRecord.model_validate({"status": "approved", "suites": {}})
    with pytest.raises(ValueError):
        RunRecord.model_validate({"schema_version": 1})


@pytest.mark.parametrize(
    "path",
    ["../results.json", "samples/m/../../results.json", "samples/m/t.txt", "report.md",
     "samples/m/sub/t.jsonl", "/tmp/x.jsonl"],
)  # fmt: skip
def test_samples_outside_their_folder_are_refused(path):
    with pytest.raises(ValueError):
        Samples(path=path, rows=[])
    assert Samples(path="samples/m/task.jsonl", rows=[]).path == "samples/m/task.jsonl"

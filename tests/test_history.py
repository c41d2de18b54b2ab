"""The results index: runs are listed as they finish, `baseline: previous` finds the last
complete one, and `harness history` prints each gate's metric over the runs."""

from __future__ import annotations

import json

import pytest

from harness.history import previous_run, read_index, record_run

from .conftest import only_run_dir, run_harness, write_config
from .records import crafted_record


def test_second_run_is_judged_against_the_first(tmp_path, tiny_model_dir):
    config = write_config(
        tmp_path,
        {
            "name": "nightly",
            "models": [{"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}],
            "suites": ["smoke_hi"],
            "baseline": "previous",
            "gates": [{"name": "no regression", "suite": "smoke_hi", "max_drop": 0.05}],
        },
    )
    out = tmp_path / "results"
    first = run_harness("run", str(config), "--output", str(out))
    assert first.returncode == 0, first.stderr
    first_dir = only_run_dir(out)
    assert (
        json.loads((first_dir / "results.json").read_text())["gates"]["checks"][0]["status"]
        == "not judged"
    )

    second = run_harness("run", str(config), "--output", str(out), "--no-cache")
    assert second.returncode == 0, second.stderr
    runs = read_index(out)["runs"]
    assert [r["config"] for r in runs] == ["nightly", "nightly"]
    latest = out / runs[-1]["directory"]
    gates = json.loads((latest / "results.json").read_text())["gates"]
    assert gates["baseline"] == str(first_dir)
    [check] = gates["checks"]
    assert check["status"] == "pass" and check["reference"] == check["value"]  # same model
    assert check["items"] == 24 and check["margin_low"] == pytest.approx(0.05)  # no change

    partial = run_harness("run", str(config), "--limit", "6", "--output", str(out))
    assert partial.returncode == 0, partial.stderr
    assert "PARTIAL: 6 of 24 items (limit of 6 items per task)" in partial.stderr
    runs = read_index(out)["runs"]
    assert runs[-1]["partial"] is True and runs[-1]["items"] == 6
    judged = json.loads((out / runs[-1]["directory"] / "results.json").read_text())["gates"]
    assert judged["judged"] is False and judged["baseline"] == str(latest)
    assert judged["checks"][0]["status"] == "not judged"

    history = run_harness("history", str(config), "--output", str(out))
    assert history.returncode == 0, history.stderr
    assert "gate 1: no regression" in history.stdout
    assert history.stdout.count(f"{check['value']:.3f}") >= 2
    assert "exit" in history.stdout and "PARTIAL" in history.stdout
    trends = json.loads(run_harness("history", str(config), "--output", str(out), "--json").stdout)
    [trend] = trends["trends"]
    assert trend["gate"] == "no regression" and len(trend["values"]) == len(trends["runs"]) == 3


def test_previous_run_skips_unfinished_runs(tmp_path):
    for stamp, status in [("T1", "complete"), ("T2", "interrupted"), ("T3", "running")]:
        run_dir = tmp_path / "cfg" / stamp
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text("{}")
        record_run(
            tmp_path,
            crafted_record(run={"name": "cfg", "directory": str(run_dir), "started": stamp},
                           status=status, exit_code=0),
        )  # fmt: skip
    assert previous_run(tmp_path, "cfg") == tmp_path / "cfg" / "T1"
    assert previous_run(tmp_path, "cfg", exclude=tmp_path / "cfg" / "T1") is None
    assert previous_run(tmp_path, "other") is None

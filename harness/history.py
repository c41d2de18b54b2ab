"""The results index: every run under a results root, for baselines and trends.

`<results root>/index.json` lists each run (config name, directory, times, status, exit code)
with its gate checks. It is updated when a run finishes, under a file lock, by rewriting it
atomically, so concurrent runs sharing a root do not lose each other's entries.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.record import RunRecord
from harness.reports.files import write_json_atomic

INDEX = "index.json"


def record_run(root: Path, record: RunRecord) -> None:
    """Add (or replace) the entry of the run in `record`."""
    from filelock import FileLock

    run = record.run
    entry = {
        "config": run.name,
        "directory": _relative(Path(run.directory), root),
        "started": run.started,
        "finished": run.finished,
        "status": record.status,
        "exit_code": record.exit_code,
        "config_hash": record.config_hash,
        "partial": bool(record.scope and record.scope.partial),
        "items": record.scope.items_scored if record.scope else None,
        "models": {m: e.status for m, e in record.models.items()},
        "gates": [
            c.model_dump(include={"gate", "model", "task", "metric", "value", "stderr", "status"})
            for c in (record.gates.checks if record.gates else [])
        ],
    }
    with FileLock(str(root / (INDEX + ".lock"))):
        index = read_index(root)
        runs = [r for r in index["runs"] if r["directory"] != entry["directory"]]
        runs.append(entry)
        runs.sort(key=lambda r: (r["started"], r["directory"]))
        write_json_atomic(root / INDEX, {"runs": runs})


def read_index(root: Path) -> dict[str, list[dict]]:
    """The index under `root` (empty when there is none yet)."""
    path = root / INDEX
    if not path.is_file():
        return {"runs": []}
    return json.loads(path.read_text(encoding="utf-8"))


def runs_of(root: Path, config_name: str) -> list[dict]:
    """The index entries of one config, oldest first."""
    return [r for r in read_index(root)["runs"] if r["config"] == config_name]


def previous_run(root: Path, config_name: str, exclude: Path | None = None) -> Path | None:
    """The directory of the latest complete, non-partial run of `config_name`, other than
    `exclude`: a baseline of fewer items would compare unlike with like."""
    skip = _relative(exclude, root) if exclude else None
    done = [
        r
        for r in runs_of(root, config_name)
        if r["status"] == "complete" and not r.get("partial") and r["directory"] != skip
        and (root / r["directory"] / "results.json").is_file()
    ]  # fmt: skip
    return root / done[-1]["directory"] if done else None


def gate_trends(root: Path, config_name: str, last: int = 10) -> tuple[list[dict], list[tuple]]:
    """The last runs of a config, and per gate check (gate, model, task, metric) its value and
    status in each of them (None where a run did not have it)."""
    runs = runs_of(root, config_name)[-last:]
    keys: dict[tuple, None] = {}
    for run in runs:
        for check in run["gates"]:
            keys[(check["gate"], check["model"], check["task"], check["metric"])] = None
    rows = []
    for key in keys:
        cells = []
        for run in runs:
            found = next(
                (c for c in run["gates"] if (c["gate"], c["model"], c["task"], c["metric"]) == key),
                None,
            )
            cells.append((found["value"], found["status"]) if found else None)
        rows.append((key, cells))
    return runs, rows


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(Path(path).resolve())

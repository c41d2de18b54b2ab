"""A whole `harness run` with the offline variables deliberately unset: `datasets` then tries to
reach its download counter on S3 while loading the local JSONL data. The guard must block it,
the run must still complete, and the attempt must be in results.json with `datasets` named.

Where the OS allows, the run is inside a network namespace with no usable interface, so even a
failing guard could send nothing off this machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from ..conftest import REPO, only_run_dir, write_config

OFFLINE_VARIABLES = (
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_EVALUATE_OFFLINE",
    "HF_UPDATE_DOWNLOAD_COUNTS",
    "HF_HUB_DISABLE_TELEMETRY",
)


def test_guard_blocks_datasets_download_counter(tmp_path, tiny_model_dir):
    config = write_config(
        tmp_path,
        {
            "name": "guarded",
            "models": [{"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}],
            "suites": ["smoke_en"],
            "network": {"set_offline_env": False},
        },
    )
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES}
    env["HF_DATASETS_CACHE"] = str(tmp_path / "datasets-cache")  # force a fresh load
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        str(config),
        "--limit",
        "3",
        "--output",
        str(tmp_path / "results"),
    ]
    if shutil.which("unshare") and os.geteuid() == 0:
        command = ["unshare", "-n", *command]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "network attempts: 0" not in proc.stderr

    results = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())
    assert results["status"] == "complete"
    assert results["models"]["tiny"]["suites"]["smoke_en"]["status"] == "ok"
    assert results["offline"]["set_offline_env"] is False
    attempts = results["offline"]["attempts"]
    from_datasets = [a for a in attempts if a["package"] == "datasets"]
    assert from_datasets, attempts
    assert from_datasets[0]["host"] == "s3.amazonaws.com"
    assert from_datasets[0]["event"] == "socket.getaddrinfo"
    assert from_datasets[0]["blocked"] is True
    assert all(a["blocked"] for a in attempts)
    report = (only_run_dir(tmp_path / "results") / "report.md").read_text(encoding="utf-8")
    assert "s3.amazonaws.com" in report and "| datasets |" in report

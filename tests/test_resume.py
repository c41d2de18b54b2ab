"""A run killed with SIGKILL in the middle of a suite and started again skips what is done and
ends with the metrics and per-sample logs of an uninterrupted run, byte for byte.

The model is the tiny Qwen2 with 16 layers and batches of two: slow enough (some seconds per
suite) for the test to see the second suite half scored in lm-eval's request cache, and kill
the run there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO, build_tiny_qwen2, write_config

SMOKE_EN_REQUESTS = 24 * 4  # items x choices


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory) -> Path:
    return build_tiny_qwen2(tmp_path_factory.mktemp("models") / "slow", layers=16)


def config_for(directory: Path, model: Path) -> Path:
    return write_config(
        directory,
        {
            "name": "resume",
            "models": [{"id": "slow", "path": str(model), "device": "cpu", "batch_size": 2}],
            "suites": ["smoke_en", "native_hi"],
        },
    )


def harness_command(config: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness", "run", str(config), "--output", str(output), *extra]


def cached_requests(output: Path) -> int:
    """Answers committed to lm-eval's request cache so far."""
    found = list(output.glob(".cache/*/requests_rank0.db"))
    if not found:
        return 0
    try:
        with sqlite3.connect(f"file:{found[0]}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM unnamed").fetchone()[0]
    except sqlite3.Error:
        return 0


def kill_mid_suite(command: list[str], output: Path) -> int:
    """Start a run, and SIGKILL it once the second suite is partly in the request cache."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            done = cached_requests(output)
            if done >= SMOKE_EN_REQUESTS + 20:
                os.kill(proc.pid, signal.SIGKILL)  # the supervisor alone: its worker must die too
                proc.wait()
                assert_no_worker_left("harness-worker-slow-")
                return done
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.05)
        raise AssertionError("the second suite never started")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def assert_no_worker_left(marker: str) -> None:
    """Within a few seconds no process of the sandbox (its command names `marker`) is left."""
    deadline = time.monotonic() + 10
    while True:
        left = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                    left.append(entry.name)
            except OSError:
                continue
        if not left:
            return
        assert time.monotonic() < deadline, f"worker processes outlived the supervisor: {left}"
        time.sleep(0.2)


def only_run(root: Path, name: str = "resume") -> list[Path]:
    return sorted((root / name).iterdir())


def metrics_and_samples(run_dir: Path) -> tuple[str, dict[str, bytes]]:
    results = json.loads((run_dir / "results.json").read_text())
    tasks = {suite: entry["tasks"] for suite, entry in results["models"]["slow"]["suites"].items()}
    samples = {p.name: p.read_bytes() for p in sorted((run_dir / "samples" / "slow").iterdir())}
    return json.dumps(tasks, sort_keys=True), samples


def test_a_killed_run_resumes_to_identical_results(tmp_path, slow_model):
    config = config_for(tmp_path, slow_model)
    reference = tmp_path / "uninterrupted"
    done = subprocess.run(harness_command(config, reference, "--no-cache"), cwd=REPO,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    output = tmp_path / "resumed"
    committed = kill_mid_suite(harness_command(config, output), output)
    [killed] = only_run(output)
    partial = json.loads((killed / "results.json").read_text())
    assert partial["status"] == "running"  # killed: nothing closed the run, its results stay
    assert partial["models"]["slow"]["suites"]["smoke_en"]["status"] == "ok"
    assert "native_hi" not in partial["models"]["slow"]["suites"]

    again = subprocess.run(harness_command(config, output), cwd=REPO, capture_output=True,
                           text=True, timeout=900)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = only_run(output)[-1]
    results = json.loads((resumed / "results.json").read_text())
    assert results["models"]["slow"]["cache"]["reused"] == ["smoke_en"]
    log = (resumed / "run.log").read_text()
    reused = [int(n) for n in re.findall(r"Cached requests: (\d+), Requests remaining", log)]
    assert reused and 0 < reused[0] <= committed - SMOKE_EN_REQUESTS

    assert metrics_and_samples(resumed) == metrics_and_samples(only_run(reference)[0])

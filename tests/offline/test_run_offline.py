"""Whole `harness run`s under each offline policy, with a canary listener on 127.0.0.1 standing
in for the outside world (HF_ENDPOINT and the proxies point at it: a leak lands there).

With the offline variables deliberately unset, `datasets` tries to reach its download counter
on S3 while loading the local JSONL data. The guard blocks it before any lookup: audit mode
records it and completes; strict mode records it and fails the run with exit code 3."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from ..conftest import REPO, only_run_dir, run_harness, write_config

OFFLINE_VARIABLES = (
    "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_EVALUATE_OFFLINE",
    "HF_UPDATE_DOWNLOAD_COUNTS", "HF_HUB_DISABLE_TELEMETRY",
)  # fmt: skip


def harness_run(tmp_path, config, *args, env, namespace=True):
    command = [sys.executable, "-m", "harness", "run", str(config), "--limit", "3",
               "--output", str(tmp_path / "results"), *args]  # fmt: skip
    if namespace and shutil.which("unshare") and os.geteuid() == 0:
        # A second barrier for runs whose target is off this machine: a namespace with no
        # usable interface, so even a failing guard could send nothing.
        command = ["unshare", "-n", *command]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def config_without_offline_env(tmp_path, tiny_model_dir, mode: str):
    return write_config(
        tmp_path,
        {
            "name": "guarded",
            "models": [{"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}],
            "suites": ["smoke_en"],
            # The weaker in-process mode, whose own guard these tests are about.
            "offline": {"mode": mode, "set_env": False, "sandbox": False},
        },
    )


def bare_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES}
    env["HF_DATASETS_CACHE"] = str(tmp_path / "datasets-cache")  # force a fresh load
    return env


def test_audit_mode_records_datasets_download_counter(tmp_path, tiny_model_dir):
    config = config_without_offline_env(tmp_path, tiny_model_dir, "audit")
    proc = harness_run(tmp_path, config, env=bare_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr

    run_dir = only_run_dir(tmp_path / "results")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "complete"
    assert results["models"]["tiny"]["suites"]["smoke_en"]["status"] == "ok"
    assert results["offline"]["set_offline_env"] is False
    attempts = results["offline"]["attempts"]
    from_datasets = [a for a in attempts if a["package"] == "datasets"]
    assert from_datasets, attempts
    assert from_datasets[0]["host"] == "s3.amazonaws.com"
    assert from_datasets[0]["event"] == "socket.getaddrinfo"
    assert all(a["blocked"] for a in attempts)
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "s3.amazonaws.com" in report and "| datasets |" in report


def test_strict_mode_fails_the_run_on_the_same_attempt(tmp_path, tiny_model_dir):
    config = config_without_offline_env(tmp_path, tiny_model_dir, "strict")
    proc = harness_run(tmp_path, config, env=bare_env(tmp_path))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "network attempt(s) under offline mode strict" in proc.stderr
    results = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())
    assert results["exit_code"] == 3
    assert any(a["package"] == "datasets" for a in results["offline"]["attempts"])
    # The scores are still written: the run is not attested, but nothing is lost.
    assert results["models"]["tiny"]["suites"]["smoke_en"]["status"] == "ok"


def test_offline_variable_set_to_undo_itself_is_refused(tmp_path, tiny_model_dir):
    config = write_config(
        tmp_path,
        {"name": "x", "models": [{"id": "t", "path": str(tiny_model_dir)}], "suites": ["smoke_en"]},
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "0"}
    proc = harness_run(tmp_path, config, env=env, namespace=False)
    assert proc.returncode == 2
    assert "HF_DATASETS_OFFLINE=0" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_default_run_is_attested_offline(tmp_path, tiny_model_dir, canary):
    config = write_config(
        tmp_path,
        {"name": "x", "models": [{"id": "t", "path": str(tiny_model_dir)}], "suites": ["smoke_en"]},
    )
    proc = harness_run(tmp_path, config, env={**os.environ, **canary.env}, namespace=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    offline = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())[
        "offline"
    ]
    assert offline["attempts"] == []
    assert offline["policy"]["mode"] == "strict"
    # The sandbox is the default: its self-test saw a probe's connection and refusal.
    sandbox = offline["sandbox"]
    assert sandbox["enforced"] is True and sandbox["self_test"]["passed"] is True, sandbox
    assert sandbox["self_test"]["connection_seen"] and sandbox["self_test"]["refusal_seen"]
    assert offline["kernel"]["enforced"] is True, offline["kernel"]
    assert offline["isolation"]["isolated"] is True
    assert {f["model"] for f in offline["files"]["weights"]} == {"t"}
    [data] = [f for f in offline["files"]["data"] if f["role"] == "data"]
    assert data["path"].endswith("en.jsonl")
    assert canary.connections == 0


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux)")
def test_isolate_runs_in_a_namespace_with_only_loopback(tmp_path, tiny_model_dir, canary):
    # --isolate re-executes the whole run in a namespace: the in-process mode's isolation.
    config = write_config(
        tmp_path,
        {"name": "x", "models": [{"id": "t", "path": str(tiny_model_dir)}],
         "suites": ["smoke_en"], "offline": {"sandbox": False}},
    )  # fmt: skip
    env = {**os.environ, **canary.env}
    proc = harness_run(tmp_path, config, "--isolate", env=env, namespace=False)
    if proc.returncode == 2 and "does not allow a private network namespace" in proc.stderr:
        pytest.skip("this OS gives no network namespace: " + proc.stderr.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    offline = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())[
        "offline"
    ]
    isolation = offline["isolation"]
    assert isolation["isolated"] is True and isolation["method"].startswith("unshare")
    assert isolation["interfaces"] == ["lo"] and isolation["routes_leaving"] == 0
    assert isolation["netns"] != os.readlink("/proc/self/ns/net")
    assert offline["policy"]["mode"] == "isolate" and offline["attempts"] == []
    assert canary.connections == 0


@pytest.mark.parametrize("fallback", [False, True])
def test_isolation_unavailable(tmp_path, tiny_model_dir, fallback):
    # With no `unshare` on PATH the OS cannot isolate the run: refuse, unless told to fall back.
    offline = {"mode": "isolate", "isolation_fallback": fallback, "sandbox": False}
    config = write_config(
        tmp_path,
        {"name": "x", "models": [{"id": "t", "path": str(tiny_model_dir)}],
         "suites": ["smoke_en"], "offline": offline},
    )  # fmt: skip
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}
    proc = harness_run(tmp_path, config, env=env, namespace=False)
    if not fallback:
        assert proc.returncode == 2
        assert "needs `unshare`" in proc.stderr and "isolation_fallback" in proc.stderr
        assert not (tmp_path / "results").exists()
        return
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not isolated:" in proc.stderr
    results = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())
    isolation = results["offline"]["isolation"]
    assert isolation["isolated"] is False and isolation["fallback"] is True
    assert "needs `unshare`" in isolation["reason"]
    report = (only_run_dir(tmp_path / "results") / "report.md").read_text(encoding="utf-8")
    assert "NOT isolated (fallback)" in report
    first = report.splitlines()[:6]  # the first lines: PARTIAL (--limit), then NOT SANDBOXED
    assert first[2].startswith("> **PARTIAL") and first[4].startswith("> **NOT SANDBOXED")


def test_without_the_sandbox_tools_the_run_is_refused_with_the_fix(tmp_path, tiny_model_dir):
    config = write_config(
        tmp_path,
        {"name": "x", "models": [{"id": "t", "path": str(tiny_model_dir)}], "suites": ["smoke_en"]},
    )
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}
    proc = harness_run(tmp_path, config, env=env, namespace=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "bubblewrap" in proc.stderr and "sandbox: false" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()
    checked = run_harness("validate", str(config), env=env)  # validate says what run would
    assert checked.returncode == 2 and "the sandbox cannot run here" in checked.stderr

"""Models named by repo id are read from the local Hugging Face cache, offline, and the run
records the snapshot's commit and the real (blob) files it hashed."""

from __future__ import annotations

import hashlib
import json

import pytest

from .conftest import install_in_hf_cache, only_run_dir, run_harness, write_config

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("revision", [None, COMMIT])
def test_run_from_the_hf_cache(tmp_path, tiny_model_dir, revision):
    cache = tmp_path / "hub"
    install_in_hf_cache(tiny_model_dir, cache, "harness-tests/tiny-qwen2", COMMIT)
    model = {"id": "cached", "repo": "harness-tests/tiny-qwen2", "device": "cpu"}
    if revision:
        model["revision"] = revision
    config = write_config(tmp_path, {"name": "cache", "models": [model], "suites": ["smoke_de"]})
    env = {"HF_HUB_CACHE": str(cache)}

    proc = run_harness("validate", str(config), env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"harness-tests/tiny-qwen2@{COMMIT}" in proc.stderr

    proc = run_harness("run", str(config), "--limit", "3", "--output", str(tmp_path / "r"), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((only_run_dir(tmp_path / "r") / "results.json").read_text())
    identity = results["models"]["cached"]["identity"]
    assert (identity["kind"], identity["commit"]) == ("hf-cache", COMMIT)
    [weights] = identity["weight_files"]
    digest = hashlib.sha256((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert weights["sha256"] == digest
    assert weights["real_path"].endswith(f"blobs/{digest}")
    assert results["offline"]["attempts"] == []


def test_an_uncached_revision_is_a_clear_error(tmp_path, tiny_model_dir):
    cache = tmp_path / "hub"
    install_in_hf_cache(tiny_model_dir, cache, "harness-tests/tiny-qwen2", COMMIT)
    model = {"id": "m", "repo": "harness-tests/tiny-qwen2", "revision": "f" * 40}
    config = write_config(tmp_path, {"name": "c", "models": [model], "suites": ["smoke_de"]})
    proc = run_harness("validate", str(config), env={"HF_HUB_CACHE": str(cache)})
    assert proc.returncode == 2
    assert f"(revision {'f' * 40}) is not in the local Hugging Face cache" in proc.stderr
    assert "Traceback" not in proc.stderr

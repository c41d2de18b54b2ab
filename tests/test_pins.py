"""Pins: `harness lock` writes every file's sha256 beside the config, and `harness run`
refuses a file that differs (exit 2, naming it, with both digests) before anything loads; a
Hugging Face cache blob whose content is not its name is refused even without a lock."""

from __future__ import annotations

import hashlib
import json
import shutil

from .conftest import install_in_hf_cache, run_harness, write_config

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def _config(tmp_path, model_entry):
    return write_config(
        tmp_path, {"name": "pinned", "models": [model_entry], "suites": ["smoke_fr"]}
    )


def _runs(root):
    return sorted((root / "pinned").iterdir()) if (root / "pinned").is_dir() else []


def test_a_locked_run_refuses_a_changed_file_before_loading(tmp_path, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = _config(tmp_path, {"id": "m", "path": str(model), "device": "cpu"})
    proc = run_harness("lock", str(config))
    assert proc.returncode == 0, proc.stderr
    lock_file = tmp_path / "run.lock.json"
    lock = json.loads(lock_file.read_text())
    assert "model.safetensors" in lock["models"]["m"]["files"]
    assert any(name.endswith("smoke_fr.yaml") for name in lock["suites"]["smoke_fr"]["files"])

    root = tmp_path / "results"
    proc = run_harness("run", str(config), "--limit", "2", "--output", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [run_dir] = _runs(root)
    recorded = json.loads((run_dir / "results.json").read_text())["lock"]
    assert recorded["verified"] is True
    assert recorded["sha256"] == hashlib.sha256(lock_file.read_bytes()).hexdigest()

    weights = model / "model.safetensors"
    pinned = lock["models"]["m"]["files"]["model.safetensors"]["sha256"]
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0x01
    weights.write_bytes(bytes(blob))
    found = hashlib.sha256(bytes(blob)).hexdigest()
    proc = run_harness("run", str(config), "--limit", "2", "--output", str(root))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"model.safetensors: expected sha256 {pinned}, found {found}" in proc.stderr
    assert "Nothing was loaded" in proc.stderr and "Traceback" not in proc.stderr
    assert len(_runs(root)) == 1, "a refused run leaves no run directory"

    (model / "extra_code.py").write_text("x = 1\n")  # a file that was not there when locked
    weights.write_bytes(bytes(blob[:-1] + bytes([blob[-1] ^ 0x01])))  # restored
    proc = run_harness("run", str(config), "--limit", "2", "--output", str(root))
    assert proc.returncode == 2 and "extra_code.py: not pinned" in proc.stderr


def test_a_stand_in_is_refused_under_a_lock_and_marked_without_one(tmp_path, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    (other / "config.json").write_text(
        json.dumps({**json.loads((other / "config.json").read_text()), "rms_norm_eps": 1e-5})
    )
    config = _config(tmp_path, {"id": "m", "path": str(model), "device": "cpu"})
    assert run_harness("lock", str(config)).returncode == 0
    root = tmp_path / "results"
    swap = ["--model-path", f"m={other}", "--limit", "2", "--output", str(root)]
    proc = run_harness("run", str(config), *swap)
    assert proc.returncode == 2 and "is a stand-in" in proc.stderr and "--no-lock" in proc.stderr

    proc = run_harness("run", str(config), *swap, "--no-lock")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"STAND-IN: m [STAND-IN]: the config names path {model}" in proc.stderr
    [run_dir] = _runs(root)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["models"]["m"]["stand_in"] == {
        "configured": f"path {model}",
        "scored": str(other),
    }
    assert results["lock"] is None


def test_a_tampered_hf_cache_blob_is_refused(tmp_path, tiny_model_dir):
    cache = tmp_path / "hub"
    snapshot = install_in_hf_cache(tiny_model_dir, cache, "harness-tests/pinned", COMMIT)
    config = _config(
        tmp_path,
        {"id": "m", "repo": "harness-tests/pinned", "revision": COMMIT, "device": "cpu"},
    )
    env = {"HF_HUB_CACHE": str(cache)}
    blob = (snapshot / "config.json").resolve()
    text = blob.read_text().replace("}", ', "rope_theta": 12345.0}', 1)
    blob.chmod(0o644)
    blob.write_text(text)  # same name, other content: what a tampered cache looks like
    proc = run_harness("run", str(config), "--limit", "2", "--output", str(tmp_path / "r"), env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"blobs/{blob.name} is named for content {blob.name}" in proc.stderr
    assert "changed after download" in proc.stderr

"""`harness attest` re-checks a finished run's weight and data files against what it recorded."""

from __future__ import annotations

import json
import shutil

from .conftest import only_run_dir, run_harness, write_config


def test_attest_detects_a_weight_file_changed_after_the_run(tmp_path, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = write_config(
        tmp_path,
        {"name": "a", "models": [{"id": "m", "path": str(model)}], "suites": ["smoke_fr"]},
    )
    assert (
        run_harness("run", str(config), "--limit", "2", "--output", str(tmp_path / "r")).returncode
        == 0
    )
    run_dir = only_run_dir(tmp_path / "r")
    files = json.loads((run_dir / "results.json").read_text())["offline"]["files"]
    total = len(files["weights"]) + len(files["data"])
    roles = {f["role"] for f in files["weights"] + files["data"]}
    assert {"weights", "config", "tokenizer", "task definition", "data"} <= roles

    proc = run_harness("attest", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert f"all {total} file(s) match the run" in proc.stderr

    weights = model / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF  # one bit pattern changed at the end of the file, same size
    weights.write_bytes(bytes(blob))
    proc = run_harness("attest", str(run_dir))
    assert proc.returncode == 1
    assert "changed" in proc.stdout and f"1 of {total} file(s) differ" in proc.stderr

    weights.unlink()
    proc = run_harness("attest", str(run_dir))
    assert proc.returncode == 1 and "missing" in proc.stdout


def test_attest_on_a_directory_without_results(tmp_path):
    proc = run_harness("attest", str(tmp_path))
    assert proc.returncode == 2
    assert "results.json: no such file" in proc.stderr and "Traceback" not in proc.stderr

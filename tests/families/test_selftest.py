"""`harness selftest`, the alias table, and the loader's refusals (unknown architecture, a
checkpoint missing tensors), on tiny replicas built here."""

from __future__ import annotations

import json

import pytest

from harness.families import FAMILIES, find_family
from harness.families.selftest import build_replica

from ..conftest import only_run_dir, run_harness, write_config


@pytest.mark.slow
def test_selftest_matrix_is_all_green(record_property):
    proc = run_harness("selftest", timeout=600)
    # The portability matrix belongs in the CI log, and runs only here: conftest prints it at
    # the end of the session (from whichever worker ran it).
    record_property("print_in_summary", proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line.split("│")[1].strip(): line for line in proc.stdout.splitlines() if "│" in line}
    assert set(rows) == {family.name for family in FAMILIES}
    for row in rows.values():
        assert row.count("pass") == 6 and "FAIL" not in row, row
    assert "transformers 5." in proc.stdout and "lm-eval 0.4." in proc.stdout


def test_unknown_family_is_a_usage_error():
    proc = run_harness("selftest", "--family", "gpt-oss")
    assert proc.returncode == 2 and "'gpt-oss' is not one of" in proc.stderr


@pytest.mark.slow
def test_kimi_k2_runs_through_its_alias_without_remote_code(tmp_path):
    model = tmp_path / "kimi"
    build_replica(find_family("kimi-k2"), model)
    saved = json.loads((model / "config.json").read_text())
    assert saved["model_type"] == "kimi_k2" and "auto_map" in saved  # as the real one ships
    spec = {"id": "kimi", "path": str(model), "device": "cpu", "dtype": "float32"}
    config = write_config(
        tmp_path, {"name": "alias", "models": [spec], "suites": ["smoke_en"], "limit": 4}
    )
    proc = run_harness("run", str(config), "--output", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())
    identity = results["models"]["kimi"]["identity"]
    assert identity["alias"] == "kimi_k2 -> deepseek_v3" and identity["remote_code"] is None


def test_an_unknown_architecture_names_its_model_type_and_transformers(tmp_path, tiny_model_dir):
    import shutil

    import transformers

    model = tmp_path / "odd"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = "brand_new_arch"
    (model / "config.json").write_text(json.dumps(config))
    path = write_config(
        tmp_path, {"name": "odd", "models": [{"id": "m", "path": str(model)}], "suites": ["smoke"]}
    )
    proc = run_harness("validate", str(path))
    assert proc.returncode == 2, proc.stderr
    assert "model_type 'brand_new_arch'" in proc.stderr
    assert f"transformers {transformers.__version__}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_checkpoint_missing_a_tensor_is_refused_not_filled_at_random(tmp_path, tiny_model_dir):
    import shutil

    from safetensors.torch import load_file, save_file

    model = tmp_path / "partial"
    shutil.copytree(tiny_model_dir, model)
    tensors = load_file(model / "model.safetensors")
    dropped = "model.layers.1.mlp.down_proj.weight"
    del tensors[dropped]
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    spec = {"id": "m", "path": str(model), "device": "cpu"}
    path = write_config(tmp_path, {"name": "partial", "models": [spec], "suites": ["smoke_en"]})
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert dropped in proc.stderr and "random values" in proc.stderr
    assert "Traceback" not in proc.stderr

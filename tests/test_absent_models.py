"""A config naming models that are not on this machine: `validate` lists each, `run` skips
them with the reason and scores the others, and `--model-path` substitutes local copies."""

from __future__ import annotations

import json

from .conftest import only_run_dir, run_harness, write_config

ABSENT = {"id": "qwen7", "repo": "Qwen/Qwen2.5-7B-Instruct"}


def two_models(tmp_path, tiny_model_dir):
    present = {"id": "tiny", "path": str(tiny_model_dir), "device": "cpu"}
    data = {"name": "mixed", "models": [ABSENT, present], "suites": ["smoke_fr"], "limit": 3}
    return write_config(tmp_path, data)


def test_run_skips_an_absent_model_and_scores_the_others(tmp_path, tiny_model_dir):
    config = two_models(tmp_path, tiny_model_dir)
    env = {"HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    proc = run_harness("run", str(config), "--output", str(tmp_path / "results"), env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "skipped: model 'qwen7'" in proc.stderr and "hf download" in proc.stderr
    assert "Traceback" not in proc.stderr
    run_dir = only_run_dir(tmp_path / "results")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["models"]["qwen7"]["status"] == "skipped"
    assert "not in the local Hugging Face cache" in results["models"]["qwen7"]["error"]
    assert results["models"]["tiny"]["status"] == "ok"
    assert list(results["preflight"]["models"]) == ["tiny"]
    assert "skipped" in (run_dir / "report.md").read_text()


def test_validate_lists_every_model_and_fails_on_absent_ones(tmp_path, tiny_model_dir):
    config = two_models(tmp_path, tiny_model_dir)
    env = {"HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    proc = run_harness("validate", str(config), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "model qwen7: not on this machine" in proc.stderr
    assert "model tiny:" in proc.stderr and "--model-path ID=PATH" in proc.stderr

    substituted = run_harness(
        "validate", str(config), "--model-path", f"qwen7={tiny_model_dir}", env=env
    )
    assert substituted.returncode == 0, substituted.stderr
    assert "valid" in substituted.stderr


def test_model_path_runs_a_config_with_local_stand_ins(tmp_path, tiny_model_dir):
    data = {"name": "stand-in", "models": [{**ABSENT, "device": "cpu"}], "suites": ["smoke_de"]}
    config = write_config(tmp_path, data)
    proc = run_harness(
        "run",
        str(config),
        "--limit",
        "2",
        "--model-path",
        f"qwen7={tiny_model_dir}",
        "--output",
        str(tmp_path / "results"),
        env={"HF_HUB_CACHE": str(tmp_path / "empty-cache")},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())
    identity = results["models"]["qwen7"]["identity"]
    assert identity["kind"] == "directory" and identity["directory"] == str(tiny_model_dir)
    assert results["config"]["models"][0]["repo"] is None


def test_model_path_for_an_unknown_id_is_bad_input(tmp_path, tiny_model_dir):
    config = two_models(tmp_path, tiny_model_dir)
    proc = run_harness("validate", str(config), "--model-path", f"nope={tiny_model_dir}")
    assert proc.returncode == 2 and "no model 'nope' in the config" in proc.stderr
    malformed = run_harness("validate", str(config), "--model-path", "qwen7")
    assert malformed.returncode == 2 and "expected ID=PATH" in malformed.stderr

"""Bad input gets one clear message naming the file and the fix, exit code 2 (or 1 for a model
that is present but will not load), and never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import REPO, only_run_dir, run_harness, write_config


def config_for(model: dict, suites=("smoke_en",), **extra) -> dict:
    return {"name": "bad", "models": [{"id": "m", **model}], "suites": list(suites), **extra}


def rename_suite(directory, old: str, new: str) -> None:
    """Rename a copied suite's tasks and files so that they do not clash with the original."""
    for path in list(directory.glob(f"*{old}*")):
        text = path.read_text(encoding="utf-8").replace(old, new)
        path.with_name(path.name.replace(old, new)).write_text(text, encoding="utf-8")
        path.unlink()


def assert_user_error(proc, code: int, *fragments: str) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, output
    assert "Traceback" not in output, output
    assert ("error:" if code == 2 else "failed:") in proc.stderr, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output}"


def test_malformed_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: bad\nmodels: [\n  - id: m\n suites: x\n", encoding="utf-8")
    proc = run_harness("run", str(path))
    assert_user_error(proc, 2, "broken.yaml", "not valid YAML at line")


def test_unknown_key(tmp_path):
    path = write_config(tmp_path, {**config_for({"path": "x"}), "suits": ["smoke"]})
    proc = run_harness("validate", str(path))
    assert_user_error(proc, 2, "run.yaml", "suits: unknown key", "suites")


def test_missing_model_directory(tmp_path):
    path = write_config(tmp_path, config_for({"path": "no/such/model"}))
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    assert_user_error(
        proc, 2, "model 'm'", str(tmp_path / "no" / "such" / "model"), "does not exist"
    )
    assert not (tmp_path / "results").exists(), "a run directory was made for bad input"


def test_repo_id_absent_from_the_cache(tmp_path):
    path = write_config(tmp_path, config_for({"repo": "Qwen/Qwen2.5-7B", "revision": "main"}))
    proc = run_harness("validate", str(path), env={"HF_HUB_CACHE": str(tmp_path / "cache")})
    assert_user_error(
        proc, 2, "Qwen/Qwen2.5-7B", "not in the local Hugging Face cache", "hf download"
    )


def test_unknown_task(tmp_path, tiny_model_dir):
    path = write_config(tmp_path, config_for({"path": str(tiny_model_dir)}, suites=["smoke_xx"]))
    proc = run_harness("validate", str(path))
    assert_user_error(proc, 2, "unknown suite 'smoke_xx'", "Did you mean", "smoke_")


def test_task_jsonl_line_that_is_not_json(tmp_path, tiny_model_dir):
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks" / "smoke", tasks / "mine")
    rename_suite(tasks / "mine", "smoke", "mine")
    data = tasks / "mine" / "data" / "hi.jsonl"
    lines = data.read_text(encoding="utf-8").splitlines()
    lines[6] = lines[6][:-1]  # drop the closing brace of line 7
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = write_config(
        tmp_path,
        config_for({"path": str(tiny_model_dir)}, suites=["mine"], task_paths=[str(tasks)]),
    )
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    assert_user_error(proc, 2, f"{data} line 7: not valid JSON")


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_corrupted_weight_file_fails_the_model_and_keeps_the_results(
    tmp_path, tiny_model_dir, damage
):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else b"\x00" * len(blob))
    path = write_config(tmp_path, config_for({"path": str(model)}))
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    assert_user_error(proc, 1, "model 'm': could not load", "sha256")
    results = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())
    assert results["status"] == "failed"
    assert results["models"]["m"]["status"] == "failed"
    assert (
        results["models"]["m"]["identity"]["weight_files"][0]["size_bytes"]
        == weights.stat().st_size
    )


def test_group_listing_an_unreadable_task(tmp_path, tiny_model_dir):
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks" / "smoke", tasks / "mine")
    rename_suite(tasks / "mine", "smoke", "mine")
    (tasks / "mine" / "_mine_template_yaml").unlink()  # every task's include is now missing
    path = write_config(
        tmp_path,
        config_for({"path": str(tiny_model_dir)}, suites=["mine"], task_paths=[str(tasks)]),
    )
    proc = run_harness("validate", str(path))
    assert_user_error(
        proc, 2, "group 'mine'", "lists task 'mine_en'", "mine_en.yaml", "_mine_template_yaml"
    )

"""The country configs: each validates, and runs end to end, with local stand-ins substituted
for its models (`--model-path`), as CI exercises them; `plan` sizes their real candidates."""

from __future__ import annotations

import json

import pytest
import yaml

from .conftest import REPO, only_run_dir, run_harness

COUNTRIES = ["india", "uae", "saudi_arabia", "france", "south_korea", "switzerland", "japan"]


def stand_ins(country: str, model_dir) -> list[str]:
    config = yaml.safe_load((REPO / "configs" / f"{country}.yaml").read_text(encoding="utf-8"))
    return [arg for m in config["models"] for arg in ("--model-path", f"{m['id']}={model_dir}")]


@pytest.mark.parametrize("country", COUNTRIES)
def test_country_config_validates_with_stand_ins(country, tiny_model_dir, tmp_path):
    config = REPO / "configs" / f"{country}.yaml"
    env = {"HF_HUB_CACHE": str(tmp_path)}
    absent = run_harness("validate", str(config), env=env)
    assert absent.returncode == 2 and "not on this machine" in absent.stderr
    proc = run_harness("validate", str(config), *stand_ins(country, tiny_model_dir), env=env)
    assert proc.returncode == 0, proc.stderr


def test_india_runs_end_to_end_with_stand_ins(tiny_model_dir, tmp_path):
    args = stand_ins("india", tiny_model_dir)
    proc = run_harness(
        "run",
        str(REPO / "configs" / "india.yaml"),
        "--limit",
        "2",
        *args,
        "--output",
        str(tmp_path / "results"),
        env={"HF_HUB_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((only_run_dir(tmp_path / "results") / "results.json").read_text())
    assert len(results["models"]) == 5
    for model in results["models"].values():
        assert model["status"] == "ok"
        assert set(model["tokenizer"]) == {"hi", "ta", "en"}
        for suite in ("smoke_hi", "smoke_ta", "smoke_en"):
            metrics = model["suites"][suite]["tasks"][suite]["metrics"]
            assert "acc,none" in metrics and "acc_stderr,none" in metrics


def test_plan_sizes_a_country_config_before_download(tmp_path):
    proc = run_harness(
        "plan", str(REPO / "configs" / "india.yaml"), env={"HF_HUB_CACHE": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stderr
    assert "qwen2.5-7b-instruct" in proc.stdout and "7.62B" in proc.stdout
    assert "k2-think" in proc.stdout and "32.76B" in proc.stdout
    assert "glm-4-9b-0414: architecture from none" in proc.stdout

"""The country configs: each validates, and runs end to end, with local stand-ins substituted
for its models (`--model-path`), as CI exercises them; `plan` sizes their real candidates.
The stand-in has a chat template, as the configs prompt every candidate through theirs."""

from __future__ import annotations

import json

import pytest
import yaml

from .conftest import REPO, only_run_dir, run_harness

COUNTRIES = {
    "india": ["hi", "bn", "ta", "te", "mr", "gu", "kn", "ml", "or", "pa", "ur"],
    "uae": ["ar"],
    "saudi_arabia": ["ar"],
    "france": ["fr"],
    "south_korea": ["ko"],
    "switzerland": ["de", "fr", "it", "rm"],
    "japan": ["ja"],
}


def config_of(country: str) -> dict:
    return yaml.safe_load((REPO / "configs" / f"{country}.yaml").read_text(encoding="utf-8"))


def stand_ins(country: str, model_dir) -> list[str]:
    models = config_of(country)["models"]
    return [arg for m in models for arg in ("--model-path", f"{m['id']}={model_dir}")]


@pytest.mark.parametrize("country", COUNTRIES)
def test_country_config_covers_its_languages(country):
    config = config_of(country)
    assert config["suites"] == [f"native_{code}" for code in COUNTRIES[country] + ["en"]]
    assert all(m.get("chat_template") for m in config["models"])


@pytest.mark.parametrize("country", COUNTRIES)
def test_country_config_validates_with_stand_ins(country, tiny_chat_model_dir, tmp_path):
    config = REPO / "configs" / f"{country}.yaml"
    env = {"HF_HUB_CACHE": str(tmp_path)}
    absent = run_harness("validate", str(config), env=env)
    assert absent.returncode == 2 and "not on this machine" in absent.stderr
    proc = run_harness("validate", str(config), *stand_ins(country, tiny_chat_model_dir), env=env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("country", COUNTRIES)
def test_country_config_runs_end_to_end_with_stand_ins(country, tiny_chat_model_dir, tmp_path):
    args = stand_ins(country, tiny_chat_model_dir)
    proc = run_harness(
        "run",
        str(REPO / "configs" / f"{country}.yaml"),
        "--limit",
        "2",
        *args,
        "--output",
        str(tmp_path / "results"),
        env={"HF_HUB_CACHE": str(tmp_path / "cache")},
    )
    # Two items per task: a partial run, whose gates are checked but not judged (exit 0), and
    # every model a stand-in for the one the config names.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PARTIAL: " in proc.stderr and "limit of 2 items per task" in proc.stderr
    assert proc.stderr.count("STAND-IN: ") == 5 and "gates: NOT JUDGED" in proc.stderr
    run_dir = only_run_dir(tmp_path / "results")
    results = json.loads((run_dir / "results.json").read_text())
    assert len(results["models"]) == 5 and results["scope"]["partial"] is True
    assert all(
        m["stand_in"]["scored"] == str(tiny_chat_model_dir) for m in results["models"].values()
    )
    languages = COUNTRIES[country] + ["en"]
    gates = results["gates"]
    assert gates["judged"] is False and gates["passed"] is False and gates["baseline"] is None
    floors = [c for c in gates["checks"] if c["gate"] == "knowledge floor"]
    assert {(c["model"], c["language"]) for c in floors} == {
        (m, code) for m in results["models"] for code in COUNTRIES[country]
    }
    assert {c["status"] for c in gates["checks"]} == {"not judged"}
    for model in results["models"].values():
        assert model["status"] == "ok"
        assert set(model["tokenizer"]) == set(languages)
        for code in languages:
            tasks = model["suites"][f"native_{code}"]["tasks"]
            assert {"acc,none", "acc_stderr,none"} <= set(tasks[f"native_{code}_mc"]["metrics"])
            generated = tasks[f"native_{code}_gen"]
            assert {"exact_match,none", "exact_match_stderr,none", "chrf,none"} <= set(
                generated["metrics"]
            )
            assert generated["generation"]["answers"] == 2
    report = (run_dir / "report.md").read_text()
    last = COUNTRIES[country][-1]
    assert f"| qwen3-8b [STAND-IN] | {last} | native_{last}_mc: " in report
    assert report.splitlines()[2].startswith("> **PARTIAL: ")
    assert "## Tokenizer fitness" in report


def test_plan_sizes_a_country_config_before_download(tmp_path):
    proc = run_harness(
        "plan", str(REPO / "configs" / "india.yaml"), env={"HF_HUB_CACHE": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stderr
    assert "qwen2.5-7b-instruct" in proc.stdout and "7.62B" in proc.stdout
    assert "k2-think" in proc.stdout and "32.76B" in proc.stdout
    assert "glm-4-9b-0414: architecture from none" in proc.stdout

"""A model whose architecture exists only as code shipped with its weights is refused unless
its config entry opts in; an opted-in model runs and is marked in the report."""

from __future__ import annotations

import json
import shutil

from .conftest import only_run_dir, run_harness, write_config

CONFIGURATION = """
from transformers import Qwen2Config


class TinyCustomConfig(Qwen2Config):
    model_type = "harness_tiny_custom"
"""

MODELING = """
from transformers import Qwen2ForCausalLM

from .configuration_tiny import TinyCustomConfig


class TinyCustomForCausalLM(Qwen2ForCausalLM):
    config_class = TinyCustomConfig
"""


def remote_code_model(tmp_path, tiny_model_dir):
    model = tmp_path / "custom-model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = "harness_tiny_custom"
    config["architectures"] = ["TinyCustomForCausalLM"]
    config["auto_map"] = {
        "AutoConfig": "configuration_tiny.TinyCustomConfig",
        "AutoModelForCausalLM": "modeling_tiny.TinyCustomForCausalLM",
    }
    (model / "config.json").write_text(json.dumps(config))
    (model / "configuration_tiny.py").write_text(CONFIGURATION)
    (model / "modeling_tiny.py").write_text(MODELING)
    return model


def test_remote_code_is_refused_by_default(tmp_path, tiny_model_dir):
    model = remote_code_model(tmp_path, tiny_model_dir)
    config = write_config(
        tmp_path,
        {"name": "rc", "models": [{"id": "m", "path": str(model)}], "suites": ["smoke_en"]},
    )
    proc = run_harness("validate", str(config))
    assert proc.returncode == 2, proc.stderr
    assert "executes that code" in proc.stderr and "trust_remote_code: true" in proc.stderr
    assert "configuration_tiny.TinyCustomConfig" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_opted_in_model_runs_and_is_marked(tmp_path, tiny_model_dir):
    model = remote_code_model(tmp_path, tiny_model_dir)
    spec = {"id": "m", "path": str(model), "device": "cpu", "trust_remote_code": True}
    config = write_config(tmp_path, {"name": "rc", "models": [spec], "suites": ["smoke_en"]})
    proc = run_harness(
        "run", str(config), "--limit", "2", "--output", str(tmp_path / "r"),
        env={"HF_MODULES_CACHE": str(tmp_path / "modules")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(tmp_path / "r")
    identity = json.loads((run_dir / "results.json").read_text())["models"]["m"]["identity"]
    assert "modeling_tiny.TinyCustomForCausalLM" in identity["remote_code"]
    assert "runs remote code" in (run_dir / "report.md").read_text()

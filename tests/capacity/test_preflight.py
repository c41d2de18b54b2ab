"""The preflight: verdicts from a model's config and a machine's memory, `harness plan`, and a
run refused before loading a model that cannot fit."""

from __future__ import annotations

import json
import shutil

from harness.capacity.hardware import GPU, Hardware
from harness.capacity.memory import GIB
from harness.capacity.preflight import plan_models
from harness.config import RunConfig

from ..conftest import REPO, run_harness, write_config


def config_with(*models: dict) -> RunConfig:
    return RunConfig.model_validate({"name": "p", "models": list(models), "suites": ["smoke"]})


def machine(cpu_gib: float, *gpus: tuple[str, float, bool]) -> Hardware:
    """A machine described by its numbers (the planner's input; this one has no GPU to read)."""
    return Hardware(
        cpu_total_bytes=int(cpu_gib * GIB),
        cpu_available_bytes=int(cpu_gib * GIB),
        gpus=[
            GPU(i, name, int(gib * GIB), int(gib * GIB), "9.0" if bf16 else "7.5", bf16)
            for i, (name, gib, bf16) in enumerate(gpus)
        ],
    )


def test_verdicts_from_reference_configs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: plan from references
    config = config_with(
        {"id": "qwen7", "repo": "Qwen/Qwen2.5-7B-Instruct", "dtype": "bfloat16", "device": "cpu"},
        {"id": "v3", "repo": "deepseek-ai/DeepSeek-V3", "dtype": "bfloat16"},
        {"id": "glm9", "repo": "zai-org/GLM-4-9B-0414"},
    )
    cpu_only = {p.model: p for p in plan_models(config, machine(64))}
    assert cpu_only["qwen7"].verdict == "fits" and cpu_only["qwen7"].dtype == "bfloat16"
    assert cpu_only["qwen7"].weights_bytes == 7_615_616_512 * 2
    assert cpu_only["v3"].verdict == "does not fit"
    # 1,250 GiB of bf16 weights + 9 GiB of cache and logits over 79 usable GiB per GPU.
    assert cpu_only["v3"].gpus_needed == 16
    assert cpu_only["glm9"].verdict == "unknown" and "no config.json" in cpu_only["glm9"].note
    assert "bundled reference config" in cpu_only["qwen7"].config_source

    on_gpus = {p.model: p for p in plan_models(config, machine(64, ("H100", 80, True)))}
    assert on_gpus["v3"].verdict == "needs 16 GPUs" and on_gpus["v3"].target == "cuda:0 H100"
    assert on_gpus["qwen7"].target == "cpu"  # device: cpu is kept


def test_auto_dtype_follows_the_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    config = config_with({"id": "q", "repo": "Qwen/Qwen3-8B"})
    [old] = plan_models(config, machine(64, ("T4", 16, False)))
    [new] = plan_models(config, machine(64, ("A100", 80, True)))
    [cpu] = plan_models(config, machine(64))
    assert (old.dtype, new.dtype, cpu.dtype) == ("float16", "bfloat16", "float32")
    assert old.verdict == "needs 2 GPUs" and new.verdict == "fits"


def test_tight_when_only_the_batch_does_not_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    spec = {"id": "q", "repo": "Qwen/Qwen2.5-7B", "dtype": "bfloat16", "batch_size": 64}
    [plan] = plan_models(config_with(spec), machine(20))
    assert plan.fits and plan.verdict == "tight"
    assert "lower batch_size" in plan.explain()


def test_plan_command_prints_the_fit_table_for_the_seed_models(tmp_path):
    proc = run_harness(
        "plan", str(REPO / "configs" / "seed-models.yaml"), env={"HF_HUB_CACHE": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("this machine: CPU RAM")
    for model in ("qwen2.5-7b-instruct", "deepseek-v3", "kimi-k2-instruct", "k2-think"):
        assert model in out
    assert "1,026.41B" in out and "32.86B" in out  # Kimi-K2 total and active
    assert "Weights in memory by format" in out and "q4_K_M" in out
    assert "glm-4-9b-0414: architecture from none" in out


def test_run_refuses_a_model_that_cannot_fit_before_loading(tmp_path, tiny_model_dir):
    model = tmp_path / "huge"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    # The same files, but a config.json that claims trillions of parameters.
    config.update(hidden_size=32768, intermediate_size=131072, num_hidden_layers=400)
    (model / "config.json").write_text(json.dumps(config))
    spec = {"id": "huge", "path": str(model), "device": "cpu"}
    path = write_config(tmp_path, {"name": "huge", "models": [spec], "suites": ["smoke_en"]})
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "do not fit this machine; nothing was loaded" in proc.stderr
    assert "model 'huge' needs" in proc.stderr and "--no-preflight" in proc.stderr
    assert "loading" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()

"""Models that need many GPUs: the config fields, their mapping to the arguments of the engine
that runs them (transformers with accelerate's device_map, or lm-eval's vLLM model), the parallel
layout the preflight picks from real reference configs, and the refusal, before anything loads,
of a vLLM model where vLLM is not installed."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.capacity.hardware import GPU, Hardware
from harness.capacity.memory import GIB
from harness.capacity.preflight import check_fits, plan_models
from harness.config import ModelSpec, RunConfig, load_config
from harness.errors import BadInputError, ConfigError
from harness.generation import ThinkTags
from harness.models.engines import (
    ENGINE_ONLY_ARGS,
    ENGINE_SEED,
    ParallelLayout,
    engine_problems,
    hf_placement,
    placed_on,
    vllm_model_args,
)
from harness.models.resolve import ModelSource

from .conftest import REPO, run_harness, write_config

VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None
VLLM_OFFLINE = {"mode": "strict", "kernel_block": False, "sandbox": False}
"""The offline policy a vLLM model needs (its processes meet over TCP on loopback)."""


def spec(**fields) -> ModelSpec:
    return ModelSpec.model_validate({"id": "m", "path": "/models/m", **fields})


def run_config(*models: dict, offline=None) -> RunConfig:
    return RunConfig.model_validate(
        {"name": "p", "models": list(models), "suites": ["smoke"], "offline": offline or {}}
    )


def source(directory: str = "/models/m", **fields) -> ModelSource:
    return ModelSource(kind="directory", directory=Path(directory), weight_files=[], **fields)


def machine(*gpus: tuple[str, float]) -> Hardware:
    """A machine described by its numbers: name and memory (GiB) of each GPU."""
    return Hardware(
        cpu_total_bytes=512 * GIB,
        cpu_available_bytes=512 * GIB,
        gpus=[
            GPU(i, name, int(gib * GIB), int(gib * GIB), "9.0", True)
            for i, (name, gib) in enumerate(gpus)
        ],
    )


NO_GPU = machine()
H100_NODE = machine(*[("H100", 80)] * 8)
H200_NODE = machine(*[("H200", 141)] * 8)


# The config fields.


def test_defaults_keep_a_model_on_one_device_with_transformers():
    model = spec()
    assert (model.backend, model.device_map, model.nodes) == ("hf", None, 1)
    assert model.tensor_parallel_size is model.pipeline_parallel_size is None
    assert model.gpu_memory_utilization is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tensor_parallel_size": 8}, "tensor_parallel_size applies only to `backend: vllm`"),
        ({"nodes": 2}, "nodes applies only to `backend: vllm`"),
        ({"pipeline_parallel_size": 2, "gpu_memory_utilization": 0.8}, "device_map: auto"),
        ({"device_map": "auto", "device": "cpu"}, "cannot go with device: cpu"),
        ({"device_map": "auto", "device": "cuda:1"}, "cannot go with device: cuda:1"),
        ({"backend": "vllm", "device_map": "auto"}, "device_map applies only to backend hf"),
        ({"backend": "vllm", "device": "cpu"}, "CUDA_VISIBLE_DEVICES"),
        ({"backend": "vllm", "gguf_file": "m.gguf"}, "does not read a GGUF file"),
        ({"backend": "vllm", "tensor_parallel_size": 0}, "greater than or equal to 1"),
        ({"backend": "vllm", "gpu_memory_utilization": 1.5}, "less than or equal to 1"),
        ({"backend": "vllm", "gpu_memory_utilization": 0}, "greater than 0"),
        ({"backend": "sglang"}, "'llamacpp' or 'server'"),
    ],
)
def test_engine_settings_that_contradict_each_other_are_errors(tmp_path, fields, message):
    model = {"id": "m", "path": "m", **fields}
    path = write_config(tmp_path, {"name": "p", "models": [model], "suites": ["smoke"]})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}: invalid config\n  models[0]")


def test_vllm_in_the_sandbox_runs_on_one_node_only(tmp_path):
    vllm = {"id": "big", "path": "m", "backend": "vllm"}
    path = write_config(tmp_path, {"name": "p", "models": [vllm], "suites": ["smoke"]})
    assert load_config(path).offline.sandbox  # loopback inside the worker's namespace is enough
    data = {"name": "p", "models": [{**vllm, "nodes": 2}], "suites": ["smoke"]}
    with pytest.raises(ConfigError, match="sandbox: false"):
        load_config(write_config(tmp_path, data))


def test_vllm_without_the_sandbox_needs_the_kernel_layer_off_and_one_node_to_isolate(tmp_path):
    vllm = {"id": "big", "path": "m", "backend": "vllm"}
    data = {"name": "p", "models": [vllm], "suites": ["smoke"], "offline": {"sandbox": False}}
    path = write_config(tmp_path, data)
    with pytest.raises(ConfigError, match="kernel_block: false"):
        load_config(path)
    isolated = {"mode": "isolate", "kernel_block": False, "sandbox": False}
    assert load_config(write_config(tmp_path, {**yaml_of(path), "offline": isolated}))
    two_nodes = {**vllm, "nodes": 2}
    data = {"name": "p", "models": [two_nodes], "suites": ["smoke"], "offline": isolated}
    with pytest.raises(ConfigError, match="cannot reach: its network namespace has only loopback"):
        load_config(write_config(tmp_path, data))
    data["offline"] = VLLM_OFFLINE
    assert load_config(write_config(tmp_path, data)).models[0].nodes == 2


def yaml_of(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def test_every_config_under_configs_validates():
    configs = sorted((REPO / "configs").rglob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


# From the config to the engine's arguments.


def test_deepseek_v3_over_two_nodes_maps_to_vllm_with_ray():
    model = spec(
        id="deepseek-v3",
        backend="vllm",
        tensor_parallel_size=8,
        pipeline_parallel_size=2,
        nodes=2,
        gpu_memory_utilization=0.92,
        batch_size=64,
        trust_remote_code=True,
        generation={"max_length": 8192},
    )
    layout = ParallelLayout.for_model(model)
    assert (layout.gpus, layout.describe()) == (
        16,
        "tensor parallel 8 x pipeline parallel 2 on 2 nodes",
    )
    args = vllm_model_args(model, source("/shared/DeepSeek-V3"), layout, "bfloat16")
    assert args == {
        "pretrained": "/shared/DeepSeek-V3",
        "dtype": "bfloat16",
        "trust_remote_code": True,
        "tensor_parallel_size": 8,
        "pipeline_parallel_size": 2,
        "distributed_executor_backend": "ray",
        "max_model_len": 8192,
        "gpu_memory_utilization": 0.92,
        "batch_size": 64,
        "seed": ENGINE_SEED,
        "think_end_token": "</think>",
    }


def test_glm_on_four_gpus_of_one_node_maps_to_tensor_parallel_only():
    model = spec(
        id="glm-4.5-air",
        backend="vllm",
        tensor_parallel_size=4,
        generation={"think_start": "", "think_end": ""},  # no thinking: stop at the task's stops
    )
    args = vllm_model_args(model, source(), ParallelLayout.for_model(model), "bfloat16")
    assert args["tensor_parallel_size"] == 4 and args["pipeline_parallel_size"] == 1
    for absent in ("distributed_executor_backend", "max_model_len", "gpu_memory_utilization"):
        assert absent not in args
    assert "think_end_token" not in args and "revision" not in args
    assert args["pretrained"] == "/models/m"  # the local directory, never a repo id


def test_sizes_left_open_come_from_the_preflight_plan():
    model = spec(backend="vllm", nodes=2)
    planned = {"tensor_parallel_size": 8, "pipeline_parallel_size": 2}
    assert ParallelLayout.for_model(model, planned) == ParallelLayout(8, 2, 2)
    assert ParallelLayout.for_model(model, None) == ParallelLayout(1, 2, 2)
    given = spec(backend="vllm", tensor_parallel_size=4, pipeline_parallel_size=1)
    assert ParallelLayout.for_model(given, planned) == ParallelLayout(4, 1, 1)


def test_hf_placement_spreads_over_the_node_only_for_device_map_auto():
    assert hf_placement(spec(device_map="auto"), "cuda:0") == {"device_map": "auto"}
    assert hf_placement(spec(device="cuda:1"), "cuda:1") == {"device_map": {"": "cuda:1"}}
    assert hf_placement(spec(device="cpu"), "cpu") == {}
    with pytest.raises(BadInputError, match="torch sees no GPU here"):
        hf_placement(spec(device_map="auto"), "cpu")


def test_placed_on_names_every_device_accelerate_used():
    # `hf_device_map` is what accelerate sets on a model it dispatched (module -> device).
    spread = SimpleNamespace(
        hf_device_map={"model.embed_tokens": 0, "model.layers.0": 0, "lm_head": 1}
    )
    assert placed_on(spread, "cuda:0") == "device_map auto: cuda:0, cuda:1"
    assert placed_on(SimpleNamespace(hf_device_map={"": 0}), "cuda:0") == "cuda:0"
    assert placed_on(SimpleNamespace(), "cpu") == "cpu"


def _vllm_init() -> ast.FunctionDef:
    """lm-eval's `VLLM.__init__`, read from its source: importing the module imports vllm."""
    found = importlib.util.find_spec("lm_eval.models.vllm_causallms")
    assert found is not None and found.origin
    tree = ast.parse(Path(found.origin).read_text(encoding="utf-8"))
    [cls] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "VLLM"]
    [init] = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
    return init


def test_every_argument_is_one_lm_evals_vllm_model_takes():
    init = _vllm_init()
    named = {a.arg for a in init.args.args + init.args.kwonlyargs} - {"self"}
    assert init.args.kwarg is not None and init.args.kwarg.arg == "kwargs"
    # What VLLM does not name goes on, with the rest of its model_args, to vllm.LLM.
    forwards = [
        node
        for node in ast.walk(init)
        if isinstance(node, ast.Call)
        and ast.unparse(node.func) == "self.model_args.update"
        and [ast.unparse(a) for a in node.args] == ["kwargs"]
    ]
    assert forwards, "lm-eval's VLLM no longer passes its **kwargs on to vllm.LLM"
    assert not ENGINE_ONLY_ARGS & named
    model = spec(
        backend="vllm",
        nodes=2,
        pipeline_parallel_size=2,
        gpu_memory_utilization=0.9,
        generation={"max_length": 4096},
    )
    args = vllm_model_args(model, source(), ParallelLayout(8, 2, 2), "bfloat16")
    assert set(args) - named == ENGINE_ONLY_ARGS
    assert "device" not in args  # VLLM ignores it: vLLM picks its GPUs itself


# The layout the preflight picks, from the bundled reference configs (copies of the models'
# own config.json, see harness/families/reference/SOURCES.md).


@pytest.fixture
def no_local_models(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: plan from references


def plans(hardware: Hardware, *models: dict) -> dict:
    config = run_config(*models, offline=VLLM_OFFLINE)
    return {plan.model: plan for plan in plan_models(config, hardware)}


def test_deepseek_v3_needs_two_nodes_of_80_gib_gpus(no_local_models):
    v3 = {"repo": "deepseek-ai/DeepSeek-V3", "backend": "vllm"}
    found = plans(NO_GPU, {"id": "one", **v3}, {"id": "two", **v3, "nodes": 2})
    one, two = found["one"], found["two"]
    # fp8 weights as shipped (625 GiB) do not fit 8 x 72 GiB (gpu_memory_utilization 0.9).
    assert one.verdict == "does not fit" and one.tensor_parallel_size == 8
    assert one.weights_format == "fp8" and "raise `nodes`" in one.explain()
    assert (two.verdict, two.tensor_parallel_size, two.pipeline_parallel_size) == ("fits", 8, 2)
    assert two.devices == 16 and two.reference_hardware
    assert two.target == "vllm tp 8 x pp 2: 16 x 80 GiB GPU (reference; no GPU here) on 2 nodes"
    assert "the smallest power of two that divides the 128 attention heads" in two.note
    # The whole context (163,840 tokens) by default: vLLM's max_model_len is the model's own.
    assert two.context == 163840
    data = two.to_dict()
    assert (data["tensor_parallel_size"], data["pipeline_parallel_size"], data["nodes"]) == (
        8,
        2,
        2,
    )
    # Without a GPU the plan says what to ask for, and a run refuses.
    with pytest.raises(BadInputError, match="torch sees no GPU on this machine"):
        check_fits([two])


def test_one_node_of_141_gib_gpus_holds_deepseek_v3_and_glm_4_5(no_local_models):
    found = plans(
        H200_NODE,
        {"id": "v3", "repo": "deepseek-ai/DeepSeek-V3", "backend": "vllm"},
        {"id": "glm", "repo": "zai-org/GLM-4.5", "backend": "vllm"},
        {"id": "qwen", "repo": "Qwen/Qwen2.5-7B-Instruct", "backend": "vllm"},
    )
    assert [
        (p.verdict, p.tensor_parallel_size, p.pipeline_parallel_size) for p in found.values()
    ] == [
        ("fits", 8, 1),
        ("fits", 8, 1),
        ("fits", 1, 1),
    ]
    assert found["glm"].weights_format is None  # GLM-4.5 ships bfloat16
    assert found["v3"].target == "vllm tp 8 x pp 1: 8 x H200"
    check_fits(list(found.values()))


def test_kimi_k2_over_two_nodes(no_local_models):
    [kimi] = plans(
        H100_NODE,
        {"id": "kimi", "repo": "moonshotai/Kimi-K2-Instruct", "backend": "vllm", "nodes": 2},
    ).values()
    assert (kimi.verdict, kimi.tensor_parallel_size, kimi.pipeline_parallel_size) == ("fits", 8, 2)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"tensor_parallel_size": 3},
            "and the model's 8 key/value heads: vLLM needs one to divide",
        ),
        ({"tensor_parallel_size": 16}, "= 16 GPUs, but 1 node(s) of 8 x H100 have 8"),
        ({"tensor_parallel_size": 8, "pipeline_parallel_size": 4, "nodes": 2}, "= 32 GPUs"),
    ],
)
def test_impossible_layouts_are_refused(no_local_models, fields, message):
    model = {"id": "glm", "repo": "zai-org/GLM-4.5", "backend": "vllm", **fields}
    [plan] = plans(H100_NODE, model).values()
    assert plan.verdict == "cannot run" and plan.fits is False
    assert message in plan.explain()
    with pytest.raises(BadInputError, match="nothing was loaded"):
        check_fits([plan])


def test_heads_that_a_tensor_parallel_size_does_not_divide(no_local_models):
    model = {"id": "q", "repo": "Qwen/Qwen2.5-7B-Instruct", "backend": "vllm"}
    [plan] = plans(H100_NODE, {**model, "tensor_parallel_size": 8}).values()
    assert (
        "does not divide the model's 28 attention heads, as vLLM needs; sizes that do: 1, 2, 4"
        in (plan.explain())
    )


def test_a_given_layout_that_fits_is_kept(no_local_models):
    model = {"id": "glm", "repo": "zai-org/GLM-4.5", "backend": "vllm"}
    [plan] = plans(H200_NODE, {**model, "tensor_parallel_size": 4, "nodes": 2}).values()
    assert (plan.verdict, plan.tensor_parallel_size, plan.pipeline_parallel_size) == ("fits", 4, 2)
    assert "chosen" not in plan.note


def test_device_map_auto_needs_the_sum_of_the_node(no_local_models):
    model = {"id": "q32", "repo": "Qwen/Qwen2.5-32B", "dtype": "bfloat16", "device_map": "auto"}
    [four] = plans(machine(*[("L4", 24)] * 4), model).values()
    [two] = plans(machine(*[("L4", 24)] * 2), model).values()
    assert four.verdict in ("fits", "tight") and four.devices == 4 and four.backend == "hf"
    assert four.target == "device_map auto: 4 x L4"
    assert two.verdict == "does not fit" and "backend: vllm" in two.explain()
    [nowhere] = plans(NO_GPU, model).values()
    assert nowhere.reference_hardware and nowhere.devices == 8 and nowhere.fits
    with pytest.raises(BadInputError, match="torch sees no GPU"):
        check_fits([nowhere])


def test_one_gpu_too_small_points_at_the_ways_to_spread(no_local_models):
    [plan] = plans(machine(("H100", 80)), {"id": "glm", "repo": "zai-org/GLM-4.5"}).values()
    assert plan.verdict == "needs 9 GPUs"  # 661 GiB of bfloat16 weights + cache
    assert "spread it with `device_map: auto` or `backend: vllm`" in plan.explain()


# Refusing what cannot run here, before anything loads.


def test_engine_problems_of_a_source_vllm_cannot_take():
    model = spec(backend="vllm")
    gguf = source(gguf_file="m.gguf")
    kimi = source(alias="kimi_k2 -> deepseek_v3")
    assert any("GGUF file" in p for p in engine_problems(model, gguf))
    assert any("trust_remote_code: true" in p for p in engine_problems(model, kimi))
    assert not any(
        "trust_remote_code" in p
        for p in engine_problems(spec(backend="vllm", trust_remote_code=True), kimi)
    )
    assert engine_problems(spec(), gguf) == []  # transformers reads GGUF files


@pytest.mark.skipif(VLLM_INSTALLED, reason="vLLM is installed here: nothing to refuse")
def test_run_refuses_a_vllm_model_when_vllm_is_not_installed(tmp_path, tiny_model_dir):
    model = {"id": "tiny-vllm", "path": str(tiny_model_dir), "backend": "vllm"}
    data = {"name": "v", "models": [model], "suites": ["smoke_en"], "offline": VLLM_OFFLINE}
    path = write_config(tmp_path, data)
    proc = run_harness("run", str(path), "--output", str(tmp_path / "results"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"model 'tiny-vllm' in {path} has backend vllm" in proc.stderr
    assert "vLLM is not installed" in proc.stderr and "pip install vllm" in proc.stderr
    assert "Nothing was loaded." in proc.stderr
    assert "Traceback" not in proc.stderr and "loading" not in proc.stderr
    assert not (tmp_path / "results").exists()

    checked = run_harness("validate", str(path))
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "model tiny-vllm: cannot run here" in checked.stderr
    assert "`harness run` would refuse the run" in checked.stderr


@pytest.mark.skipif(VLLM_INSTALLED, reason="vLLM is installed here: nothing to report")
def test_plan_shows_the_layout_and_that_vllm_is_missing(tmp_path):
    model = {"id": "v3", "repo": "deepseek-ai/DeepSeek-V3", "backend": "vllm", "nodes": 2}
    data = {"name": "v", "models": [model], "suites": ["smoke_en"], "offline": VLLM_OFFLINE}
    path = write_config(tmp_path, data)
    proc = run_harness("plan", str(path), env={"HF_HUB_CACHE": str(tmp_path), "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())
    assert "vllm tp 8 x pp 2: 16 x 80 GiB GPU (reference; no GPU here) on 2 nodes" in out
    assert "tensor_parallel_size 8 chosen" in out
    assert "v3: model 'v3' in" in out and "vLLM is not installed" in out


def test_config_snippets_of_the_docs_are_valid():
    import re

    import yaml

    found = 0
    for doc in (REPO / "docs" / "multi-gpu.md", REPO / "docs" / "user-guide.md"):
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            data = yaml.safe_load(block)
            if "models" in data and any(
                "backend" in m or "device_map" in m for m in data["models"]
            ):
                RunConfig.model_validate({"name": "doc", "suites": ["smoke"], **data})
                found += 1
    assert found >= 4


def test_a_vllm_model_has_a_cache_identity_of_its_own():
    from harness.cache import model_identity

    weights = [{"name": "model.safetensors", "sha256": "ab" * 32}]
    on_hf = model_identity(spec(), weights, "cuda:0", "bfloat16")
    on_vllm = model_identity(spec(backend="vllm"), weights, "cuda", "bfloat16")
    assert "engine" not in on_hf  # keys of existing caches do not change
    assert on_vllm["engine"] == "vllm" and "vllm" in on_vllm
    assert {k: v for k, v in on_vllm.items() if k not in ("engine", "vllm")} == on_hf


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or __import__("torch").cuda.is_available(),
    reason="needs a machine without a GPU",
)
def test_device_map_auto_without_a_gpu_is_refused_before_loading(tiny_model_dir):
    from harness.models import load_model, resolve_model_source

    model = ModelSpec(id="tiny", path=tiny_model_dir, device_map="auto")
    with pytest.raises(BadInputError, match="torch sees no GPU here"):
        load_model(model, resolve_model_source(model))


# Think-aware generation under vLLM (harness.models.vllm_thinking). Everything but the call to
# vLLM runs here, with a real tokenizer (the tiny model's, trained on the smoke suite's text).


@pytest.fixture(scope="module")
def tokenizer():
    from harness.families.tiny import train_tokenizer

    from .conftest import suite_text

    return train_tokenizer(suite_text())


THINK = ThinkTags()


def plan_for(tokenizer, context="Question: 2+2?\nAnswer:", **overrides):
    from harness.models.vllm_thinking import plan_generation

    settings = {"until": ["\n"], "max_gen_toks": 8, "do_sample": False}
    settings.update(overrides.pop("gen_kwargs", {}))
    options = {
        "eos": tokenizer.eos_token,
        "default_max_gen_toks": 256,
        "max_model_len": 512,
        "tags": THINK,
        "think_budget": 64,
        "seed": 1234,
    } | overrides
    return plan_generation(context, tokenizer.encode(context), settings, **options)


def read(tokenizer, plan, text: str, *, finished=True, eos=True):
    from harness.models.vllm_thinking import read_generation

    ids = tokenizer.encode(text) + ([tokenizer.eos_token_id] if eos else [])
    return read_generation(
        tokenizer, ids, plan, THINK, finished=finished, eos_ids={tokenizer.eos_token_id}
    )


def test_decoded_pieces_join_to_the_decoded_text(tokenizer):
    from harness.models.vllm_thinking import decode_pieces

    text = "<think>ভারতের রাজধানী</think> 서울입니다 é\nThe capital"
    ids = tokenizer.encode(text)
    pieces = list(decode_pieces(tokenizer, ids))
    assert len(pieces) == len(ids)
    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert "" in pieces  # characters of several bytes come whole, after their last byte


def test_a_thinking_model_gets_its_budget_on_top_of_the_answers_limit(tokenizer):
    plan = plan_for(tokenizer)
    assert (plan.answer_limit, plan.max_tokens) == (8, 8 + 64)
    # vLLM stops only at the end of sequence; "\n" applies to the answer, afterwards.
    assert plan.engine_stops == [tokenizer.eos_token] and "\n" in plan.stops
    assert plan.sampling["seed"] == 1234 and plan.sampling["temperature"] == 0.0
    assert plan.context == tokenizer.encode("Question: 2+2?\nAnswer:") and not plan.opened
    # Within the context window: the budget takes what the prompt and the answer leave.
    prompt = len(plan.context)
    tight = plan_for(tokenizer, max_model_len=prompt + 8 + 10)
    assert tight.max_tokens == 8 + 10
    opened = plan_for(tokenizer, context="Question: 2+2?\n<think>")
    assert opened.opened


def test_a_model_without_think_tags_is_planned_as_lm_eval_plans_it(tokenizer):
    plan = plan_for(
        tokenizer,
        tags=None,
        gen_kwargs={"do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 20},
    )
    assert plan.max_tokens == plan.answer_limit == 8
    assert plan.engine_stops == plan.stops == ["\n", tokenizer.eos_token]
    assert {k: plan.sampling[k] for k in ("temperature", "top_p", "top_k", "seed")} == {
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
        "seed": 1234,
    }


def test_stop_sequences_apply_to_the_answer_only(tokenizer):
    plan = plan_for(tokenizer)
    made = read(tokenizer, plan, "<think>four\nitems\nsum</think> 4\nQuestion: more")
    assert (made.answer, made.thought, made.hit_token_limit) == ("4", True, False)
    # What vLLM wrote after the stop is dropped: the record ends where generation would have.
    assert made.raw.startswith("<think>four\nitems\nsum</think> 4\n")
    assert "more" not in made.raw
    assert made.tokens < len(tokenizer.encode("<think>four\nitems\nsum</think> 4\nQuestion: more"))


def test_thinking_longer_than_the_answers_limit_still_answers(tokenizer):
    """lm-eval's own VLLM gives thinking and answer the task's 8 tokens together: this model
    would have no answer there."""
    plan = plan_for(tokenizer)
    thinking = "<think>" + "The capital of France is Paris. " * 2 + "</think>"
    assert len(tokenizer.encode(thinking)) > plan.answer_limit
    made = read(tokenizer, plan, thinking + "Paris")
    assert (made.answer, made.hit_token_limit) == ("Paris", False)


def test_thinking_past_its_budget_has_no_answer_and_hit_the_limit(tokenizer):
    plan = plan_for(tokenizer, think_budget=4)
    text = "<think>" + "The capital of France is Paris. " * 5
    ids = tokenizer.encode(text)[: plan.max_tokens]  # vLLM stops at max_tokens
    from harness.models.vllm_thinking import read_generation

    made = read_generation(
        tokenizer, ids, plan, THINK, finished=False, eos_ids={tokenizer.eos_token_id}
    )
    assert (made.answer, made.thought, made.hit_token_limit) == ("", True, True)
    assert made.tokens == plan.max_tokens == 12


def test_the_answer_is_held_to_its_own_limit(tokenizer):
    # 7 tokens: "<think>" takes 6 here, and until the model is seen to think its first
    # tokens count against the answer's limit (as lm-eval and the hf path count).
    plan = plan_for(tokenizer, gen_kwargs={"max_gen_toks": 7})
    made = read(tokenizer, plan, "<think>x</think> The capital of France is Paris.")
    assert made.hit_token_limit and made.thought
    answer_tokens = tokenizer.encode(made.answer)
    assert 0 < len(answer_tokens) <= 7 and "Paris" not in made.answer


def test_an_answer_without_thinking_is_lm_evals_answer(tokenizer):
    from lm_eval.models.utils import postprocess_generated_text

    plan = plan_for(tokenizer, gen_kwargs={"max_gen_toks": 64})  # think tags set; no thinking
    text = "The capital of France is Paris.\nQuestion"
    made = read(tokenizer, plan, text, eos=False)
    assert made.answer == postprocess_generated_text(text, ["\n"], None)
    assert not made.thought and not made.hit_token_limit


class ScriptedEngine:
    """The one stand-in: vLLM itself (it needs a GPU and is not installed here). It answers
    each prompt with the token ids of a scripted text, as vLLM's `RequestOutput`s hold them,
    and keeps the `SamplingParams` (as plain dicts) it was given. Everything else is
    harness's real code with a real tokenizer."""

    def __init__(self, tokenizer, script: dict[str, str], max_tokens_seen: list):
        self.tokenizer = tokenizer
        self.script = script
        self.params = max_tokens_seen

    def generate(self, prompts: list[list[int]], params: list[dict]):
        outputs = []
        for prompt, settings in zip(prompts, params, strict=True):
            self.params.append(settings)
            text = self.script[self.tokenizer.decode(prompt)]
            ids = self.tokenizer.encode(text) + [self.tokenizer.eos_token_id]
            cut = ids[: settings["max_tokens"]]
            done = SimpleNamespace(
                token_ids=cut, finish_reason="stop" if len(cut) == len(ids) else "length"
            )
            outputs.append(SimpleNamespace(outputs=[done]))
        return outputs


def scripted_lm(tokenizer, script, seen, **thinking):
    from lm_eval.api.model import CacheHook

    from harness.models.vllm_thinking import ThinkAwareGeneration

    engine = ScriptedEngine(tokenizer, script, seen)

    class ScriptedVLLM(ThinkAwareGeneration):
        max_length = 512
        max_gen_toks = 256
        batch_size = "auto"
        cache_hook = CacheHook(None)

        def __init__(self):
            self.tokenizer = tokenizer
            self.eot_token_id = tokenizer.eos_token_id
            self._setup_thinking(**thinking)

        def tok_encode(self, strings):
            return [tokenizer.encode(s) for s in strings]

        def _model_generate(self, requests, generate, sampling_params):
            return engine.generate(requests, sampling_params)

        @staticmethod
        def _sampling_params(**kwargs):
            return kwargs

    return ScriptedVLLM()


def test_generate_until_answers_in_order_records_and_seeds_each_repeat(tokenizer):
    from lm_eval.api.instance import Instance

    script = {
        "Q: capital of France?\nA:": "<think>France\nParis</think> Paris\nQ: more",
        "Q: 2+2?\nA:": " 4\nQ: 3+3?",
    }
    settings = {"until": ["\n"], "max_gen_toks": 6, "do_sample": True, "temperature": 0.7}
    requests = [
        Instance("generate_until", {}, (context, settings), 0, ("t", doc, 2))
        for doc, context in enumerate(script)
        for _ in range(2)  # lm-eval lists a request once per repeat
    ]
    seen: list = []
    lm = scripted_lm(tokenizer, script, seen, think_tags=THINK, think_budget=32, generation_seed=7)
    assert lm.generate_until(requests) == ["Paris", "Paris", " 4", " 4"]
    # Each repeat a seed of its own, derived as on every engine (harness.repeats.draw_seed).
    from harness.repeats import batch_seed

    expected = {batch_seed(7, [c], settings, n) % 2**31 for c in script for n in (0, 1)}
    assert sorted(p["seed"] for p in seen) == sorted(expected) and len(expected) == 4
    assert {p["max_tokens"] for p in seen} == {6 + 32}
    assert all(p["stop"] == [tokenizer.eos_token] and p["temperature"] == 0.7 for p in seen)
    [first, second] = lm.generations_for("t", 0)
    assert first.thought and first.answer == "Paris" and not first.hit_token_limit
    assert not lm.generations_for("t", 1)[0].thought
    assert lm.work["generated_tokens"] == sum(
        g.tokens for doc in (0, 1) for g in lm.generations_for("t", doc)
    )


def test_start_vllm_gives_vllm_the_thinking_budget_and_the_runs_seed():
    from harness.models.engines import vllm_thinking_args

    model = spec(backend="vllm", generation={"think_budget": 4096, "seed": 99})
    args = vllm_model_args(model, source(), ParallelLayout(), "bfloat16")
    assert args["seed"] == 99
    assert vllm_thinking_args(model) == {
        "think_tags": THINK,
        "think_budget": 4096,
        "generation_seed": 99,
    }
    plain = spec(backend="vllm", generation={"think_start": "", "think_end": ""})
    assert vllm_thinking_args(plain)["think_tags"] is None

"""The engine that runs a model, and the arguments it takes.

- `backend: hf`: transformers loads the model in this process, on one device, or spread layer
  by layer over every GPU of this node by accelerate (`device_map: auto`); lm-eval's HF model
  scores the loaded model.
- `backend: vllm`: vLLM runs it through lm-eval's own vLLM model (`lm_eval.models.vllm_causallms
  .VLLM`), each layer split over `tensor_parallel_size` GPUs and the layers cut into
  `pipeline_parallel_size` stages, on several nodes through a Ray cluster.

The mappings from a config to an engine's keyword arguments are pure functions, so they are
checked on any machine; only `start_vllm` needs vLLM and GPUs. vLLM is not a dependency of
harness: `engine_problems` says, before anything loads, that it is missing.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import ModelSpec
from harness.errors import BadInputError, ModelLoadError

log = logging.getLogger("harness")

ENGINE_SEED = 1234
"""The default of `generation.seed`, which vLLM is started with (lm-eval's default for it)."""

ENGINE_ONLY_ARGS = frozenset(
    {"pipeline_parallel_size", "distributed_executor_backend", "gpu_memory_utilization"}
)
"""Keys lm-eval's VLLM has no parameter of its own for: its `**kwargs` carry them on to
`vllm.LLM`, whose engine arguments they are."""


class EngineUnavailableError(BadInputError):
    """The engine a model asks for is not installed here, or cannot run that model."""


@dataclass(frozen=True)
class ParallelLayout:
    """How vLLM splits a model: each layer over `tensor_parallel_size` GPUs, the layers into
    `pipeline_parallel_size` stages, on `nodes` machines."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    nodes: int = 1

    @property
    def gpus(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @classmethod
    def for_model(cls, spec: ModelSpec, plan: dict | None = None) -> ParallelLayout:
        """The sizes the config gives, else those the preflight chose (`plan`, a
        `ModelPlan.to_dict()`), else one GPU per pipeline stage and one stage per node."""
        plan = plan or {}
        tensor = spec.tensor_parallel_size or plan.get("tensor_parallel_size") or 1
        pipeline = spec.pipeline_parallel_size or plan.get("pipeline_parallel_size") or spec.nodes
        return cls(tensor, pipeline, spec.nodes)

    def describe(self) -> str:
        nodes = f" on {self.nodes} nodes" if self.nodes > 1 else ""
        return (
            f"tensor parallel {self.tensor_parallel_size} x pipeline parallel "
            f"{self.pipeline_parallel_size}{nodes}"
        )


def hf_placement(spec: ModelSpec, device: str) -> dict[str, Any]:
    """Where `from_pretrained` puts the weights of `spec`, as its keyword arguments, given the
    device `load_model` picked: spread over every GPU of this node for `device_map: auto`, else
    all on `device` (nothing to say for the CPU)."""
    if spec.device_map == "auto":
        if not device.startswith("cuda"):
            raise BadInputError(
                f"model '{spec.id}': device_map: auto spreads the model over the GPUs of this "
                f"node, but torch sees no GPU here. Remove device_map (to run on {device}), or "
                "run on a GPU server."
            )
        return {"device_map": "auto"}
    return {"device_map": {"": device}} if device.startswith("cuda") else {}


def placed_on(model, device: str) -> str:
    """The device(s) a loaded model's weights are on: `device`, or those accelerate spread it
    over (`cpu` or `disk` among them when it had to offload)."""
    spread = getattr(model, "hf_device_map", None) or {}
    places = list(
        dict.fromkeys(f"cuda:{p}" if isinstance(p, int) else str(p) for p in spread.values())
    )
    if len(places) < 2:
        return device
    return f"device_map auto: {', '.join(places)}"


def vllm_model_args(spec: ModelSpec, source, layout: ParallelLayout, dtype: str) -> dict[str, Any]:
    """The keyword arguments of lm-eval's `VLLM` for `spec`, whose files `source` (a resolved
    `ModelSource`) found, split as `layout` says, in `dtype` (a dtype name, never `auto`: the
    one the preflight planned, so the report says what ran).

    `pretrained` is the local directory, never a repo id: vLLM then has nothing to look up.
    `seed` is the run's (`generation.seed`). Generation itself is harness's
    (`harness.models.vllm_thinking`, given `vllm_thinking_args`): with think tags, the thinking
    gets `think_budget` tokens on top of the answer's limit and the task's stop sequences apply
    to the answer only, as with transformers. `think_end_token` is still passed, for what
    lm-eval's VLLM does with it outside generation."""
    args: dict[str, Any] = {
        "pretrained": str(source.directory),
        "dtype": dtype,
        "trust_remote_code": spec.trust_remote_code,
        "tensor_parallel_size": layout.tensor_parallel_size,
        "pipeline_parallel_size": layout.pipeline_parallel_size,
        "batch_size": spec.batch_size,
        "seed": spec.generation.seed,
    }
    if layout.nodes > 1:
        args["distributed_executor_backend"] = "ray"
    if spec.generation.max_length is not None:
        args["max_model_len"] = spec.generation.max_length
    if spec.generation.think_start:
        args["think_end_token"] = spec.generation.think_end
    if spec.gpu_memory_utilization is not None:
        args["gpu_memory_utilization"] = spec.gpu_memory_utilization
    return args


def vllm_thinking_args(spec: ModelSpec) -> dict[str, Any]:
    """The keyword arguments `harness.models.vllm_thinking`'s VLLM takes on top of lm-eval's:
    the think tags, the thinking's budget, and the seed of each request's `SamplingParams`."""
    from harness.thinking import ThinkTags

    limits = spec.generation
    tags = ThinkTags(limits.think_start, limits.think_end) if limits.think_start else None
    return {
        "think_tags": tags,
        "think_budget": limits.think_budget,
        "generation_seed": limits.seed,
    }


def engine_problems(
    spec: ModelSpec, source=None, config_file: str | Path | None = None
) -> list[str]:
    """Why the engine `spec` asks for cannot run it here, one sentence each; empty when it can.

    Without `source` only what needs no model files is checked (is the engine installed)."""
    where = f"model '{spec.id}'" + (f" in {config_file}" if config_file else "")
    if spec.backend == "server":
        from harness.models.server import server_problems

        return server_problems(spec, config_file)
    if spec.backend == "llamacpp":
        problems = []
        if importlib.util.find_spec("llama_cpp") is None:
            problems.append(llamacpp_missing(where))
        if spec.device.startswith("cuda"):
            problems.append(
                f"{where} has backend llamacpp, which harness runs on the CPU; `device: "
                f"{spec.device}` cannot apply. Set `device: cpu` (or `auto`), or use backend hf "
                "or vllm for the GPU."
            )
        return problems
    if spec.backend != "vllm":
        return []
    problems = []
    if importlib.util.find_spec("vllm") is None:
        problems.append(
            f"{where} has backend vllm, but vLLM is not installed in this Python environment "
            f"({sys.executable}). On the GPU server, install the vLLM build that matches its "
            "CUDA into this environment (`pip install vllm`), or set `backend: hf` for this "
            "model."
        )
    if spec.nodes > 1 and importlib.util.find_spec("ray") is None:
        problems.append(
            f"{where} runs on {spec.nodes} nodes through a Ray cluster, but Ray is not "
            "installed in this Python environment: install it (`pip install ray`, the same "
            "version on every node)."
        )
    if source is not None and source.gguf_file:
        problems.append(
            f"{where}: {source.describe()} is a GGUF file, which lm-eval's vLLM model cannot "
            "read (it reads config.json with transformers' AutoConfig); use backend hf, or the "
            "safetensors checkpoint."
        )
    if source is not None and source.alias and not spec.trust_remote_code:
        problems.append(
            f"{where}: its model_type ({source.alias}) is an alias harness maps for "
            "transformers, but lm-eval's vLLM model reads config.json with transformers' "
            "AutoConfig, which knows this model_type only from the code shipped with the "
            "weights. Read that code and set `trust_remote_code: true`, or use backend hf."
        )
    return problems


LLAMACPP_BUILD = 'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"'
"""How llama-cpp-python is built for harness (its native build, tuned to the build machine's
CPU, crashes on others): docs/llamacpp.md."""


def llamacpp_missing(where: str) -> str:
    """The sentence for a model with backend llamacpp where llama-cpp-python is missing."""
    return (
        f"{where} has backend llamacpp, but llama-cpp-python is not installed in this Python "
        f"environment ({sys.executable}). Run `make llamacpp`, or build it yourself: "
        f"{LLAMACPP_BUILD} pip install llama-cpp-python==0.3.36 (docs/llamacpp.md); or set "
        "`backend: hf` for this model."
    )


def check_engines(specs, sources: dict, config_file: str | Path | None = None) -> None:
    """Raise `EngineUnavailableError` naming every model whose engine cannot run it here."""
    problems = [
        p for spec in specs for p in engine_problems(spec, sources.get(spec.id), config_file)
    ]
    if problems:
        raise EngineUnavailableError("\n".join([*problems, "Nothing was loaded."]))


def start_vllm(spec: ModelSpec, source, plan: dict | None = None):
    """Start vLLM on the model and return it as a `LoadedModel` whose `model` is lm-eval's
    `VLLM` with harness's think-aware generation (`harness.models.vllm_thinking`; the LM lm-eval
    scores), with `plan` (the preflight's `ModelPlan.to_dict()`)
    giving the parallel sizes the config left open."""
    from harness.models.load import LoadedModel, planned_placement
    from harness.models.vllm_thinking import thinking_vllm_class

    _, dtype = planned_placement(spec)
    layout = ParallelLayout.for_model(spec, plan)
    if layout.nodes == 1:
        # vLLM finds its own address by "connecting" a UDP socket to a public address (no
        # packet leaves, but the guard records the attempt); on one node loopback is enough.
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    try:
        vllm = thinking_vllm_class()
        lm = vllm(**vllm_model_args(spec, source, layout, dtype), **vllm_thinking_args(spec))
    except Exception as exc:  # vLLM, Ray, CUDA and NCCL raise many kinds
        log.warning("vLLM failed to start %s\n%s", spec.id, traceback.format_exc())
        lines = str(exc).strip().splitlines()
        raise ModelLoadError(
            f"model '{spec.id}': vLLM could not start {source.describe()} with "
            f"{layout.describe()}: {type(exc).__name__}: {lines[0] if lines else ''}. See "
            "run.log; docs/multi-gpu.md lists what vLLM needs."
        ) from None
    counted = (plan or {}).get("parameters") or {}
    return LoadedModel(
        model=lm,
        tokenizer=lm.tokenizer,
        device=f"cuda (vllm, {layout.describe()})",
        dtype=dtype,
        load_seconds=time.perf_counter() - started,
        parameters=counted.get("total") or 0,
    )

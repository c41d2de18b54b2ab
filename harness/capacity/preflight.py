"""Preflight: will each model of a run fit this machine, decided from its config before loading.

Needed memory = weights (parameters x bytes of the dtype it will be loaded in) + what scoring
holds at its peak for batch x context tokens, modelled on the code that will run
(`harness.capacity.memory.scoring_memory`: harness's own loglikelihood scorer keeps two KV
caches and logits only for continuation tokens; lm-eval's HFLM, used for caches harness cannot
reuse, full-vocabulary logits of every position) + one layer's activations + a runtime reserve
(Python, torch, lm-eval and the suites' data on a CPU; the CUDA context on a GPU). It is compared
with what the target device has free now: available RAM for `cpu`, free memory of the GPU for
`cuda`. bench/preflight.py measures the estimate against a real run's peak.

A model whose weights and reserve alone exceed that cannot load: it is refused. One whose
weights fit but whose full estimate does not is "tight": the KV cache and logits depend on the
batch and on how long the suite's inputs are, so the run goes on with a warning to lower
`batch_size` if it runs out. GGUF weights are dequantized by transformers on load, so they
count at the load dtype, not at their file size.

A model spread over several GPUs (`device_map: auto`, or `backend: vllm` with its tensor and
pipeline parallel sizes) is planned by `harness.capacity.parallel`: the same sums over the GPUs
it uses, with the layout vLLM would run.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from harness.capacity.hardware import GPU, Hardware, detect_hardware
from harness.capacity.memory import (
    DTYPES,
    GIB,
    QUANTIZATIONS,
    scoring_memory,
    weight_bytes,
)
from harness.capacity.params import ParameterCount, count_parameters
from harness.config import ModelSpec, RunConfig
from harness.errors import BadInputError, ModelNotFoundError

DEFAULT_CONTEXT = 2048
"""Tokens per sequence planned for when the config sets no `generation.max_length`."""
RESERVE_BYTES = 1 * GIB
"""Runtime overhead outside weights and caches, per GPU (CUDA context, allocator slack)."""
CPU_RESERVE_BYTES = 600 * 1024**2
"""On a CPU, the scoring process's own resident memory besides the model: the interpreter,
torch, transformers, lm-eval, the suites' data and samples (about 0.35 GiB after the imports,
0.57 GiB at the peak of a tiny model's run: bench/preflight.py)."""
REFERENCE_GPU_BYTES = 80 * GIB
"""GPU size used for "would need N GPUs" on a machine without one (an 80 GB H100 or A100)."""


class CapacityError(BadInputError):
    """A model does not fit the memory of the device it would load on; nothing was loaded."""


@dataclass(frozen=True)
class ModelPlan:
    """The preflight verdict for one model, with the numbers behind it."""

    model: str
    config_source: str
    """Where the architecture was read: the model's own files or a bundled reference config."""
    model_type: str | None
    parameters: ParameterCount | None
    dtype: str | None
    target: str
    batch: int
    context: int
    weights_bytes: int = 0
    kv_cache_bytes: int = 0
    logits_bytes: int = 0
    activations_bytes: int = 0
    """One decoder layer's working set over the batch (`memory.activation_bytes`)."""
    scorer: str = ""
    """Whose scoring code the plan models: `harness` (shared contexts, logits of continuation
    tokens only) or `lm-eval` (full-vocabulary logits); empty for vLLM."""
    reserve_bytes: int = RESERVE_BYTES
    available_bytes: int = 0
    gpus_needed: int | None = None
    """GPUs of the target's kind (or of 80 GiB without a GPU) that would hold the model."""
    note: str = ""
    backend: str = "hf"
    devices: int = 1
    """GPUs the model is spread over: 1, every GPU of the node (`device_map: auto`), or tensor x
    pipeline parallel size (vllm). The byte counts above are sums over them."""
    tensor_parallel_size: int | None = None
    """vLLM's: the config's, or the smallest that fits (a power of two dividing the heads)."""
    pipeline_parallel_size: int | None = None
    nodes: int = 1
    reference_hardware: bool = False
    """Planned for a reference node of GPUs, because this machine has none: what the model
    would need, not whether it runs here."""
    layout_error: str = ""
    """Why the parallel layout the config asks for cannot run, whatever the memory."""
    weights_format: str | None = None
    """The weights' format where it is not `dtype`: the fp8 a checkpoint ships, which vLLM
    runs as it is."""

    @property
    def need_bytes(self) -> int:
        return (
            self.weights_bytes
            + self.kv_cache_bytes
            + self.logits_bytes
            + self.activations_bytes
            + self.reserve_bytes
        )

    @property
    def fits(self) -> bool | None:
        """Whether the weights can load at all; None when the architecture could not be read."""
        if self.parameters is None:
            return None
        if self.layout_error:
            return False
        return self.weights_bytes + self.reserve_bytes <= self.available_bytes

    @property
    def verdict(self) -> str:
        if self.fits is None:
            return "unknown"
        if self.layout_error:
            return "cannot run"
        if self.fits:
            return "fits" if self.need_bytes <= self.available_bytes else "tight"
        if self.gpus_needed and self.devices == 1 and self.target.startswith("cuda"):
            return f"needs {self.gpus_needed} GPU{'s' if self.gpus_needed != 1 else ''}"
        return "does not fit"

    def explain(self) -> str:
        """One sentence with the numbers, for errors and the report."""
        if self.fits is None:
            return f"model '{self.model}': fit unknown: {self.note}"
        if self.layout_error:
            return f"model '{self.model}': {self.layout_error}"
        if self.backend == "vllm":
            cache = (
                f"KV cache {_gib(self.kv_cache_bytes)} for one sequence of {self.context} tokens"
            )
        else:
            cache = (
                f"KV cache {_gib(self.kv_cache_bytes)}, logits {_gib(self.logits_bytes)} and "
                f"activations {_gib(self.activations_bytes)} for batch {self.batch} x "
                f"{self.context} tokens ({self.scorer or 'lm-eval'}'s scoring)"
            )
        parts = (
            f"weights {_gib(self.weights_bytes)} at {self.weights_format or self.dtype}, "
            f"{cache}, reserve {_gib(self.reserve_bytes)}"
        )
        text = (
            f"model '{self.model}' needs {_gib(self.need_bytes)} on {self.target} ({parts}); "
            f"{_gib(self.available_bytes)} is available"
        )
        if self.verdict == "tight" and self.backend == "vllm":
            text += (
                "; the weights fit, but not the KV cache of one whole-context sequence: lower "
                "generation.max_length or raise gpu_memory_utilization"
            )
        elif self.verdict == "tight":
            text += "; the weights fit, lower batch_size if long inputs run out of memory"
        if not self.fits and self.gpus_needed and self.devices > 1:
            text += f"; it would need about {self.gpus_needed} GPUs like these" + (
                ": raise `nodes`"
                if self.backend == "vllm"
                else ", more than this node has: run it with `backend: vllm` over several nodes"
            )
        elif not self.fits and self.gpus_needed:
            kind = self.target.split(" ", 1)[-1] if self.target.startswith("cuda") else None
            plural = "s" if self.gpus_needed != 1 else ""
            text += f"; it would need {self.gpus_needed} GPU{plural} of " + (
                kind or f"{REFERENCE_GPU_BYTES // GIB} GiB"
            )
            if self.gpus_needed > 1:
                text += " (spread it with `device_map: auto` or `backend: vllm`)"
        return text

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(need_bytes=self.need_bytes, fits=self.fits, verdict=self.verdict)
        return data


def plan_models(
    config: RunConfig,
    hardware: Hardware | None = None,
    *,
    sources: dict | None = None,
    context: int | None = None,
    suites: list | None = None,
) -> list[ModelPlan]:
    """Decide, per model of `config`, whether it fits this machine (nothing is loaded).

    With the run's `suites` (`SuiteInfo`s of local JSONL data), each model is planned for the
    longest request they can make (`harness.capacity.inputs`) when that is shorter than its
    window; without them, or with hub data, for its whole window.

    `sources` maps model ids to already resolved `ModelSource`s; a model that is not on this
    machine is planned from harness's bundled reference config for its repo id when there is
    one, so a fit can be known before a download.
    """
    hardware = hardware or detect_hardware()
    sources = sources or {}
    plans = []
    for spec in config.models:
        longest = None
        if suites and context is None:
            from harness.capacity.inputs import request_tokens

            longest = request_tokens(suites, config.num_fewshot, spec.generation.max_new_tokens)
        plans.append(_plan_one(spec, hardware, sources.get(spec.id), context, longest))
    return plans


def check_fits(plans: list[ModelPlan]) -> None:
    """Raise `CapacityError` naming every model whose weights cannot load on their device, or
    that needs GPUs this machine does not have."""
    refused = [plan for plan in plans if plan.fits is False]
    reasons = [plan.explain() for plan in refused]
    for plan in plans:
        if plan.reference_hardware and plan.fits:
            refused.append(plan)
            reasons.append(
                f"model '{plan.model}' is planned for GPUs ({plan.target}), but torch sees no "
                "GPU on this machine"
            )
    if refused:
        raise CapacityError(
            f"preflight: {len(refused)} model(s) do not fit this machine; nothing was loaded.\n  "
            + "\n  ".join(reasons)
            + "\nUse a smaller dtype, another device or machine, or pass --no-preflight "
            "to try anyway."
        )


def weights_by_format(parameters: int) -> dict[str, int]:
    """Bytes of the weights in every dtype and common quantization."""
    formats = {**DTYPES, **QUANTIZATIONS}
    return {name: weight_bytes(parameters, fmt) for name, fmt in formats.items()}


def architecture_config(spec: ModelSpec, source) -> dict:
    """The model's config as a dict: its config.json, or the header of its GGUF file (read by
    `gguf_header`; transformers' reader, which parses the whole vocabulary, only for the
    architectures it special-cases)."""
    if source.gguf_file:
        from harness.capacity.gguf_header import gguf_config

        return gguf_config(source.directory, source.gguf_file)
    return json.loads((source.directory / "config.json").read_text(encoding="utf-8"))


def _plan_one(
    spec: ModelSpec, hardware: Hardware, source, context: int | None, longest: int | None = None
) -> ModelPlan:
    from harness.families.aliases import is_known, unknown_architecture
    from harness.models.load import auto_dtype

    gpu = _target_gpu(spec, hardware)
    target = "cpu" if gpu is None else f"cuda:{gpu.index} {gpu.name}"
    base = {"model": spec.id, "target": target, "batch": spec.batch_size}
    unknown = {**base, "parameters": None, "dtype": None, "context": context or DEFAULT_CONTEXT}
    try:
        config, origin = _read_architecture(spec, source)
    except Exception as exc:  # unreadable config or GGUF header: the plan says why, run will too
        return ModelPlan(**unknown, config_source="none", model_type=None, note=str(exc))
    model_type = config.get("model_type")
    # A GGUF file's model_type comes from transformers' own GGUF table: known by construction
    # (and asking transformers would import torch, a second of start-up).
    if not spec.gguf_file and not is_known(model_type):
        error = unknown_architecture(model_type, f"model '{spec.id}'")
        return ModelPlan(**unknown, config_source=origin, model_type=model_type, note=str(error))
    try:
        parameters = count_parameters(config)
    except (KeyError, TypeError, ValueError) as exc:
        note = f"its config cannot be counted ({type(exc).__name__}: {exc})"
        return ModelPlan(**unknown, config_source=origin, model_type=model_type, note=note)
    if spec.backend == "server" and spec.endpoint:
        note = "served from an endpoint outside the sandbox: its memory is not planned here"
        return ModelPlan(**unknown, config_source=origin, model_type=model_type, note=note)
    if spec.backend == "llamacpp" or (spec.backend == "server" and spec.gguf_file):
        known = {"config_source": origin, "model_type": model_type, "parameters": parameters}
        return _plan_llamacpp(spec, hardware, source, config, known)
    if spec.backend == "vllm" or spec.device_map == "auto":
        from harness.capacity.parallel import plan_spread

        known = {"config_source": origin, "model_type": model_type, "parameters": parameters}
        return plan_spread(spec, hardware, config, known, context)
    dtype = spec.dtype if spec.dtype != "auto" else auto_dtype(target, gpu.bf16 if gpu else False)
    note = _notes(spec, gpu, config)
    if spec.backend == "server":
        note = "; ".join(filter(None, [note, SERVER_NOTE]))
    context = context or spec.generation.max_length or DEFAULT_CONTEXT
    context = min(context, config.get("max_position_embeddings") or context, longest or context)
    weights = weight_bytes(parameters.total, DTYPES[dtype])
    scoring = scoring_memory(config, spec.batch_size, context, dtype)
    working = scoring.kv_cache + scoring.logits + scoring.activations
    available = hardware.cpu_available_bytes if gpu is None else gpu.free_bytes
    per_gpu = (gpu.total_bytes if gpu else REFERENCE_GPU_BYTES) - RESERVE_BYTES
    return ModelPlan(
        **base,
        config_source=origin,
        model_type=model_type,
        parameters=parameters,
        dtype=dtype,
        context=context,
        weights_bytes=weights,
        kv_cache_bytes=scoring.kv_cache,
        logits_bytes=scoring.logits,
        activations_bytes=scoring.activations,
        scorer=scoring.scorer,
        reserve_bytes=CPU_RESERVE_BYTES if gpu is None else RESERVE_BYTES,
        available_bytes=available,
        gpus_needed=math.ceil((weights + working) / per_gpu),
        note=note,
    )


SERVER_NOTE = (
    "a started engine: planned as the model's weights and cache; the engine's own allocation "
    "(vLLM reserves gpu_memory_utilization of the GPU) is not counted"
)


def _plan_llamacpp(spec: ModelSpec, hardware: Hardware, source, config: dict, known: dict):
    """llama.cpp's memory, from the GGUF file as it is: the tensor data it maps (quantized,
    not dequantized), its key/value cache in float16 for the whole window it allocates up
    front (n_ctx), and its compute buffer for a batch of `BATCH_TOKENS` tokens (the logits of
    the batch over the vocabulary and one layer's working set)."""
    from harness.capacity.gguf_header import gguf_layout
    from harness.capacity.memory import activation_bytes, kv_cache
    from harness.models.llamacpp import BATCH_TOKENS, context_length

    if source is None:
        from harness.models import resolve_model_source

        source = resolve_model_source(spec)
    quantization, tensor_bytes = gguf_layout(source.directory / source.gguf_file)
    context = context_length(spec, config.get("max_position_embeddings"))
    if spec.backend == "server":
        from harness.models.server import DEFAULT_CONTEXT as SERVED_CONTEXT

        context = spec.generation.max_length or SERVED_CONTEXT
    batch = min(BATCH_TOKENS, context)
    return ModelPlan(
        model=spec.id,
        target="cpu",
        batch=1,
        **known,
        dtype=quantization,
        weights_format=f"GGUF {quantization}",
        context=context,
        weights_bytes=tensor_bytes,
        kv_cache_bytes=kv_cache(config).per_token * context * 2,
        logits_bytes=batch * config["vocab_size"] * 4,
        activations_bytes=activation_bytes(config, batch, "float32"),
        scorer="llama.cpp",
        reserve_bytes=CPU_RESERVE_BYTES,
        available_bytes=hardware.cpu_available_bytes,
        backend=spec.backend,
        note=SERVER_NOTE if spec.backend == "server" else "",
    )


def _read_architecture(spec: ModelSpec, source) -> tuple[dict, str]:
    if source is None:
        from harness.models import resolve_model_source

        try:
            source = resolve_model_source(spec)
        except ModelNotFoundError as missing:
            return _reference_architecture(spec, missing)
    return architecture_config(spec, source), f"model files ({source.describe()})"


def _reference_architecture(spec: ModelSpec, missing: ModelNotFoundError) -> tuple[dict, str]:
    from harness.families import find_reference

    reference = find_reference(spec.repo) if spec.repo else None
    if reference is None:
        raise missing
    config = reference.config()  # LookupError when no config was ever found for it
    return dict(config), f"bundled reference config ({reference.config_file}; weights not here)"


def _target_gpu(spec: ModelSpec, hardware: Hardware) -> GPU | None:
    if spec.device == "cpu" or not hardware.gpus:
        return None
    index = int(spec.device.split(":", 1)[1]) if ":" in spec.device else 0
    return next((g for g in hardware.gpus if g.index == index), hardware.gpus[0])


def _notes(spec: ModelSpec, gpu: GPU | None, config: dict) -> str:
    notes = []
    if gpu is not None and spec.dtype == "bfloat16" and not gpu.bf16:
        notes.append(
            f"{gpu.name} (compute capability {gpu.compute_capability}) has no native bfloat16: "
            "use float16"
        )
    shipped = (config.get("quantization_config") or {}).get("quant_method")
    if shipped:
        notes.append(
            f"the checkpoint ships quantized ({shipped}); the table counts it at the load dtype"
        )
    return "; ".join(notes)


def _gib(size: int) -> str:
    return f"{size / GIB:.1f} GiB"

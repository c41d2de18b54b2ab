"""Models spread over several GPUs: the layout vLLM would run, or accelerate's `device_map:
auto` over one node, and whether the model fits that way.

vLLM splits each layer's attention heads over `tensor_parallel_size` GPUs of a node (so that
size must divide the attention heads, and divide or be a multiple of the key/value heads) and
cuts the layers into `pipeline_parallel_size` stages, one per node by default. Each GPU holds its
share of the weights, the KV cache of at least one sequence of the whole context (vLLM refuses
to start otherwise; a latent MLA cache is held whole by every GPU of a stage, grouped-query
heads are split), and a runtime reserve, all within `gpu_memory_utilization` of its memory (and
of what is free now). Weights count at the checkpoint's own fp8 when it ships fp8 (vLLM runs it
so), else at the load dtype. Left to choose, the planner takes the smallest power-of-two tensor
parallel size that fits: fewer GPUs talking to each other on every layer.

`device_map: auto` needs the node's GPUs together (the least free one's free memory, times
their number: accelerate balances the layers over them) to hold the weights, the KV cache and
logits of a batch, and a reserve per GPU.

Without a GPU on this machine, both are planned for a reference node of 8 GPUs of 80 GiB, so
`harness plan` says what to ask for before the hardware is there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.capacity.hardware import Hardware
from harness.capacity.memory import DTYPES, GIB, QUANTIZATIONS, kv_cache, logits_bytes, weight_bytes
from harness.capacity.preflight import (
    DEFAULT_CONTEXT,
    REFERENCE_GPU_BYTES,
    RESERVE_BYTES,
    ModelPlan,
)
from harness.config import ModelSpec

REFERENCE_GPUS_PER_NODE = 8
"""GPUs per node planned for on a machine without one (an 8-GPU H100 or A100 server)."""
VLLM_DEFAULT_UTILIZATION = 0.9
"""vLLM's own `gpu_memory_utilization` when the config sets none."""


@dataclass(frozen=True)
class NodeGPUs:
    """The GPUs of one node as planned for: this machine's, or the reference node's."""

    count: int
    name: str
    total_bytes: int
    """Memory of the smallest GPU."""
    free_bytes: int
    """Free memory of the GPU with the least free now."""
    bf16: bool
    reference: bool

    @classmethod
    def of(cls, hardware: Hardware) -> NodeGPUs:
        if not hardware.gpus:
            size = REFERENCE_GPU_BYTES
            name = f"{size // GIB} GiB GPU (reference; no GPU here)"
            return cls(REFERENCE_GPUS_PER_NODE, name, size, size, True, True)
        gpus = hardware.gpus
        names = sorted({g.name for g in gpus})
        return cls(
            count=len(gpus),
            name=" / ".join(names),
            total_bytes=min(g.total_bytes for g in gpus),
            free_bytes=min(g.free_bytes for g in gpus),
            bf16=all(g.bf16 for g in gpus),
            reference=False,
        )


def plan_spread(
    spec: ModelSpec, hardware: Hardware, config: dict, known: dict, context: int | None
) -> ModelPlan:
    """The plan of a model that runs over several GPUs (`backend: vllm`, or `device_map:
    auto`). `known` holds the ModelPlan fields already read: config_source, model_type,
    parameters."""
    from harness.models.load import auto_dtype

    node = NodeGPUs.of(hardware)
    dtype = spec.dtype if spec.dtype != "auto" else auto_dtype("cuda", node.bf16)
    limit = config.get("max_position_embeddings")
    if spec.backend == "vllm":
        # vLLM's max_model_len defaults to the model's whole context, not to 2048.
        context = context or spec.generation.max_length or limit or DEFAULT_CONTEXT
        return _plan_vllm(spec, node, config, known, dtype, min(context, limit or context))
    context = context or spec.generation.max_length or DEFAULT_CONTEXT
    return _plan_device_map(spec, node, config, known, dtype, min(context, limit or context))


def _plan_device_map(spec, node: NodeGPUs, config, known, dtype, context) -> ModelPlan:
    weights = weight_bytes(known["parameters"].total, DTYPES[dtype])
    kv = kv_cache(config).bytes(spec.batch_size, context, dtype)
    logits = logits_bytes(config, spec.batch_size, context, dtype)
    free = node.total_bytes if node.reference else node.free_bytes
    return ModelPlan(
        **known,
        model=spec.id,
        target=f"device_map auto: {node.count} x {node.name}",
        batch=spec.batch_size,
        dtype=dtype,
        context=context,
        weights_bytes=weights,
        kv_cache_bytes=kv,
        logits_bytes=logits,
        reserve_bytes=RESERVE_BYTES * node.count,
        available_bytes=free * node.count,
        gpus_needed=math.ceil((weights + kv + logits) / (node.total_bytes - RESERVE_BYTES)),
        note=_shipped_quantization(config, dtype, runs_it=False),
        backend="hf",
        devices=node.count,
        reference_hardware=node.reference,
    )


def _plan_vllm(spec, node: NodeGPUs, config, known, dtype, context) -> ModelPlan:
    utilization = spec.gpu_memory_utilization or VLLM_DEFAULT_UTILIZATION
    budget = int(node.total_bytes * utilization)
    if not node.reference:
        budget = min(budget, node.free_bytes)
    shipped = (config.get("quantization_config") or {}).get("quant_method")
    fp8 = shipped == "fp8"
    weights = weight_bytes(
        known["parameters"].total, QUANTIZATIONS["fp8"] if fp8 else DTYPES[dtype]
    )
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    whole_cache = kv_cache(config).bytes(1, context, dtype)
    latent = "kv_lora_rank" in config
    pipeline = spec.pipeline_parallel_size or spec.nodes
    gpus = node.count * spec.nodes

    def per_gpu(tensor: int) -> tuple[int, int]:
        """(weights, KV cache) on each GPU."""
        split = 1 if latent else min(tensor, kv_heads)
        return weights // (tensor * pipeline), whole_cache // (pipeline * split)

    def fits(tensor: int, with_cache: bool) -> bool:
        share, cache = per_gpu(tensor)
        return share + RESERVE_BYTES + (cache if with_cache else 0) <= budget

    error = ""
    if spec.tensor_parallel_size is not None:
        tensor = spec.tensor_parallel_size
        error = _layout_error(tensor, pipeline, heads, kv_heads, config, gpus, spec.nodes, node)
    else:
        sizes = [t for t in _powers_of_two(gpus // pipeline) if _splits(t, heads, kv_heads)]
        if not sizes:  # only when the pipeline alone needs more GPUs than there are
            tensor = 1
            error = _layout_error(1, pipeline, heads, kv_heads, config, gpus, spec.nodes, node)
        else:
            tensor = next(
                (t for t in sizes if fits(t, with_cache=True)),
                next((t for t in sizes if fits(t, with_cache=False)), sizes[-1]),
            )
    devices = tensor * pipeline
    share, cache = per_gpu(tensor)
    nodes = f" on {spec.nodes} nodes" if spec.nodes > 1 else ""
    return ModelPlan(
        **known,
        model=spec.id,
        target=f"vllm tp {tensor} x pp {pipeline}: {devices} x {node.name}{nodes}",
        batch=1,
        dtype=dtype,
        context=context,
        weights_bytes=weights,
        kv_cache_bytes=cache * devices,
        logits_bytes=0,
        reserve_bytes=RESERVE_BYTES * devices,
        available_bytes=budget * devices,
        gpus_needed=math.ceil((weights + whole_cache) / max(budget - RESERVE_BYTES, 1)),
        note=_vllm_notes(spec, node, config, dtype, tensor, pipeline, heads, utilization),
        backend="vllm",
        devices=devices,
        tensor_parallel_size=tensor,
        pipeline_parallel_size=pipeline,
        nodes=spec.nodes,
        reference_hardware=node.reference,
        layout_error=error,
        weights_format="fp8" if fp8 else None,
    )


def _powers_of_two(limit: int) -> list[int]:
    sizes, size = [], 1
    while size <= limit:
        sizes.append(size)
        size *= 2
    return sizes


def _splits(tensor: int, heads: int, kv_heads: int) -> bool:
    """Whether vLLM can split the attention over `tensor` GPUs: the query heads evenly, the
    key/value heads evenly or by replication."""
    return heads % tensor == 0 and (kv_heads % tensor == 0 or tensor % kv_heads == 0)


def _layout_error(tensor, pipeline, heads, kv_heads, config, gpus, nodes, node) -> str:
    """Why tensor x pipeline parallel cannot run this model on these nodes ("" when it can)."""
    have = f"{nodes} node(s) of {node.count} x {node.name} have {gpus}"
    if tensor * pipeline > gpus:
        return (
            f"tensor_parallel_size {tensor} x pipeline_parallel_size {pipeline} = "
            f"{tensor * pipeline} GPUs, but {have}"
        )
    if heads % tensor:
        valid = [t for t in _powers_of_two(heads) if _splits(t, heads, kv_heads)]
        return (
            f"tensor_parallel_size {tensor} does not divide the model's {heads} attention heads, "
            f"as vLLM needs; sizes that do: {', '.join(map(str, valid))}"
        )
    if kv_heads % tensor and tensor % kv_heads:
        return (
            f"tensor_parallel_size {tensor} and the model's {kv_heads} key/value heads: vLLM "
            "needs one to divide the other"
        )
    layers = config.get("num_hidden_layers") or pipeline
    if pipeline > layers:
        return f"pipeline_parallel_size {pipeline} is more than the model's {layers} layers"
    return ""


def _vllm_notes(spec, node, config, dtype, tensor, pipeline, heads, utilization) -> str:
    notes = []
    if spec.tensor_parallel_size is None:
        notes.append(
            f"tensor_parallel_size {tensor} chosen: the smallest power of two that divides the "
            f"{heads} attention heads and fits"
        )
    if spec.pipeline_parallel_size is None and spec.nodes > 1:
        notes.append(f"pipeline_parallel_size {pipeline}: one stage per node")
    if spec.nodes > 1 and tensor * pipeline <= node.count * (spec.nodes - 1):
        notes.append(
            f"{tensor * pipeline} GPUs fill fewer than the {spec.nodes} nodes: lower nodes"
        )
    if not node.reference and node.free_bytes < node.total_bytes * utilization:
        notes.append(
            f"a GPU has {node.free_bytes / GIB:.1f} GiB free, less than the "
            f"{node.total_bytes * utilization / GIB:.1f} GiB vLLM asks for at "
            f"gpu_memory_utilization {utilization:g}: another process holds GPU memory"
        )
    quantized = _shipped_quantization(config, dtype, runs_it=True)
    return "; ".join(notes + ([quantized] if quantized else []))


def _shipped_quantization(config: dict, dtype: str, *, runs_it: bool) -> str:
    shipped = (config.get("quantization_config") or {}).get("quant_method")
    if not shipped:
        return ""
    if runs_it and shipped == "fp8":
        return "the checkpoint ships fp8 weights; vLLM runs them so, and they count at fp8"
    return f"the checkpoint ships quantized ({shipped}); the table counts it at {dtype}"

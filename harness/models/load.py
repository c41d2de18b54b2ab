"""Load a resolved model with transformers, once, for lm-eval to score."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from harness.config import ModelSpec
from harness.errors import BadInputError, ModelLoadError
from harness.models.engines import hf_placement, placed_on
from harness.models.resolve import ModelSource


@dataclass
class LoadedModel:
    """A model and its tokenizer in memory, with where and how they were loaded."""

    model: Any
    tokenizer: Any
    device: str
    dtype: str
    load_seconds: float
    parameters: int
    converted_from: dict | None = None
    """For a GGUF model loaded from its converted copy (`gguf_cache`): the copy's weights file
    (path, size, sha256) and the GGUF file's sha256."""


def load_model(spec: ModelSpec, source: ModelSource, converted=None) -> LoadedModel:
    """Load weights and tokenizer from `source` on the device and dtype `spec` asks for.

    Code shipped with the weights runs only for a model whose config opted in
    (`trust_remote_code`); `resolve_model_source` refuses the others. For a GGUF file,
    `converted` (a `gguf_cache.ConvertedGGUF`) is its dequantized copy in the machine-wide
    cache, read instead of the GGUF file when it is complete. The copy is made and verified
    before (`ModelScoring.prepare_gguf`), by a process that runs no evaluated code.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = _pick_device(spec, torch)
    placement = hf_placement(spec, device)
    started = time.perf_counter()
    remote = source.remote_code is not None and spec.trust_remote_code
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": remote}
    directory = source.directory
    kept = converted.usable() if converted is not None and source.gguf_file else None
    reuse = kept is not None
    if reuse:
        directory = converted.directory
    elif source.gguf_file:
        common["gguf_file"] = source.gguf_file
    if source.alias:
        # An alias (kimi_k2) is built by the architecture it reuses; AutoConfig would not know it.
        from harness.families.aliases import alias_config

        common["config"] = alias_config(source.directory)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, **common)
        dtype = _pick_dtype(spec, device, source, torch)
        model, info = AutoModelForCausalLM.from_pretrained(
            directory, dtype=dtype, output_loading_info=True, **placement, **common
        )
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise ModelLoadError(
            f"model '{spec.id}': out of memory loading {source.describe()} on {device} "
            f"({exc}). Use a smaller dtype, another device, or a machine with more memory."
        ) from None
    except Exception as exc:  # transformers, safetensors and gguf raise many kinds
        raise ModelLoadError(
            f"model '{spec.id}': could not load {source.describe()}: "
            f"{type(exc).__name__}: {_first_line(exc)}. A weight or tokenizer file may be "
            "corrupt, truncated or for another architecture: compare its sha256 with the "
            "source and copy it again."
        ) from None
    if info.get("missing_keys"):
        # transformers fills missing tensors with random values and goes on: scores from such a
        # model would be noise with a real model's name on them.
        missing = sorted(info["missing_keys"])
        raise ModelLoadError(
            f"model '{spec.id}': {len(missing)} tensor(s) the architecture needs are not in "
            f"{source.describe()} ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); "
            "transformers would fill them with random values. The checkpoint is incomplete or "
            "for another architecture or transformers version."
        )
    if spec.chat_template and not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(
            f"model '{spec.id}': `chat_template: true`, but the tokenizer in "
            f"{source.describe()} has no chat template. Set `chat_template: false` for a base "
            "model, or add the template (tokenizer_config.json or chat_template.jinja)."
        )
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=placed_on(model, device),
        dtype=str(model.dtype).removeprefix("torch."),
        load_seconds=time.perf_counter() - started,
        parameters=sum(p.numel() for p in model.parameters()),
        converted_from={**kept.to_dict(), "gguf_sha256": converted.gguf_sha256} if reuse else None,
    )


def planned_placement(spec: ModelSpec, source: ModelSource | None = None) -> tuple[str, str]:
    """(device, dtype name) `load_model` will use for `spec` on this machine, without loading:
    part of a model's identity for the resume cache. `backend: llamacpp` runs on the CPU in
    the GGUF file's own quantization (`Q4_1`), read from its header (`source`, else resolved)."""
    if spec.backend == "llamacpp":
        from harness.capacity.gguf_header import gguf_layout
        from harness.models.resolve import resolve_model_source

        source = source or resolve_model_source(spec)
        try:
            quantization, _ = gguf_layout(source.directory / source.gguf_file)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"model '{spec.id}': cannot read the GGUF header of {source.describe()}: {exc}"
            ) from None
        return "cpu", quantization
    import torch

    # vLLM places the model on its GPUs itself.
    device = "cuda" if spec.backend == "vllm" else _pick_device(spec, torch)
    if spec.dtype != "auto":
        return device, spec.dtype
    bf16 = device != "cpu" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device, auto_dtype(device, bf16)


def load_tokenizer(spec: ModelSpec, source: ModelSource):
    """The tokenizer alone (for tokenizer fitness when every suite came from the cache)."""
    from transformers import AutoTokenizer

    common: dict[str, Any] = {"local_files_only": True}
    if source.gguf_file:
        common["gguf_file"] = source.gguf_file
    if source.alias:
        from harness.families.aliases import alias_config

        common["config"] = alias_config(source.directory)
    remote = source.remote_code is not None and spec.trust_remote_code
    try:
        return AutoTokenizer.from_pretrained(source.directory, trust_remote_code=remote, **common)
    except Exception as exc:
        raise ModelLoadError(
            f"model '{spec.id}': could not load the tokenizer of {source.describe()}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from None


def _pick_device(spec: ModelSpec, torch) -> str:
    if spec.device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if spec.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BadInputError(
                f"model '{spec.id}': device {spec.device} asked for, but torch sees no GPU "
                f"(torch {torch.__version__}). Set `device: cpu` or `device: auto`."
            )
        return spec.device if ":" in spec.device else "cuda:0"
    return "cpu"


def _pick_dtype(spec: ModelSpec, device: str, source: ModelSource, torch):
    if spec.dtype != "auto":
        return getattr(torch, spec.dtype)
    bf16 = device != "cpu" and torch.cuda.is_bf16_supported()
    return getattr(torch, auto_dtype(device, bf16))


def auto_dtype(device: str, bf16_supported: bool) -> str:
    """The dtype `dtype: auto` loads in on `device`."""
    if device == "cpu":
        # Half types are slow on most CPUs and GGUF dequantizes to float32 anyway.
        return "float32"
    return "bfloat16" if bf16_supported else "float16"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "(no message)"

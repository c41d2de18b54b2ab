"""Bytes a model needs: weights at each dtype or quantization, KV cache, the scoring logits.

Weights: parameters x bits per weight. Block-quantized formats carry their scales in the bits
per weight (GGUF Q4_1: 32 weights in 20 bytes = 5.0 bits); mixed formats (GGUF K-quants, which
keep some tensors at higher precision) are averages and marked so.

KV cache, as transformers' cache stores it (checked against the cache it fills, per family, in
tests/capacity/test_memory.py): per layer and token, keys and values of every KV head; for
multi-head latent attention (DeepSeek, Kimi) the compressed latent, kv_lora_rank + qk_rope_head_dim,
plus DeepSeek-V3.2's indexer key.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.families.aliases import native_model_type

GIB = 1024**3


@dataclass(frozen=True)
class WeightFormat:
    """A way weights can be held in memory."""

    name: str
    bits: float
    """Bits per weight, scales included."""
    exact: bool = True
    """False for mixed formats whose bits per weight is an average."""


DTYPES: dict[str, WeightFormat] = {
    "float32": WeightFormat("float32", 32),
    "bfloat16": WeightFormat("bfloat16", 16),
    "float16": WeightFormat("float16", 16),
}

QUANTIZATIONS: dict[str, WeightFormat] = {
    # fp8 e4m3 with one float32 scale per 128x128 block (DeepSeek-V3, Kimi-K2 releases).
    "fp8": WeightFormat("fp8", 8 + 32 / (128 * 128)),
    # int8 with one float16 scale per output row of a 4096-wide layer (bitsandbytes LLM.int8).
    "int8": WeightFormat("int8", 8 + 16 / 4096, exact=False),
    # 4-bit groups of 128 with a float16 scale and a 4-bit zero point (GPTQ / AWQ).
    "int4-g128": WeightFormat("int4-g128", 4 + (16 + 4) / 128),
    # bitsandbytes NF4: blocks of 64 with an 8-bit scale, doubly quantized in blocks of 256.
    "nf4": WeightFormat("nf4", 4 + 8 / 64 + 32 / (64 * 256)),
    # GGUF block formats: bytes per 32-weight block (or per 256-weight super-block).
    "gguf-q8_0": WeightFormat("gguf-q8_0", 34 * 8 / 32),
    "gguf-q4_1": WeightFormat("gguf-q4_1", 20 * 8 / 32),
    "gguf-q4_0": WeightFormat("gguf-q4_0", 18 * 8 / 32),
    "gguf-q6_k": WeightFormat("gguf-q6_k", 210 * 8 / 256),
    "gguf-q4_k_m": WeightFormat("gguf-q4_k_m", 4.85, exact=False),
}

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def weight_bytes(parameters: int, fmt: WeightFormat) -> int:
    """Bytes to hold `parameters` weights in `fmt`."""
    return int(parameters * fmt.bits / 8)


@dataclass(frozen=True)
class KVCache:
    """Per-token cache sizes of one architecture, in elements (multiply by dtype bytes)."""

    per_token: int
    """Elements per token over all layers, as transformers caches them."""

    def bytes(self, batch: int, context: int, dtype: str) -> int:
        return self.per_token * batch * context * BYTES[dtype]


def kv_cache(config: dict) -> KVCache:
    """KV-cache elements per token for the architecture in `config`."""
    model_type = native_model_type(config.get("model_type", ""))
    layers = config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    if "kv_lora_rank" in config:
        indexer = config.get("index_head_dim", 0) if model_type == "deepseek_v32" else 0
        return KVCache((config["kv_lora_rank"] + config["qk_rope_head_dim"] + indexer) * layers)
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return KVCache(2 * kv_heads * head_dim * layers)


def logits_bytes(config: dict, batch: int, context: int, dtype: str) -> int:
    """Scoring holds the logits of a whole batch and their log-softmax at once (lm-eval's HFLM
    scores continuations from full-vocabulary log-probabilities)."""
    return 2 * batch * context * config["vocab_size"] * BYTES[dtype]

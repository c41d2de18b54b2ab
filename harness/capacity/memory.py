"""Bytes a model needs: weights at each dtype or quantization, KV cache, the scoring logits.

Weights: parameters x bits per weight. Block-quantized formats carry their scales in the bits
per weight (GGUF Q4_1: 32 weights in 20 bytes = 5.0 bits); mixed formats (GGUF K-quants, which
keep some tensors at higher precision) are averages and marked so.

KV cache, as transformers' cache stores it (checked against the cache it fills, per family, in
tests/capacity/test_memory.py): per layer and token, keys and values of every KV head; for
multi-head latent attention (DeepSeek, Kimi) the compressed latent, kv_lora_rank + qk_rope_head_dim,
plus DeepSeek-V3.2's indexer key.

Scoring, as the code that runs holds it at its peak (`scoring_memory`), for a token budget of
batch x context tokens:

- harness's own loglikelihood scorer (`harness.shared_prefix`) keeps the KV cache of a batch of
  contexts and, while continuations run on top of it, a copy of the rows they use (at most the
  same budget): twice the KV cache. It computes logits only where a continuation token is
  predicted: one row per context and `CONTINUATION_TOKENS` per continuation row, each held as
  logits, their concatenation and their log-softmax;
- lm-eval's `HFLM` (models whose cache harness cannot reuse, sliding windows) computes the
  logits of every position of the batch and their log-softmax: full-vocabulary logits, with one
  KV cache;
- generation keeps one KV cache of the batch and the logits of the last position only.

The largest transient of a forward pass is one layer's working set over the budget (hidden
states, q/k/v, the MLP's gate and up projections); attention scores are not materialised by the
SDPA kernels transformers uses.
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
    """lm-eval's HFLM holds the logits of a whole batch and their log-softmax at once (it scores
    continuations from full-vocabulary log-probabilities of every position)."""
    return 2 * batch * context * config["vocab_size"] * BYTES[dtype]


CONTINUATION_TOKENS = 16
"""Tokens per continuation planned for harness's scorer: answer choices and short targets
(a multiple-choice option, a word, a number) are a few tokens; longer ones only widen a small
term (logits of continuation rows)."""


@dataclass(frozen=True)
class ScoringMemory:
    """What scoring holds on top of the weights at its peak."""

    kv_cache: int
    logits: int
    activations: int
    scorer: str
    """`harness` (the shared-context scorer) or `lm-eval` (HFLM's full-vocabulary logits)."""


def reuses_cache(config: dict) -> bool:
    """Whether harness's scorer can reuse this architecture's cache: plain full attention in
    every layer (`SharedPrefixScorer` checks the same on the cache it gets, and hands others to
    lm-eval). Sliding-window and linear-attention layers cannot."""
    layer_types = config.get("layer_types") or []
    if any(kind != "full_attention" for kind in layer_types):
        return False
    sliding = config.get("sliding_window")
    return not sliding or config.get("use_sliding_window") is False


def activation_bytes(config: dict, tokens: int, dtype: str) -> int:
    """One decoder layer's working set over `tokens`: the residual stream and its norm, q, k,
    v and the attention output, the MLP's gate, up and their product."""
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    kv_heads = config.get("num_key_value_heads") or heads
    inner = config.get("intermediate_size") or 4 * hidden
    width = 3 * hidden + 2 * heads * head_dim + 2 * kv_heads * head_dim + 3 * inner
    return tokens * width * BYTES[dtype]


def scoring_memory(
    config: dict, batch: int, context: int, dtype: str, *, shared_prefix: bool = True
) -> ScoringMemory:
    """Peak scoring memory for `batch` sequences of `context` tokens, by the code that will run:
    harness's scorer when `shared_prefix` and the cache can be reused, else lm-eval's HFLM; the
    larger of loglikelihood and generation (a suite may hold both)."""
    tokens = batch * context
    cache = kv_cache(config).bytes(batch, context, dtype)
    vocab = config["vocab_size"] * BYTES[dtype]
    activations = activation_bytes(config, tokens, dtype)
    generation_logits = 2 * batch * vocab  # the last position, and the processors' copy
    if shared_prefix and reuses_cache(config):
        continuation = 3 * batch * CONTINUATION_TOKENS * vocab  # logits, cat, log-softmax
        logits = max(batch * vocab + continuation, generation_logits)
        return ScoringMemory(2 * cache, logits, activations, "harness")
    logits = max(logits_bytes(config, batch, context, dtype), generation_logits)
    return ScoringMemory(cache, logits, activations, "lm-eval")

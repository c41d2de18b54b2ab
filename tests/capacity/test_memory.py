"""The KV-cache model against the cache transformers really fills, for every seed family."""

from __future__ import annotations

import pytest
import torch

from harness.capacity.memory import DTYPES, QUANTIZATIONS, kv_cache, weight_bytes
from harness.families import FAMILIES
from harness.families.selftest import reference_config_for
from harness.families.tiny import shrink


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_kv_cache_matches_what_transformers_stores(family):
    from transformers import AutoModelForCausalLM

    from harness.families.aliases import config_class

    tiny = shrink(reference_config_for(family), vocab_size=300, eos_token_id=0)
    config = config_class(family.model_type)(**{k: v for k, v in tiny.items() if k != "model_type"})
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    tokens = 7
    with torch.no_grad():
        cache = model(torch.arange(1, tokens + 1)[None], use_cache=True).past_key_values
    stored = sum(
        value.numel() * value.element_size()
        for layer in cache.layers
        for value in vars(layer).values()
        if isinstance(value, torch.Tensor) and value.dim() >= 3
    )
    assert stored == kv_cache(tiny).bytes(batch=1, context=tokens, dtype="float32")


def test_real_configs():
    from harness.families import find_reference

    # DeepSeek-V3: 61 layers x (512 latent + 64 rope); Qwen3-8B: 36 layers x 2 x 8 KV heads x 128.
    assert kv_cache(find_reference("deepseek-ai/DeepSeek-V3").config()).per_token == 61 * 576
    assert kv_cache(find_reference("Qwen/Qwen3-8B").config()).per_token == 36 * 2 * 8 * 128


def test_weight_formats():
    params = 7_000_000_000
    assert weight_bytes(params, DTYPES["bfloat16"]) == 14_000_000_000
    assert weight_bytes(params, DTYPES["float32"]) == 28_000_000_000
    # GGUF Q4_1: 32 weights in 20 bytes; Q8_0: 32 weights in 34 bytes.
    assert weight_bytes(32_000, QUANTIZATIONS["gguf-q4_1"]) == 20_000
    assert weight_bytes(32_000, QUANTIZATIONS["gguf-q8_0"]) == 34_000
    assert not QUANTIZATIONS["gguf-q4_k_m"].exact

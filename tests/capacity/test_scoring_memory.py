"""What the preflight counts for scoring follows the code that will run, and how long the
suites' requests can be bounds what it counts."""

from __future__ import annotations

import json

from harness.capacity.inputs import TEMPLATE_TOKENS, request_tokens
from harness.capacity.memory import (
    CONTINUATION_TOKENS,
    kv_cache,
    logits_bytes,
    reuses_cache,
    scoring_memory,
)
from harness.suites import SuiteCatalog

from ..conftest import REPO

# SmolLM2-135M's shape (the demo model), as its GGUF header gives it.
SMOLLM2 = {
    "model_type": "llama", "num_hidden_layers": 30, "hidden_size": 576,
    "intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3,
    "head_dim": 64, "vocab_size": 49152, "tie_word_embeddings": True,
}  # fmt: skip


def test_own_scorer_holds_no_full_vocabulary_logits():
    ours = scoring_memory(SMOLLM2, batch=16, context=2048, dtype="float32")
    full = logits_bytes(SMOLLM2, 16, 2048, "float32")  # 12 GiB: what the old estimate counted
    assert ours.scorer == "harness"
    # A row per context and CONTINUATION_TOKENS per continuation row, three copies of those.
    row = 49152 * 4
    assert ours.logits == 16 * row + 3 * 16 * CONTINUATION_TOKENS * row
    assert ours.logits < full / 40
    # The contexts' cache, and the continuation rows' copy of it.
    assert ours.kv_cache == 2 * kv_cache(SMOLLM2).bytes(16, 2048, "float32")


def test_lm_eval_path_keeps_full_logits():
    """Sliding-window models are scored by lm-eval's HFLM: full-vocabulary logits stay."""
    mistral = {**SMOLLM2, "model_type": "mistral", "sliding_window": 4096}
    theirs = scoring_memory(mistral, 16, 2048, "float32")
    assert not reuses_cache(mistral) and theirs.scorer == "lm-eval"
    assert theirs.logits == logits_bytes(mistral, 16, 2048, "float32")
    assert scoring_memory(SMOLLM2, 16, 2048, "float32", shared_prefix=False).scorer == "lm-eval"


def test_which_caches_are_reused():
    assert reuses_cache({"sliding_window": 4096, "use_sliding_window": False})  # Qwen2
    assert reuses_cache({"sliding_window": None})  # Mistral v0.2+
    assert not reuses_cache({"layer_types": ["full_attention", "sliding_attention"]})
    assert reuses_cache({"layer_types": ["full_attention"] * 4})


def test_demo_requests_are_bounded_by_the_bytes_of_its_longest_item():
    [smoke] = SuiteCatalog().check(["smoke"])
    longest = request_tokens([smoke], num_fewshot=None, max_new_tokens=None)
    # The longest smoke item (Tamil) is 474 bytes; SmolLM2 makes 258 tokens of it.
    assert longest == 474 + TEMPLATE_TOKENS
    # Few-shot examples multiply it.
    assert request_tokens([smoke], num_fewshot=2, max_new_tokens=None) == 3 * longest


def test_hub_data_is_not_bounded(tmp_path):
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"question": "é" * 10, "choices": ["a"]}) + "\n", "utf-8")
    [smoke] = SuiteCatalog().check(["smoke"])
    smoke.data_files = [data]
    assert request_tokens([smoke], None, None) == 21 + TEMPLATE_TOKENS  # é is 2 bytes
    smoke.data_files = [tmp_path / "train.parquet"]
    assert request_tokens([smoke], None, None) is None


def test_run_plans_the_demo_for_its_requests_not_the_window():
    from harness.capacity.hardware import Hardware
    from harness.capacity.preflight import plan_models
    from harness.config import load_config

    config = load_config(REPO / "configs" / "demo.yaml")
    [smoke] = SuiteCatalog().check(["smoke"])
    machine = Hardware(64 * 2**30, 64 * 2**30)
    [window] = plan_models(config, machine)
    [bounded] = plan_models(config, machine, suites=[smoke])
    assert window.context == 2048 and bounded.context == 474 + TEMPLATE_TOKENS
    assert bounded.scorer == "harness" and bounded.need_bytes < window.need_bytes / 2
    # bench/preflight.py measured 2.2 GiB at the demo's peak; the old estimate said 14.9.
    assert 2.2 * 2**30 < bounded.need_bytes < 2.6 * 2**30

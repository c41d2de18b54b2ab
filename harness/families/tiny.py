"""Tiny random-weight replicas of real architectures, for checks that must run on any CPU.

`shrink` keeps what makes an architecture itself (model_type, attention kind and its ratios,
MLA ranks being present, MoE routing with shared experts and dense first layers, rope settings)
and makes every width and count small.
"""

from __future__ import annotations

from collections.abc import Iterable

# A few sentences in the languages harness is used for: enough text for a byte-level BPE to
# learn merges in every script it will meet.
CORPUS = (
    "The capital of France is Paris. Two plus three is five.",
    "La capitale de la France est Paris. Deux plus trois font cinq.",
    "Die Hauptstadt der Schweiz ist Bern. Zwei plus drei ist fünf.",
    "La capitale della Svizzera è Berna. Chapitala da la Svizra è Berna.",
    "भारत की राजधानी नई दिल्ली है। दो और तीन पाँच होते हैं।",
    "இந்தியாவின் தலைநகரம் புது தில்லி. ভারতের রাজধানী নয়াদিল্লি।",
    "عاصمة الإمارات هي أبوظبي. عاصمة السعودية هي الرياض.",
    "대한민국의 수도는 서울입니다. 일본の首都は東京です。",
)

_DROPPED = ("quantization_config", "torch_dtype", "dtype", "transformers_version", "layer_types")


def train_tokenizer(texts: Iterable[str] = CORPUS, vocab_size: int = 600):
    """A byte-level BPE tokenizer trained on `texts`, with `<|endoftext|>` as eos and pad."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,  # its bars draw on stderr and end with a newline on stdout
    )
    bpe.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def shrink(reference: dict, vocab_size: int, eos_token_id: int) -> dict:
    """A tiny config of the same architecture as `reference` (a config.json dict)."""
    c = {k: v for k, v in reference.items() if k not in _DROPPED and k != "auto_map"}
    heads = 4
    c.update(hidden_size=64, intermediate_size=128, num_attention_heads=heads)
    if "num_key_value_heads" in reference:
        grouped = reference["num_key_value_heads"] < reference["num_attention_heads"]
        c["num_key_value_heads"] = 2 if grouped else heads
    if reference.get("head_dim"):
        # Keep attention wider than the residual stream where the reference has it (Qwen3,
        # GLM-4.5: heads x head_dim > hidden_size).
        wide = reference["head_dim"] * reference["num_attention_heads"] > reference["hidden_size"]
        c["head_dim"] = 32 if wide else 16
    if "kv_lora_rank" in reference:
        c.update(kv_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16)
        if reference.get("q_lora_rank"):
            c["q_lora_rank"] = 48
    dense_first = min(reference.get("first_k_dense_replace", 0), 1)
    if "n_routed_experts" in reference:
        c.update(n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=32)
        c["first_k_dense_replace"] = dense_first
        if reference.get("n_group", 1) > 1:
            c.update(n_group=4, topk_group=2)
    if "num_experts" in reference:
        c.update(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32)
    if "index_n_heads" in reference:
        # index_topk stays above the checks' sequence lengths, as the real 2048 does for short
        # prompts: the indexer's scores pass a ReLU, and ties at zero make a smaller top-k pick
        # keys by position in the batch, so scores would change with the padding.
        c.update(index_n_heads=4, index_head_dim=16, index_topk=64)
    c["num_hidden_layers"] = dense_first + 2
    if "max_window_layers" in reference:
        c["max_window_layers"] = min(reference["max_window_layers"], c["num_hidden_layers"])
    c.update(
        vocab_size=vocab_size,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    return c

"""Tokenizer fitness on real tokenizers: a byte-level BPE that covers every script, and a word
vocabulary that does not."""

from __future__ import annotations

from harness.families.tiny import train_tokenizer
from harness.suites.fitness import group_by_language, tokenizer_fitness


def word_tokenizer(words: list[str]):
    """A whitespace word-level tokenizer knowing only `words`; everything else is [UNK]."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")


ITEMS = group_by_language(
    [
        ("en", {"prompt": "Q: What is the capital of France?\nA:", "choices": [" Paris", " Rome"]}),
        ("ta", {"prompt": "இந்தியாவின் தலைநகரம் எது?", "choices": [" புது தில்லி"]}),
        ("ja", {"prompt": "日本の首都はどこですか。", "target": "東京"}),
    ]
)


def test_byte_level_bpe_is_lossless_everywhere():
    fitness = tokenizer_fitness(train_tokenizer(), ITEMS, context_window=2048)
    assert set(fitness) == {"en", "ja", "ta"}
    for fit in fitness.values():
        assert fit["roundtrip_lossless"] == 1.0 and fit["unknown_rate"] == 0.0
    assert fitness["ja"]["tokens_per_word"] is None
    # Tamil costs more tokens per character than English for a BPE trained mostly on Latin text.
    assert fitness["ta"]["tokens_per_char"] > fitness["en"]["tokens_per_char"]
    en = fitness["en"]
    assert en["context_share"] == round(en["median_item_tokens"] / 2048, 4)


def test_a_vocabulary_without_the_script_shows_unknowns_and_loses_text():
    tokenizer = word_tokenizer(["Q:", "What", "is", "the", "capital", "of", "France?", "A:"])
    fitness = tokenizer_fitness(tokenizer, ITEMS, context_window=None)
    assert fitness["ta"]["unknown_rate"] == 1.0 and fitness["ta"]["roundtrip_lossless"] == 0.0
    assert 0 < fitness["en"]["unknown_rate"] < 1  # "Paris" and "Rome" are unknown
    assert fitness["en"]["context_share"] is None

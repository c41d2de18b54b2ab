"""Tokenizer fitness per language: what a model's tokenizer costs on a language's text.

Measured on the text each item puts before the model (the prompt and each choice, or the prompt
and the reference answer), as scored. A tokenizer that needs many tokens per word spends the
context window and compute on that language, and often scores worse on it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from harness.suites.languages import words_are_spaced


def item_texts(record: dict) -> list[str]:
    """The texts of one per-sample record: its prompt, then its choices or its target."""
    texts = [record.get("prompt")]
    if "choices" in record:
        texts += record["choices"]
    elif isinstance(record.get("target"), str):
        texts.append(record["target"])
    return [text for text in texts if isinstance(text, str) and text]


def tokenizer_fitness(
    tokenizer, items_by_language: dict[str, list[list[str]]], context_window: int | None
) -> dict[str, dict]:
    """Per language: tokens per word and per character, the share of texts that encode and
    decode back unchanged, the rate of unknown tokens, and the tokens of a typical item
    (its prompt plus its longest continuation) against the context window."""
    return {
        language: _measure(tokenizer, items, language, context_window)
        for language, items in sorted(items_by_language.items())
        if items
    }


def _measure(tokenizer, items: list[list[str]], language: str, window: int | None) -> dict:
    unknown_id = getattr(tokenizer, "unk_token_id", None)
    tokens = characters = words = lossless = unknown = texts = 0
    item_tokens = []
    for item in items:
        lengths = []
        for text in item:
            ids = _encode(tokenizer, text)
            texts += 1
            tokens += len(ids)
            characters += len(text)
            words += len(text.split())
            unknown += sum(1 for i in ids if i == unknown_id) if unknown_id is not None else 0
            decoded = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
            lossless += decoded == text
            lengths.append(len(ids))
        item_tokens.append(lengths[0] + max(lengths[1:], default=0))
    typical = statistics.median(item_tokens)
    return {
        "items": len(items),
        "texts": texts,
        "tokens": tokens,
        # Not defined for languages written without spaces (Japanese, Chinese, Thai, ...), nor
        # for text of unknown (`und`) or mixed (`mul`) language, which may be such.
        "tokens_per_word": _ratio(tokens, words) if words_are_spaced(language) else None,
        "tokens_per_char": _ratio(tokens, characters),
        "roundtrip_lossless": _ratio(lossless, texts),
        "unknown_rate": _ratio(unknown, tokens),
        "median_item_tokens": typical,
        "context_window": window,
        "context_share": _ratio(typical, window) if window else None,
    }


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def group_by_language(records: Iterable[tuple[str, dict]]) -> dict[str, list[list[str]]]:
    """(language, per-sample record) pairs -> language -> the records' texts."""
    grouped: dict[str, list[list[str]]] = {}
    for language, record in records:
        texts = item_texts(record)
        if texts:
            grouped.setdefault(language, []).append(texts)
    return grouped

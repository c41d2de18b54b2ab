"""How long a run's requests can be, in tokens, from the suites' data alone (no tokenizer).

What scoring holds grows with the longest request of a batch, and harness's own suites are
short (the demo's longest is 258 tokens); planning every model for its whole window (2048
tokens) overstated the demo's need about twofold. A token covers at least one byte of UTF-8
text for the tokenizers harness meets (byte-level BPE; SentencePiece with byte fallback), so
the UTF-8 bytes of an item's text bound its tokens. A request is the prompt template, the
item, `num_fewshot` more items as examples, and for generation the tokens generated.

Only local JSONL data can be read this cheaply; a suite with hub data (Parquet, Arrow) is not
bounded here, and the model is planned for its whole window.
"""

from __future__ import annotations

import json
from pathlib import Path

TEMPLATE_TOKENS = 64
"""Tokens of a prompt template around an item (`Q: ... A:`, instructions, delimiters)."""
GENERATED_TOKENS = 256
"""Tokens a generation may add when the model's `max_new_tokens` is not set (lm-eval's
default `max_gen_toks`)."""


def longest_item_bytes(path: Path) -> int:
    """UTF-8 bytes of the text of the longest item (JSON line) of a JSONL file."""
    longest = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                longest = max(longest, sum(len(s.encode()) for s in _strings(json.loads(line))))
    return longest


def request_tokens(suites, num_fewshot: int | None, max_new_tokens: int | None) -> int | None:
    """An upper bound on the tokens of the longest request of `suites` (`SuiteInfo`s), or None
    when one of them has data this cannot read (hub datasets, other formats)."""
    longest = 0
    for info in suites:
        files = list(info.data_files)
        if info.sources or not files or any(p.suffix not in (".jsonl", ".json") for p in files):
            return None
        try:
            item = max(longest_item_bytes(p) for p in files)
        except (OSError, ValueError):
            return None
        for fewshot, generates in info.shapes.values() or [(0, False)]:
            shots = fewshot if num_fewshot is None else num_fewshot
            tokens = (1 + shots) * (item + TEMPLATE_TOKENS)
            if generates:
                tokens += max_new_tokens or GENERATED_TOKENS
            longest = max(longest, tokens)
    return longest or None


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)

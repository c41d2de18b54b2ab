"""Items longer than the model's context window, named after they are scored.

lm-eval does not refuse such an item: it cuts the tokens from the left so that the last
`max_length` fit (loglikelihood: context + continuation; generation: the prompt, leaving
`max_gen_toks` for the answer), and logs one unnamed line per request to its logger (run.log
in harness). harness's own multiple-choice scorer cuts exactly as lm-eval does, silently.
The score of such an item rests on a prompt the model only partly saw, so the console says
which items they were, and by how much.
"""

from __future__ import annotations

from typing import Any

MAX_NAMED = 5
"""Items named per task; the rest are counted."""


def overlong_items(task: str, samples: list[dict[str, Any]], lm, output_type: str) -> list[str]:
    """One warning line per item of `task` (lm-eval's samples) that did not fit `lm`'s
    context window, then a count of the others. Empty when they all fit or `lm` cannot say.

    Only texts with more UTF-8 bytes than the window are tokenized: a token covers at least
    one byte in the byte-level and byte-fallback tokenizers of the models harness runs, so
    shorter ones fit (the check costs nothing on the usual suites)."""
    max_length = getattr(lm, "max_length", None)
    if not isinstance(max_length, int) or not hasattr(lm, "tok_encode"):
        return []
    over: list[tuple[Any, int, int]] = []  # (doc id, tokens, room)
    for sample in samples:
        worst = None
        for args in sample.get("arguments") or []:
            found = _overflow(args, lm, max_length, output_type)
            if found and (worst is None or found[0] - found[1] > worst[0] - worst[1]):
                worst = found
        if worst:
            over.append((sample.get("doc_id"), *worst))
    lines = [
        f"{task} item {doc_id}: {tokens} tokens, longer than the model's context window "
        f"({max_length}); lm-eval cuts it from the left, so the model did not see its first "
        f"{tokens - room} tokens"
        for doc_id, tokens, room in over[:MAX_NAMED]
    ]
    if len(over) > MAX_NAMED:
        lines.append(f"{task}: {len(over) - MAX_NAMED} more items longer than the context window")
    return lines


def _overflow(args, lm, max_length: int, output_type: str) -> tuple[int, int] | None:
    """(tokens, room) of one request that does not fit, else None."""
    if not isinstance(args, (list, tuple)) or len(args) < 2:
        return None
    first, second = args[0], args[1]
    if output_type == "generate_until" and isinstance(second, dict):
        text = first
        room = max_length - int(second.get("max_gen_toks") or getattr(lm, "max_gen_toks", 256))
    elif isinstance(second, str):
        text, room = first + second, max_length + 1  # lm-eval feeds all but the last token
    else:
        return None
    if not isinstance(text, str) or len(text.encode("utf-8")) <= room - 4:
        return None
    tokens = len(lm.tok_encode(text))
    return (tokens, room) if tokens > room else None

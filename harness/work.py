"""What a model did while it scored: the counters each engine's lm-eval model keeps (`work`:
requests, tokens, seconds), per suite and, over a run, as throughput."""

from __future__ import annotations

WORK = ("loglikelihood_requests", "loglikelihood_seconds", "generated_tokens", "generation_seconds")
"""The counters a model wrapper keeps of the work it did (`ReasoningAwareHFLM.work`)."""


def work_done(lm) -> dict[str, float]:
    """The wrapper's counters now; zeros for a wrapper that keeps none."""
    kept = getattr(lm, "work", None) or {}
    return {key: kept.get(key, 0) for key in WORK}


def suite_work(tasks: dict, types: dict[str, str], before: dict, after: dict) -> dict:
    """What scoring one suite took: items by kind, and the model's own counters (requests,
    tokens, seconds) for the work it did rather than took from lm-eval's request cache."""
    work = {key: round(after[key] - before[key], 3) for key in after}
    generated = {t for t, kind in types.items() if kind == "generate_until"}
    counts = {t: (v.get("n_samples") or {}).get("effective") or 0 for t, v in tasks.items()}
    work["loglikelihood_items"] = sum(
        n for t, n in counts.items() if t in types and t not in generated
    )
    work["generation_items"] = sum(n for t, n in counts.items() if t in generated)
    return work


def throughput(entry: dict, peaks: dict[str, int], lm) -> dict:
    """A model's speed over the suites it scored in this run (cached suites are not counted):
    load time, multiple-choice items per second, generated tokens per second, peak memory."""
    scored = [s for s in entry["suites"].values() if s.get("work")]
    total = {
        key: sum(s["work"][key] for s in scored)
        for key in ("loglikelihood_items", "loglikelihood_seconds", "loglikelihood_requests",
                    "generation_items", "generated_tokens", "generation_seconds")
    }  # fmt: skip
    per_item = _rate(total["loglikelihood_items"], total["loglikelihood_seconds"])
    per_token = _rate(total["generated_tokens"], total["generation_seconds"])
    return {
        "load_seconds": entry.get("load_seconds"),
        "loaded_from": "converted copy" if entry.get("converted_from") else "model files",
        "suites_scored": len(scored),
        **total,
        "loglikelihood_items_per_second": per_item,
        "generation_tokens_per_second": per_token,
        **peaks,
        "context_sharing": getattr(lm, "prefix_sharing", None),
    }


def _rate(amount: float, seconds: float) -> float | None:
    return round(amount / seconds, 3) if amount and seconds > 0 else None

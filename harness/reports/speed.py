"""The speed and memory of a run, as rows for the reports: per model (load time, items and
tokens per second, peak memory, whether contexts were shared) and per phase."""

from __future__ import annotations

from harness.phases import PHASES
from harness.record import RunRecord

PHASE_NAMES = {
    "startup": "start-up",
    "model_load": "model load",
    "data_load": "data load",
    "scoring": "scoring",
    "report": "report",
}


def model_rows(results: RunRecord) -> list[dict]:
    """One row per model that has a throughput record."""
    rows = []
    for model, entry in results.models.items():
        speed = entry.throughput
        if not speed:
            continue
        sharing = speed.get("context_sharing") or {}
        rows.append(
            {
                "model": model,
                "load_seconds": speed.get("load_seconds"),
                "loaded_from": speed.get("loaded_from"),
                "items_per_second": speed.get("loglikelihood_items_per_second"),
                "tokens_per_second": speed.get("generation_tokens_per_second"),
                "peak_memory": memory_text(speed),
                "context_sharing": sharing_text(sharing),
            }
        )
    return rows


def phase_rows(results: RunRecord) -> list[dict]:
    """The run's phases in order, with their time and peak memory."""
    phases = results.run.phases
    return [
        {
            "phase": PHASE_NAMES[name],
            "seconds": phases[name].seconds,
            "peak_memory": memory_text(phases[name].model_dump()),
        }
        for name in PHASES
        if name in phases
    ]


def memory_text(entry: dict) -> str:
    parts = []
    if entry.get("peak_rss_bytes"):
        parts.append(f"{entry['peak_rss_bytes'] / 2**30:.2f} GiB RAM")
    if entry.get("peak_gpu_bytes"):
        parts.append(f"{entry['peak_gpu_bytes'] / 2**30:.2f} GiB GPU")
    return ", ".join(parts) or "—"


def sharing_text(sharing: dict) -> str:
    if not sharing:
        return "not needed"
    if sharing.get("used"):
        return f"on (checked: {sharing.get('max_relative_difference', 0):.1g} from lm-eval)"
    return f"off: {sharing.get('reason', '?')}"

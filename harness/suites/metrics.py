"""Which metrics a task reports, read from its YAML before anything is scored.

A gate names a metric (`metric: acc`); a name no selected task reports would be found only
after scoring, when the gate has nothing to judge. lm-eval decides a task's metrics from its
`metric_list`, or, without one, from its `output_type` (the defaults below, as lm-eval's
`ConfigurableTask` sets them); a group reports what its `aggregate_metric_list` names.
"""

from __future__ import annotations

from typing import Any

DEFAULT_METRICS = {
    "loglikelihood": {"perplexity", "acc"},
    "multiple_choice": {"acc", "acc_norm"},
    "generate_until": {"exact_match"},
    "loglikelihood_rolling": {"word_perplexity", "byte_perplexity", "bits_per_byte"},
}
"""lm-eval's metrics per output type when a task has no `metric_list` (lm-eval 0.4)."""


def reported_metrics(cfg: dict[str, Any]) -> set[str] | None:
    """The metric names a task (or group) config reports; None when the YAML does not say
    (a Python task class, or `process_results` code without a `metric_list`)."""
    if "aggregate_metric_list" in cfg or cfg.get("group"):
        entries = cfg.get("aggregate_metric_list") or []
        return {_name(e) for e in _as_list(entries) if _name(e)}
    entries = cfg.get("metric_list")
    if entries:
        names = {_name(e) for e in _as_list(entries)}
        if cfg.get("output_type") == "multiple_choice" and cfg.get("acc_mutual_info"):
            names.add("acc_mutual_info")
        return {n for n in names if n}
    if cfg.get("process_results") is not None or cfg.get("class") is not None:
        return None
    return set(DEFAULT_METRICS.get(str(cfg.get("output_type")), set())) or None


def _name(entry) -> str | None:
    """A metric entry's name: `acc`, or a `!function utils.rouge2` reference's function."""
    name = entry.get("metric") if isinstance(entry, dict) else entry
    if not isinstance(name, str):
        return getattr(name, "__name__", None)
    return name.rsplit(".", 1)[-1] if "/" in name or "\\" in name else name


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]

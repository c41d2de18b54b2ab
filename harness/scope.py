"""How much of its config a run covered. A run that scored fewer items than the config asks
for (an item limit, models or suites left out, a model skipped, failed or interrupted) is
partial: results.json, every report and the console say so in their first lines, its gates
are not judged (unless `decision.judge_partial`), and compare and history set it only against
runs of the same items."""

from __future__ import annotations

from harness.config import RunConfig
from harness.record import RunRecord


def run_scope(config: RunConfig, data: dict) -> dict:
    """The `scope` record of a results document (a dict: the run is still being written)."""
    reasons = []
    if config.limit is not None:
        reasons.append(f"limit of {config.limit} items per task")
    left_out = config.left_out
    if left_out.get("models"):
        reasons.append("models left out with --model: " + ", ".join(left_out["models"]))
    if left_out.get("suites"):
        reasons.append("suites left out with --suite: " + ", ".join(left_out["suites"]))
    for model_id, model in data["models"].items():
        status = model.get("status")
        if status in ("skipped", "failed", "interrupted", "running") and not model.get("suites"):
            reasons.append(f"model {model_id} {status}" + (f": {model['error']}" if model.get(
                "error") else ""))  # fmt: skip
            continue
        for suite in config.suites:
            result = model.get("suites", {}).get(suite)
            if result is None:
                reasons.append(f"suite {suite} not scored for model {model_id}")
            elif result.get("status") != "ok":
                reasons.append(f"suite {suite} failed for model {model_id}")
    if data.get("status") == "interrupted":
        reasons.append("the run was interrupted")
    scored, total = _items(config, data)
    if total is not None and scored < total and not reasons:
        reasons.append(f"{total - scored:,} items not scored")
    return {
        "partial": bool(reasons),
        "reasons": list(dict.fromkeys(reasons)),
        "items_scored": scored,
        "items_total": total,
    }


def _items(config: RunConfig, data: dict) -> tuple[int, int | None]:
    """(items scored over every model and leaf task, items the full config asks for: every
    model of the config file times every item of every suite, None where a count is unknown)."""
    scored = 0
    known: dict[str, int] = {}
    for model in data["models"].values():
        for suite, result in model.get("suites", {}).items():
            if result.get("status") != "ok":
                continue
            leaves = data["suites"].get(suite, {}).get("tasks", [])
            for task, entry in result.get("tasks", {}).items():
                counts = entry.get("n_samples") or {}
                if task in leaves or (not leaves and task == suite):
                    scored += int(counts.get("effective") or 0)
                    if counts.get("original") is not None:
                        known[task] = int(counts["original"])
    per_model = 0
    for suite in [*config.suites, *config.left_out.get("suites", [])]:
        info = data["suites"].get(suite)
        if info is None:
            return scored, None  # a suite left out: its size is not known here
        for task in info.get("tasks", []):
            size = info.get("items", {}).get(task, known.get(task))
            if size is None:
                return scored, None
            per_model += size
    models = len(config.models) + len(config.left_out.get("models", []))
    return scored, per_model * models


def scope_lines(record: RunRecord) -> list[str]:
    """The first lines of the console: the PARTIAL and STAND-IN labels of the reports."""
    from harness.reports.signoff import partial_label, stand_in_text, stand_ins

    lines = [label] if (label := partial_label(record)) else []
    return lines + [f"STAND-IN: {stand_in_text(s)}" for s in stand_ins(record)]

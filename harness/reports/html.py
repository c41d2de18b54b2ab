"""`report.html`: the report as one self-contained page, for people who decide.

The verdict comes first, then a heatmap of models by task (grouped by language), bar charts
with error bars, the generation and tokenizer tables, hardware and timings, and the offline
attestation, with links to the per-sample logs next to it. Everything is inline (CSS, SVG
charts): the page opens offline, from a USB stick or an e-mail attachment, and asks for nothing.
Built from results.json alone, like report.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.evaluation import primary_metric
from harness.record import GatesRecord, RunRecord, as_record
from harness.reports import speed

_TEMPLATE = Path(__file__).with_name("report.html.j2")


def render_html(results: RunRecord | dict) -> str:
    """The HTML report of a run's record."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(_TEMPLATE.parent),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = lambda v: "—" if v is None else f"{v:.1%}"
    env.filters["gib"] = lambda v: "—" if not v else f"{v / 2**30:.1f} GiB"
    env.filters["secs"] = lambda v: "—" if v is None else f"{v:.1f} s"
    return env.get_template(_TEMPLATE.name).render(**view(as_record(results)))


def view(results: RunRecord) -> dict[str, Any]:
    """What the page shows, computed once: the template only lays it out."""
    columns = _columns(results)
    models = list(results.models)
    cells = {
        (model, column["task"]): _cell(results, model, column["suite"], column["task"])
        for model in models
        for column in columns
    }
    gates = results.gates
    if gates is not None:
        order = ("fail", "missing", "within noise", "not judged", "pass")
        checks = sorted(gates.checks, key=lambda c: order.index(c.status))
        gates = gates.model_copy(update={"checks": checks})
    return {
        "r": results,
        "run": results.run,
        "gates": gates,
        "verdict_keys": _verdict_keys(results.gates),
        "columns": columns,
        "languages": _spans(columns),
        "models": models,
        "cells": cells,
        "charts": [_chart(column, models, cells) for column in columns],
        "generation": _generation_rows(results),
        "tokenizer": [
            (model, language, fit)
            for model, entry in results.models.items()
            for language, fit in (entry.tokenizer or {}).items()
            if isinstance(fit, dict)
        ],
        "timings": _timings(results),
        "speed": speed.model_rows(results),
        "phases": speed.phase_rows(results),
        "failures": _failures(results),
    }


def _columns(results: RunRecord) -> list[dict]:
    """Every scored task, ordered by language, with where its per-sample log is."""
    seen: dict[str, dict] = {}
    for suite, info in results.suites.items():
        languages = info.languages
        for task in [suite, *info.tasks]:
            if task in seen:
                continue
            if task == suite and not _suite_scored(results, suite):
                continue
            seen[task] = {"suite": suite, "task": task, "language": languages.get(task, "")}
    return sorted(seen.values(), key=lambda c: (c["language"] or "~", c["task"]))


def _suite_scored(results: RunRecord, suite: str) -> bool:
    return any(
        m.suites[suite].tasks[suite].metrics
        for m in results.models.values()
        if suite in m.suites and suite in m.suites[suite].tasks
    )


def _spans(columns: list[dict]) -> list[tuple[str, int]]:
    spans: list[tuple[str, int]] = []
    for column in columns:
        if spans and spans[-1][0] == column["language"]:
            spans[-1] = (spans[-1][0], spans[-1][1] + 1)
        else:
            spans.append((column["language"], 1))
    return spans


def _cell(results: RunRecord, model: str, suite: str, task: str) -> dict:
    entry = results.models[model].suites.get(suite)
    if entry is None:
        return {"text": "—", "colour": "#eee", "title": "not scored"}
    if entry.status == "failed":
        return {"text": "failed", "colour": "#f4c7c3", "title": entry.error or ""}
    task_entry = entry.tasks.get(task)
    name, value, stderr = primary_metric(task_entry.metrics if task_entry else {})
    if task_entry is None or value is None:
        return {"text": "n/a", "colour": "#eee", "title": "no score"}
    metric = name.split(",")[0]
    scale = 100.0 if metric.startswith("chrf") else 1.0
    share = max(0.0, min(1.0, value / scale))
    items = task_entry.n_samples.effective if task_entry.n_samples else 0
    return {
        "text": _num(value) + (f" ± {_num(stderr)}" if stderr is not None else ""),
        "colour": f"hsl({120 * share:.0f}, 65%, {88 - 10 * share:.0f}%)",
        "title": f"{metric} on {items} items",
        "value": value,
        "stderr": stderr,
        "metric": metric,
        "scale": scale,
        "samples": task_entry.samples_file,
    }


def _chart(column: dict, models: list[str], cells: dict) -> dict:
    """A horizontal bar chart of one task: a bar per model, ± one standard error."""
    width, label, bar, gap = 360, 150, 16, 8
    plot = width - label - 20
    bars = []
    metric, scale = "", 1.0
    for i, model in enumerate(models):
        cell = cells[(model, column["task"])]
        y = gap + i * (bar + gap)
        if "value" not in cell:
            bars.append({"model": model, "y": y, "missing": cell["text"]})
            continue
        metric, scale = cell["metric"], cell["scale"]
        x = plot * max(0.0, min(1.0, cell["value"] / scale))
        err = plot * (cell["stderr"] or 0.0) / scale
        bars.append(
            {
                "model": model,
                "y": y,
                "w": x,
                "lo": max(0.0, x - err),
                "hi": min(plot, x + err),
                "text": cell["text"],
                "colour": cell["colour"],
            }
        )
    return {
        **column,
        "metric": metric,
        "scale": scale,
        "width": width,
        "label": label,
        "plot": plot,
        "bar": bar,
        "height": gap + len(models) * (bar + gap) + 14,
        "bars": bars,
    }


def _verdict_keys(gates: GatesRecord | None) -> list[str]:
    if gates is None:
        return []
    return sorted({k for per_model in gates.verdicts.values() for k in per_model})


def _generation_rows(results: RunRecord) -> list[tuple[str, str, dict]]:
    return [
        (model, task, entry.generation)
        for model, m in results.models.items()
        for suite in m.suites.values()
        for task, entry in suite.tasks.items()
        if entry.generation
    ]


def _timings(results: RunRecord) -> list[dict]:
    rows = []
    for model, entry in results.models.items():
        suites = entry.suites
        rows.append(
            {
                "model": model,
                "status": entry.status,
                "device": entry.device,
                "dtype": entry.dtype,
                "parameters": entry.parameters,
                "hash": entry.hash_seconds,
                "load": entry.load_seconds,
                "suites": {name: s.seconds for name, s in suites.items()},
                "scoring": sum(s.seconds or 0 for s in suites.values()),
            }
        )
    return rows


def _failures(results: RunRecord) -> list[tuple[str, str, str]]:
    out = []
    for model, entry in results.models.items():
        if entry.status in ("failed", "skipped", "interrupted") and not entry.suites:
            out.append((model, f"(model {entry.status})", entry.error or ""))
        for suite, s in entry.suites.items():
            if s.status == "failed":
                out.append((model, suite, s.error or ""))
    return out


def _num(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (int, float)) and abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)

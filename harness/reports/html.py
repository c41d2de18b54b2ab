"""`report.html`: the report as one self-contained page, for people who decide and sign.

The first screen is what an official signs: the verdict, which model files were scored (a
stand-in shouted), the scope, the limitations, and a signature block. Then every gate check, a
heatmap of tasks by model (grouped by language, with its legend), bar charts with error bars
and the chance level, the generation and tokenizer tables, hardware and timings, the files
that define models and suites, and the offline attestation, with links to the per-sample logs.
Everything is inline (CSS, SVG charts): the page opens offline, from a USB stick or an e-mail
attachment, and asks for nothing. It prints on A4 without clipping (its `@media print` rules).
Built from results.json alone, like report.md, whose shared facts it uses.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.evaluation import primary_metric
from harness.record import GatesRecord, RunRecord, as_record
from harness.reports import signoff as facts
from harness.reports import speed
from harness.sandbox.loopback import outside_warning

_TEMPLATE = Path(__file__).with_name("report.html.j2")
MISSING_COLOUR = "#e6e6e6"
FAILED_COLOUR = "#f4c7c3"


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
    env.filters["code"] = _inline_code
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
        checks = sorted(gates.checks, key=lambda c: facts.status_rank(c.status))
        gates = gates.model_copy(update={"checks": checks})
    return {
        "r": results,
        "run": results.run,
        "label": lambda model: facts.model_label(model, results),
        "partial": facts.partial_label(results),
        "stand_ins": facts.stand_ins(results),
        "sandbox_warning": facts.sandbox_warning(results),
        "server_warning": outside_warning(results),
        "gates": gates,
        "verdict": _verdict(results.gates),
        "failing": facts.failing_statuses(gates) if gates is not None else frozenset(),
        "rule_text": facts.gates_rule_text(gates) if gates is not None else "",
        "check_score": facts.check_score,
        "check_margin": facts.check_margin,
        "verdict_keys": _verdict_keys(results.gates),
        "identity": _identity(results),
        "scope": facts.scope_facts(results),
        "limitations": facts.limitations(results),
        "statement": facts.signed_statement(results),
        "signature_fields": facts.SIGNATURE_FIELDS,
        "models": models,
        "heat_rows": _heat_rows(columns, models, cells),
        "legend": {"missing": MISSING_COLOUR, "failed": FAILED_COLOUR, "stops": _legend_stops()},
        "charts": [_chart(results, column, models, cells) for column in columns],
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
        "suite_files": _suite_files(results),
    }


def _verdict(gates: GatesRecord | None) -> dict[str, str]:
    """The banner: its word, its colour class, its tally."""
    word = facts.verdict_word(gates)
    if gates is None:
        return {"word": word, "css": "nogates", "tally": "the config has none; scores only"}
    css = "notjudged" if not gates.judged else ("passed" if gates.passed else "failed")
    return {"word": word, "css": css, "tally": facts.tally(gates) or "no checks"}


def _identity(results: RunRecord) -> list[dict]:
    rows = []
    for model, entry in results.models.items():
        identity = entry.identity
        rows.append(
            {
                "model": model,
                "stand_in": entry.stand_in,
                "source": f"{identity.kind}: {identity.location}" if identity else None,
                "pinned": facts.repo_at_commit(entry),
                "digest": identity.digest if identity else None,
                "status": entry.status,
            }
        )
    return rows


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
            seen[task] = {
                "suite": suite,
                "task": task,
                "language": languages.get(task, ""),
                "chance": facts.chance_of(results, task),
            }
    return sorted(seen.values(), key=lambda c: (c["language"] or "~", c["task"]))


def _suite_scored(results: RunRecord, suite: str) -> bool:
    return any(
        m.suites[suite].tasks[suite].metrics
        for m in results.models.values()
        if suite in m.suites and suite in m.suites[suite].tasks
    )


def _heat_rows(columns: list[dict], models: list[str], cells: dict) -> list[dict]:
    """One row per task, a cell per model; the first row of a language carries its span."""
    rows = []
    for column in columns:
        span = 0
        if not rows or rows[-1]["language"] != column["language"]:
            span = sum(1 for c in columns if c["language"] == column["language"])
        rows.append({**column, "span": span, "cells": [cells[(m, column["task"])] for m in models]})
    return rows


def _cell(results: RunRecord, model: str, suite: str, task: str) -> dict:
    entry = results.models[model].suites.get(suite)
    if entry is None:
        return {"text": "—", "colour": MISSING_COLOUR, "title": "not scored"}
    if entry.status == "failed":
        return {"text": "failed", "colour": FAILED_COLOUR, "title": entry.error or ""}
    task_entry = entry.tasks.get(task)
    name, value, stderr = primary_metric(task_entry.metrics if task_entry else {})
    if task_entry is None or value is None:
        return {"text": "n/a", "colour": MISSING_COLOUR, "title": "no score"}
    metric = name.split(",")[0]
    scale = 100.0 if metric.startswith("chrf") else 1.0
    items = task_entry.n_samples.effective if task_entry.n_samples else 0
    chance = task_entry.chance
    below = chance is not None and value < chance
    title = f"{metric} on {items} items"
    if chance is not None:
        title += f"; chance {chance:.3f}" + ("; BELOW CHANCE" if below else "")
    text = _num(value) + (f" ± {_num(stderr)}" if stderr is not None else "")
    if (repeats := task_entry.repeats) is not None:  # k samples per item: their mean, pass@k
        passes = [f"pass@{j} {_num(v)}" for j, v in sorted(repeats.pass_at_k.items())]
        title += f"; mean of {repeats.k} samples per item"
        text += "".join(f" · {p}" for p in passes) or f" · {repeats.k} samples"
    return {
        "text": text,
        "colour": _colour(value / scale),
        "title": title,
        "value": value,
        "stderr": stderr,
        "metric": metric,
        "scale": scale,
        "chance": chance,
        "below": below,
        "samples": task_entry.samples_file,
    }


def _colour(share: float) -> str:
    """Red (0) through yellow to green (1)."""
    share = max(0.0, min(1.0, share))
    return f"hsl({120 * share:.0f}, 65%, {88 - 10 * share:.0f}%)"


def _legend_stops() -> list[str]:
    return [_colour(i / 10) for i in range(11)]


def _chart(results: RunRecord, column: dict, models: list[str], cells: dict) -> dict:
    """A horizontal bar chart of one task: a bar per model, ± one standard error, and the
    chance level as a dashed line."""
    labels = [facts.model_label(model, results) for model in models]
    label = max(90, min(260, 12 + round(6.2 * max(map(len, labels), default=0))))
    plot, bar, gap = 200, 16, 8
    bars = []
    metric, scale = "", 1.0
    for i, model in enumerate(models):
        cell = cells[(model, column["task"])]
        y = gap + i * (bar + gap)
        if "value" not in cell:
            bars.append({"model": labels[i], "y": y, "missing": cell["text"]})
            continue
        metric, scale = cell["metric"], cell["scale"]
        x = plot * max(0.0, min(1.0, cell["value"] / scale))
        err = plot * (cell["stderr"] or 0.0) / scale
        bars.append(
            {
                "model": labels[i],
                "y": y,
                "w": x,
                "lo": max(0.0, x - err),
                "hi": min(plot, x + err),
                "text": cell["text"],
                "colour": cell["colour"],
                "below": cell["below"],
            }
        )
    chance = column["chance"]
    return {
        **column,
        "metric": metric,
        "scale": scale,
        "width": label + plot + 70,
        "label": label,
        "plot": plot,
        "bar": bar,
        "height": gap + len(models) * (bar + gap) + 14,
        "bars": bars,
        "chance_x": None if chance is None else plot * max(0.0, min(1.0, chance / scale)),
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


def _suite_files(results: RunRecord) -> list[dict]:
    """Per suite: its task definition files, and lm-eval's hash of each task per model."""
    out = []
    for suite, info in results.suites.items():
        hashes = facts.task_hashes(results, [suite, *info.tasks])
        if info.definition_files or hashes:
            out.append(
                {"suite": suite, "source": info.source, "files": info.definition_files,
                 "hashes": hashes}
            )  # fmt: skip
    return out


def _inline_code(text: str):
    """Text with its `backquoted` parts as <code>, escaped."""
    from markupsafe import Markup, escape

    parts = str(escape(text)).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def _num(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (int, float)) and abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)

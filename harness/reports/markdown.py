"""`report.md`: a page ready to sign first (the verdict, what was scored, on what, the scope,
the limitations, a signature block), then every gate check, the scores as tables of models by
suites, which weights, where, and the offline attestation. Built from results.json alone, so it
can be regenerated from any run.

The facts the three reports share are in `harness.reports.signoff`.
"""

from __future__ import annotations

from harness.evaluation import primary_metric
from harness.record import (
    IsolationRecord,
    KernelRecord,
    ModelRecord,
    RunRecord,
    SandboxRecord,
    SuiteResult,
    TaskResult,
    as_record,
)
from harness.reports import speed
from harness.reports.signoff import (
    SIGNATURE_FIELDS,
    chance_of,
    check_margin,
    check_score,
    configured_model,
    failing_statuses,
    gates_rule_text,
    limitations,
    model_label,
    partial_label,
    repo_at_commit,
    sandbox_warning,
    scope_facts,
    signed_statement,
    stand_ins,
    status_rank,
    tally,
    task_hashes,
    verdict_word,
)
from harness.sandbox.loopback import outside_warning, server_lines


def render_report(results: RunRecord | dict) -> str:
    """The Markdown report of a run's record."""
    results = as_record(results)
    run = results.run
    lines = [f"# Run `{run.name}`", ""]
    if partial := partial_label(results):
        lines += [f"> **{partial}**", ""]
    for s in stand_ins(results):
        lines += [
            f"> **STAND-IN: `{s.label}` is not the model the config names.** Configured "
            f"`{s.configured}`; scored `{s.scored}` from `{s.location or 'not recorded'}`, "
            f"digest `{s.digest or 'not recorded'}`.",
            "",
        ]
    if warning := sandbox_warning(results):
        lines += [f"> **{warning}**", ""]
    if outside := outside_warning(results):
        lines += [f"> **{outside}**", ""]
    if results.config.get("description"):
        lines += [results.config["description"].strip(), ""]
    exit_code = "-" if results.exit_code is None else results.exit_code
    lines += [
        f"- Status: **{results.status}** (exit code {exit_code})",
        f"- Started {run.started}, finished {run.finished or '-'}, "
        f"wall time {_seconds(run.wall_seconds)}",
        f"- Config: `{run.config_file or '-'}` (sha256 `{results.config_hash[:16]}…`)",
        "",
    ]
    lines += _verdict(results)
    lines += _identity(results)
    lines += ["## Scope", ""]
    lines += [f"- {name}: {text}" for name, text in scope_facts(results)] + [""]
    lines += ["## Limitations", ""]
    lines += [f"- **{title}**: {text}" for title, text in limitations(results)] or ["- none"]
    lines.append("")
    lines += _signature(results)
    lines += _checks(results)
    lines += [
        "## Scores",
        "",
        "lm-eval's numbers, unchanged: the primary metric (acc for multiple choice) ± its "
        "standard error. Per-item logs are in `samples/`. A multiple-choice column names its "
        "chance level (uniform guessing); a score below it is marked **below chance**.",
        "",
    ]
    lines += _language_table(results)
    lines += _score_tables(results)
    lines += _generation_table(results)
    lines += _repeats_table(results)
    lines += _tokenizer_table(results)
    lines += ["## Models", ""]
    lines += _model_table(results)
    lines += _model_files(results)
    lines += _speed(results)
    lines += _preflight(results)
    lines += _suite_files(results)
    lines += ["## Environment", ""]
    lines += _environment(results.environment)
    lines += ["## Offline attestation", ""]
    lines += _attestation(results)
    return "\n".join(lines).rstrip() + "\n"


def _verdict(results: RunRecord) -> list[str]:
    """The decision first: the verdict word with its tally, then per model and language."""
    gates = results.gates
    lines = ["## Verdict", ""]
    if gates is None:
        lines += ["**NO GATES**: the config has none; scores only.", ""]
    else:
        lines += [
            f"**{verdict_word(gates)}**: {tally(gates) or 'no checks'}"
            + (f" (baseline `{gates.baseline}`)" if gates.baseline else "")
            + ".",
            "",
        ]
    if found := stand_ins(results):
        names = ", ".join(f"`{s.label}`" for s in found)
        lines += [f"**Scored with stand-ins, not the configured models**: {names}.", ""]
    if gates is None:
        return lines
    failing = failing_statuses(gates)
    verdicts = gates.verdicts
    keys = sorted({k for per_model in verdicts.values() for k in per_model})
    if keys:
        lines += [_row(["model", *keys]), _row(["---"] * (len(keys) + 1))]
        for model, per_model in verdicts.items():
            cells = [_status(per_model.get(k), failing) for k in keys]
            lines.append(_row([model_label(model, results), *cells]))
        lines.append("")
    return lines


def _identity(results: RunRecord) -> list[str]:
    """Which model files were scored, per model: source, repo and commit, identity digest."""
    lines = [
        "## Models scored",
        "",
        _row(["model", "source", "repo@commit", "identity digest (sha256 of all files)",
              "status"]),
        _row(["---"] * 5),
    ]  # fmt: skip
    for model_id, entry in results.models.items():
        identity = entry.identity
        source = f"{identity.kind}: `{identity.location}`" if identity else "—"
        pinned = repo_at_commit(entry)
        digest = identity.digest if identity and identity.digest else None
        lines.append(
            _row([model_label(model_id, results), source, f"`{pinned}`" if pinned else "—",
                  f"`{digest}`" if digest else "—", entry.status])
        )  # fmt: skip
    lines.append("")
    lock = results.lock
    if lock is not None:
        state = "verified" if lock.verified else "**NOT verified**"
        lines += [f"Lock file `{lock.path}` (sha256 `{lock.sha256}`): {state}.", ""]
    return lines


def _signature(results: RunRecord) -> list[str]:
    lines = ["## Signature", "", "What is signed:", ""]
    lines += [f"- {sentence}" for sentence in signed_statement(results)]
    lines += [
        "",
        "Decision: [ ] approved  [ ] not approved",
        "",
        _row(["", "to fill by hand"]),
        _row(["---", "---"]),
    ]
    lines += [_row([name, " " * 40]) for name in SIGNATURE_FIELDS]
    lines.append("")
    return lines


def _checks(results: RunRecord) -> list[str]:
    """Every gate check, worst first, with its numbers and the interval of its margin."""
    gates = results.gates
    if gates is None or not gates.checks:
        return []
    failing = failing_statuses(gates)
    lines = [
        "## Gate checks",
        "",
        gates_rule_text(gates),
        "",
        _row(["gate", "model", "task", "metric", "score ± stderr (items)", "threshold",
              "margin [interval]", "method", "status"]),
        _row(["---"] * 9),
    ]  # fmt: skip
    for check in sorted(gates.checks, key=lambda c: status_rank(c.status)):
        threshold = "—" if check.threshold is None else f"{check.threshold:.3f}"
        if check.rule == "above_chance" or (
            check.chance is not None and check.threshold == check.chance
        ):
            threshold += " (chance)"
        status = _status(check.status, failing)
        if check.status != "pass" and check.detail:
            status += f": {check.detail}"
        lines.append(
            _row([check.gate, model_label(check.model, results), check.task, check.metric,
                  check_score(check), threshold, check_margin(check), check.method or "—",
                  status])
        )  # fmt: skip
    lines.append("")
    return lines


def _status(status: str | None, failing: frozenset[str]) -> str:
    if status is None:
        return "—"
    return f"**{status}**" if status in failing else status


def _score_tables(results: RunRecord) -> list[str]:
    lines: list[str] = []
    models = results.models
    for suite in results.config["suites"]:
        info = results.suites.get(suite)
        leaves = info.tasks if info else []
        languages = info.languages if info else {}
        columns = [
            c
            for c in [suite] + [t for t in leaves if t != suite]
            if c != suite or _has_metrics(models, suite)
        ]
        header = ["model"] + [_column_title(results, c, languages) for c in columns]
        lines += [f"### {suite}", "", _row(header), _row(["---"] * len(header))]
        for model_id, model in models.items():
            suite_result = model.suites.get(suite)
            cells = [model_label(model_id, results)]
            for column in columns:
                cells.append(_score_cell(suite_result, column))
            lines.append(_row(cells))
        lines.append("")
        metric_names = {
            primary_metric(task.metrics)[0]
            for model in models.values()
            if suite in model.suites
            for task in model.suites[suite].tasks.values()
        } - {""}
        if metric_names:
            lines += [f"Metric: {', '.join(sorted(metric_names))}.", ""]
    failures = [
        (model_label(model_id, results), suite, result.error)
        for model_id, model in models.items()
        for suite, result in model.suites.items()
        if result.status == "failed"
    ] + [
        # The model itself failed (to load, or its worker died) or was not on this machine;
        # a model whose only failures are suites is listed by those suites above.
        (model_label(model_id, results), f"(model {m.status})", m.error)
        for model_id, m in models.items()
        if m.status in ("failed", "skipped", "interrupted") and m.error
    ]
    if failures:
        lines += ["Failures:", ""]
        lines += [f"- `{m}` / `{s}`: {e}" for m, s, e in failures]
        lines.append("")
    return lines


def _column_title(results: RunRecord, task: str, languages: dict[str, str]) -> str:
    notes = [task] if task in languages else []
    if (chance := chance_of(results, task)) is not None:
        notes.append(f"chance {chance:.3f}")
    title = languages.get(task, task)
    return f"{title} ({'; '.join(notes)})" if notes else title


def _has_metrics(models: dict[str, ModelRecord], suite: str) -> bool:
    """Whether a suite itself has a score (a group without an aggregate has none)."""
    return any(
        model.suites[suite].tasks[suite].metrics
        for model in models.values()
        if suite in model.suites and suite in model.suites[suite].tasks
    )


def _score_cell(suite_result: SuiteResult | None, task: str) -> str:
    if suite_result is None:
        return "—"
    if suite_result.status == "failed":
        return "failed"
    task_result = suite_result.tasks.get(task)
    if task_result is None:
        return "—"
    return _metric_text(task_result)


def _metric_text(task: TaskResult) -> str:
    """The primary metric ± its stderr, chrF beside an exact match, and a mark below chance."""
    metrics = task.metrics
    name, value, stderr = primary_metric(metrics)
    if value is None:
        return "n/a"
    text = f"{value:.3f} ± {stderr:.3f}" if stderr is not None else f"{value:.3f}"
    chrf = metrics.get("chrf,none")
    if name.startswith("exact_match,") and isinstance(chrf, (int, float)):
        text += f" (chrF {chrf:.1f})"
    if task.chance is not None and value < task.chance:
        text += " **below chance**"
    if task.repeats is not None:
        text += f" ({_repeats_text(task.repeats)})"
    return text


def _repeats_text(repeats) -> str:
    """`mean of k samples; pass@1 x, pass@k y`: an item's score is the mean over its samples."""
    passes = ", ".join(f"pass@{j} {v:.3f}" for j, v in sorted(repeats.pass_at_k.items()))
    return f"mean of {repeats.k} samples" + (f"; {passes}" if passes else "")


def _repeats_table(results: RunRecord) -> list[str]:
    """Generation tasks sampled k times per item: mean ± stderr over items, and pass@k."""
    rows = [
        (model_label(model_id, results), name, task.repeats)
        for model_id, model in results.models.items()
        for suite in model.suites.values()
        for name, task in suite.tasks.items()
        if task.repeats is not None
    ]
    if not rows:
        return []
    lines = [
        "## Repeats",
        "",
        "Generation tasks sampled k times per item (`generation.repeats`): an item's score is "
        "the mean over its k answers; the task's, their mean over items ± standard error over "
        "items. pass@k (exact match): the chance that k answers hold a right one (Chen et al. "
        "2021's unbiased estimator). Every answer is in the per-sample log.",
        "",
        _row(["model", "task", "metric", "k", "items", "mean ± stderr", "pass@1", "pass@k"]),
        _row(["---"] * 8),
    ]
    for label, name, r in rows:
        spread = f"{r.mean:.3f} ± {r.stderr:.3f}" if r.stderr is not None else f"{r.mean:.3f}"
        one, top = r.pass_at_k.get(1), r.pass_at_k.get(r.k)
        lines.append(
            _row([label, name, r.metric, r.k, r.items, spread,
                  "—" if one is None else f"{one:.3f}", "—" if top is None else f"{top:.3f}"])
        )  # fmt: skip
    lines.append("")
    return lines


def _language_table(results: RunRecord) -> list[str]:
    """Per model and language, every task of that language with its primary metric."""
    languages: dict[str, list[str]] = {}
    for info in results.suites.values():
        for task, language in info.languages.items():
            languages.setdefault(language, [])
            if task not in languages[language]:
                languages[language].append(task)
    if not languages:
        return []
    lines = [
        "### By language",
        "",
        "Every scored task of each language: accuracy for multiple choice, exact match (with "
        "chrF, 0 to 100) for short answers, ± standard error.",
        "",
        _row(["model", "language", "scores"]),
        _row(["---"] * 3),
    ]
    for model_id, model in results.models.items():
        tasks = {
            name: task for suite in model.suites.values() for name, task in suite.tasks.items()
        }
        for language in sorted(languages):
            scored = [
                f"{name}: {_metric_text(tasks[name])}"
                for name in languages[language]
                if name in tasks
            ]
            if scored:
                lines.append(_row([model_label(model_id, results), language, "; ".join(scored)]))
    lines.append("")
    return lines


def _generation_table(results: RunRecord) -> list[str]:
    """For generation tasks: answers that came after thinking, and answers cut by the limit."""
    rows = [
        (model_label(model_id, results), task_name, task.generation)
        for model_id, model in results.models.items()
        for suite in model.suites.values()
        for task_name, task in suite.tasks.items()
        if task.generation
    ]
    if not rows:
        return []
    lines = [
        "## Generation",
        "",
        "Thinking (`<think>...</think>`) is removed before scoring. An answer that hit the token "
        "limit stopped at `max_gen_toks` without finishing; a thinking model's answer is then "
        "empty. Many such answers mean the limit is too low for the model, not that it failed.",
        "",
        _row(["model", "task", "answers", "thought first", "hit the token limit"]),
        _row(["---"] * 5),
    ]
    for label, task_name, summary in rows:
        cut = summary["hit_token_limit"]
        lines.append(
            _row([label, task_name, summary["answers"], summary["thought"],
                  f"**{cut}**" if cut else "0"])
        )  # fmt: skip
    lines.append("")
    return lines


def _speed(results: RunRecord) -> list[str]:
    models, phases = speed.model_rows(results), speed.phase_rows(results)
    if not (models or phases):
        return []
    lines = ["### Speed and memory", ""]
    if models:
        lines += [
            "Multiple-choice items per second and generated tokens per second count the work "
            "done in this run (not suites taken from the cache).",
            "",
            _row(["model", "load", "loaded from", "multiple-choice items/s", "generated tokens/s",
                  "peak memory", "shared contexts"]),
            _row(["---"] * 7),
        ]  # fmt: skip
        for r in models:
            lines.append(
                _row([model_label(r["model"], results), _seconds(r["load_seconds"]),
                      r["loaded_from"] or "—", _number(r["items_per_second"]),
                      _number(r["tokens_per_second"]), r["peak_memory"], r["context_sharing"]])
            )  # fmt: skip
        lines.append("")
    if phases:
        lines += [_row(["phase", "wall time", "peak memory"]), _row(["---"] * 3)]
        lines += [_row([p["phase"], _seconds(p["seconds"]), p["peak_memory"]]) for p in phases]
        lines.append("")
    return lines


def _model_table(results: RunRecord) -> list[str]:
    lines = [
        _row(["model", "source", "dtype", "device", "parameters", "load", "chat template",
              "status"]),
        _row(["---"] * 8),
    ]  # fmt: skip
    for model_id, model in results.models.items():
        identity = model.identity
        source = f"{identity.kind}: `{identity.location}`" if identity else "?"
        used = configured_model(results, model_id).get("chat_template")
        template = "—" if used is None else ("on" if used else "off")
        if model.chat_template_sha256:
            template += f", rendered sha256 `{model.chat_template_sha256}`"
        lines.append(
            _row(
                [
                    model_label(model_id, results),
                    source,
                    model.dtype or "—",
                    model.device or "—",
                    _count(model.parameters),
                    _seconds(model.load_seconds),
                    template,
                    model.status
                    + (" — **runs remote code**" if identity and identity.remote_code else "")
                    + (f" — alias `{identity.alias}`" if identity and identity.alias else ""),
                ]
            )
        )
    lines.append("")
    return lines


def _model_files(results: RunRecord) -> list[str]:
    """Every file of each model's identity: weights, config, tokenizer, chat template, code."""
    lines = []
    for model_id, entry in results.models.items():
        identity = entry.identity
        if identity is None or not (identity.weight_files or identity.other_files):
            continue
        lines += [
            f"Files of `{model_label(model_id, results)}` (identity digest "
            f"`{identity.digest or 'not recorded'}`):",
            "",
        ]
        lines += [
            f"- weights `{f.path}` ({f.size_bytes:,} bytes) `{f.sha256}`"
            for f in identity.weight_files
        ]
        lines += [
            f"- {f.role} `{f.name}` ({f.size_bytes:,} bytes) `{f.sha256}`"
            for f in identity.other_files
        ]
        lines.append("")
    return lines


def _suite_files(results: RunRecord) -> list[str]:
    """The task definitions of each suite, and lm-eval's hash of each task as asked."""
    lines = []
    for suite, info in results.suites.items():
        hashes = task_hashes(results, [suite, *info.tasks])
        if not (info.definition_files or hashes):
            continue
        lines += [f"Suite `{suite}` (from `{info.source}`):", ""]
        lines += [
            f"- {f.role} `{f.name}` ({f.size_bytes:,} bytes) `{f.sha256}`"
            for f in info.definition_files
        ]
        for task, by_model in hashes:
            if len(set(by_model.values())) == 1:
                text = f"`{next(iter(by_model.values()))}` (every model)"
            else:
                text = "; ".join(f"{model_label(m, results)}: `{h}`" for m, h in by_model.items())
            lines.append(f"- task hash of `{task}`: {text}")
        lines.append("")
    return ["## Suites", "", *lines] if lines else []


def _tokenizer_table(results: RunRecord) -> list[str]:
    """Tokenizer fitness: per model and language, what the tokenizer costs on the suite text."""
    rows = [
        (model_label(model_id, results), language, fit)
        for model_id, model in results.models.items()
        for language, fit in (model.tokenizer or {}).items()
        if isinstance(fit, dict)
    ]
    if not rows:
        return []
    lines = [
        "## Tokenizer fitness",
        "",
        "On the text of the items scored (prompts and choices or answers). Round-trip: share of "
        "texts that decode back unchanged. Context: tokens of the median item (prompt and longest "
        "continuation) against the model's context window.",
        "",
        _row(["model", "language", "tokens/word", "tokens/char", "round-trip", "unknown",
              "median item", "context"]),
        _row(["---"] * 8),
    ]  # fmt: skip
    for label, language, fit in rows:
        share = fit.get("context_share")
        lines.append(
            _row(
                [
                    label,
                    language,
                    _number(fit.get("tokens_per_word")),
                    _number(fit.get("tokens_per_char")),
                    _percent(fit.get("roundtrip_lossless")),
                    _percent(fit.get("unknown_rate")),
                    f"{fit.get('median_item_tokens', 0):g} tokens",
                    f"{share:.2%} of {fit['context_window']:,}" if share is not None else "—",
                ]
            )
        )
    lines.append("")
    return lines


def _number(value) -> str:
    return f"{value:.2f}" if value is not None else "—"


def _percent(value) -> str:
    return f"{value:.1%}" if value is not None else "—"


def _preflight(results: RunRecord) -> list[str]:
    """The memory plan made before loading: needed against available, per model."""
    preflight = results.preflight
    if not preflight:
        return []
    lines = [
        "Memory preflight (from each config, before loading"
        + ("" if preflight.get("enforced") else "; not enforced: `--no-preflight`")
        + "):",
        "",
    ]
    for model_id, plan in preflight["models"].items():
        label = model_label(model_id, results)
        if plan["parameters"] is None:
            lines.append(f"- {label}: unknown ({plan['note']})")
            continue
        lines.append(
            f"- {label}: needs {plan['need_bytes'] / 2**30:.1f} GiB on {plan['target']} "
            f"(weights {plan['weights_bytes'] / 2**30:.1f} GiB at {plan['dtype']}, batch "
            f"{plan['batch']} x {plan['context']} tokens), "
            f"{plan['available_bytes'] / 2**30:.1f} GiB available: **{plan['verdict']}**"
        )
    lines.append("")
    return lines


def _environment(env: dict) -> list[str]:
    hw = env.get("hardware", {})
    memory = hw.get("memory_bytes")
    lines = [
        f"- Machine: {hw.get('cpu', '?')}, {hw.get('cpu_count', '?')} CPUs, "
        f"{memory / 2**30:.1f} GiB RAM"
        if memory
        else f"- Machine: {hw.get('cpu', '?')}",
        f"- OS: {hw.get('os', '?')} ({hw.get('machine', '?')})",
    ]
    for gpu in hw.get("gpus", []):
        lines.append(
            f"- GPU {gpu['index']}: {gpu['name']}, {gpu['memory_bytes'] / 2**30:.1f} GiB, "
            f"compute capability {gpu['compute_capability']}"
        )
    if not hw.get("gpus"):
        lines.append("- GPU: none used")
    versions = ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items() if v)
    lines += [f"- Software: {versions}", ""]
    return lines


def _attestation(results: RunRecord) -> list[str]:
    offline = results.offline
    attempts = offline.attempts
    policy = offline.policy
    guard = offline.guard
    env = ", ".join(f"`{k}={v}`" for k, v in offline.env.items() if v is not None)
    who_set = (
        "set by harness before any library loaded"
        if offline.set_offline_env
        else "NOT set by harness (disabled in the config)"
    )
    lines = [
        f"- Policy: **{policy.get('mode', '?')}** (loopback "
        f"{'allowed' if policy.get('allow_loopback') else 'forbidden'} by the guard)",
        f"- Sandbox: {_sandbox_text(offline.sandbox)}",
        f"- Isolation: {_isolation_text(offline.isolation)}",
        f"- Kernel layer: {_kernel_text(offline.kernel)}",
        *(f"- Serving engine: {line}" for line in server_lines(results)),
        f"- Network guard: Python audit hook, "
        f"{'installed' if guard.installed else 'NOT installed'}; self-test "
        f"{'passed' if guard.self_test.passed else 'FAILED'} ({guard.self_test.method})",
        f"- Guard scope: {guard.scope}",
        f"- Offline variables {who_set}: {env}",
    ]
    if offline.imported_before_env:
        lines.append(
            "- Warning: imported before the variables were set: "
            + ", ".join(offline.imported_before_env)
        )
    lines += [f"- Network attempts during the run: **{len(attempts)}**", ""]
    if attempts:
        lines += [
            _row(["time", "seen by", "pid", "program", "event", "target", "package", "origin",
                  "blocked"]),
            _row(["---"] * 9),
        ]  # fmt: skip
        for a in attempts:
            target = f"{a.host}:{a.port}" if a.port else a.host
            lines.append(
                _row([a.time, a.seen_by, a.pid if a.pid is not None else "",
                      f"`{a.executable or ''}`", a.event, f"`{target}`", a.package or "",
                      f"`{a.origin or ''}`", "yes" if a.blocked else "no"])
            )  # fmt: skip
        lines.append("")
    else:
        lines += ["No attempt to resolve or reach a host other than loopback was seen.", ""]
    files = offline.files
    if files.weights or files.data:
        lines += ["Files read (sha256):", ""]
        lines += [
            f"- {f.role or 'weights'} of `{model_label(f.model or '?', results)}`: "
            f"`{f.real_path}` ({f.size_bytes:,} bytes) `{f.sha256}`"
            for f in files.weights
        ]
        lines += [
            f"- data of `{f.suite}`: `{f.path}` ({f.size_bytes:,} bytes) `{f.sha256}`"
            for f in files.data
        ]
        lines += ["", "`harness attest <this directory>` re-checks these hashes.", ""]
    return lines


def _sandbox_text(sandbox: SandboxRecord) -> str:
    if not sandbox.enforced:
        return f"**NONE** ({sandbox.reason or 'not recorded'})"
    capture = sandbox.capture
    parts = [
        f"{sandbox.tool or 'bubblewrap'}: {', '.join(sandbox.namespaces)} "
        f"namespaces; capabilities {sandbox.capabilities or '?'}",
        "evidence from outside: seccomp filter answered by the supervisor; capture device "
        + ("on" if capture and capture.enabled else f"MISSING ({capture and capture.reason})"),
        f"self-test {'passed' if sandbox.self_test and sandbox.self_test.passed else 'FAILED'}",
    ]
    return "; ".join(parts)


def _isolation_text(isolation: IsolationRecord) -> str:
    if isolation.isolated:
        routes = "?" if isolation.routes_leaving is None else isolation.routes_leaving
        return (
            f"private network namespace by {isolation.method}; interfaces: "
            f"{', '.join(isolation.interfaces)}; routes leaving: {routes}"
        )
    prefix = "NOT isolated (fallback)" if isolation.fallback else "none"
    return f"{prefix}: {isolation.reason or ''}"


def _kernel_text(kernel: KernelRecord) -> str:
    if kernel.enforced:
        return f"{kernel.method} filter denies {', '.join(kernel.denies)}"
    return f"not kernel-enforced (recorded only): {kernel.reason or '?'}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _count(value) -> str:
    if not value:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return str(value)


def _seconds(value) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) else "—"

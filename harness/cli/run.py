"""`harness run`, `validate` and `plan`: a config's models and suites."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.cli._common import (
    Verbosity,
    config_file_argument,
    console,
    data_dir_option,
    error,
    guarded,
    main,
    model_path_option,
    offline_for_lookups,
    plain_row,
    print_json,
    quiet_libraries,
    wide_console,
    with_data_dir,
)

if TYPE_CHECKING:
    from harness.record import GatesRecord, RunRecord


@main.command("run")
@config_file_argument
@model_path_option
@data_dir_option
@click.option(
    "--limit", type=click.IntRange(min=1), help="Score only the first N items of each task."
)
@click.option(
    "--output",
    "output_dir",
    type=click.Path(path_type=Path),
    help="Results root (default: the config's output_dir, `results`).",
)
@click.option(
    "--model", "models", multiple=True, metavar="ID", help="Run only this model id (repeatable)."
)
@click.option(
    "--suite",
    "suites",
    multiple=True,
    metavar="NAME",
    help="Run only this suite (repeatable; any lm-eval task or group).",
)
@click.option(
    "--isolate",
    is_flag=True,
    help="Run inside a fresh network namespace with only loopback (offline mode isolate).",
)
@click.option(
    "--audit",
    is_flag=True,
    help="Record and block network attempts without failing the run (offline mode audit).",
)
@click.option(
    "--no-preflight",
    is_flag=True,
    help="Load models even when the memory preflight says they do not fit.",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="Score everything again instead of reusing what this model identity already scored.",
)
@click.option(
    "--baseline",
    metavar="RUN_DIR|previous",
    help="The run that max_drop gates compare with (overrides the config's baseline).",
)
@click.option(
    "--lock",
    "lock_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Check every file against this lock file (default: <config>.lock.json beside the "
    "config, when there is one).",
)
@click.option("--no-lock", is_flag=True, help="Do not check the files against a lock file.")
@click.option(
    "--sign",
    "sign_key",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="KEY",
    help="Sign the finished run with this private key (`harness keygen`): an in-toto "
    "statement in attestation.intoto.json.",
)
def run_command(
    config_file: Path,
    limit,
    output_dir,
    models,
    suites,
    isolate,
    audit,
    no_preflight,
    model_paths,
    data_dir,
    no_cache,
    baseline,
    lock_file,
    no_lock,
    sign_key,
) -> None:
    """Score the config's models on its suites and write results/<name>/<time>/."""
    from harness.config import load_config
    from harness.offline.isolation import IsolationUnavailable, inside_isolation, rerun_isolated
    from harness.offline.policy import UNAVAILABLE_ENV
    from harness.phases import process_age
    from harness.runner import run, select, substitute_paths

    def work() -> int:
        if lock_file and no_lock:
            raise click.UsageError("--lock and --no-lock exclude each other")
        if isolate and audit:
            raise click.UsageError(
                "--isolate and --audit exclude each other: each sets the offline mode. "
                "--isolate blocks and fails on any network attempt inside a fresh network "
                "namespace; --audit blocks and records without failing. Give one."
            )
        config = substitute_paths(load_config(config_file), list(model_paths))
        config = select(with_data_dir(config, data_dir), list(models), list(suites))
        if sign_key is not None:
            from harness.errors import BadInputError
            from harness.signing import check_private_key, key_exposure

            check_private_key(sign_key)  # a bad key fails now, not after hours of scoring
            if problem := key_exposure(sign_key, config):
                raise BadInputError(f"--sign {sign_key}: {problem}")
        if limit:
            config = config.model_copy(update={"limit": limit})
        if baseline:
            config = config.model_copy(update={"baseline": baseline})
        if no_cache:
            config = config.model_copy(update={"cache": False})
        if isolate or audit:
            mode = "isolate" if isolate else "audit"
            policy = config.offline.model_copy(update={"mode": mode})
            config = config.model_copy(update={"offline": policy})
        if (
            config.offline.mode == "isolate"
            and not config.offline.sandbox  # the sandbox has a namespace of its own per worker
            and not inside_isolation()
        ):
            try:
                return rerun_isolated(sys.argv[1:])
            except IsolationUnavailable as exc:
                if not config.offline.isolation_fallback:
                    raise
                console.print(Text.assemble(("not isolated:", "yellow"), f" {exc}"))
                os.environ[UNAVAILABLE_ENV] = str(exc)
        quiet_libraries()
        from harness import progress
        from harness.reports.progress import RunDisplay, display_mode

        # One display for the whole run: this process's steps and progress, and the
        # workers' progress relayed by the supervisor (`harness.progress`).
        with RunDisplay(console, display_mode(console, Verbosity.quiet)) as display:
            previous = progress.set_sink(display.event)
            try:
                result = run(
                    config,
                    config_file=config_file,
                    output_dir=output_dir,
                    say=display.step,
                    show_progress=True,
                    preflight=not no_preflight,
                    started_at=time.perf_counter() - (process_age() or 0.0),
                    lock_file=lock_file,
                    use_lock=not no_lock,
                )
            finally:
                progress.set_sink(previous)
        _print_outcome(result, config.offline.mode)
        if sign_key is not None:
            from harness.signing import sign_run

            envelope = sign_run(result.run_dir, sign_key)
            if not Verbosity.quiet:
                console.print(
                    Text(
                        f"signed: {envelope} (verify: harness attest {result.run_dir} --verify "
                        "KEY.pub)"
                    )
                )
        return result.exit_code

    sys.exit(guarded(work))


@main.command("validate")
@config_file_argument
@model_path_option
@data_dir_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the findings as JSON on stdout (see docs/validate.md).",
)
@click.option(
    "--no-preflight",
    is_flag=True,
    help="Skip the memory check, as `run --no-preflight` would.",
)
def validate_command(config_file: Path, model_paths, data_dir, as_json, no_preflight) -> None:
    """Check a config as `run` would, without loading any model: schema, models, suites and
    their data, task code imports, gates, lock file, baseline, memory and sandbox.

    Exit 0 when `run` would start scoring, 2 when it would refuse or fail first (every problem
    is listed, not only the first)."""

    def work() -> int:
        offline_for_lookups()
        from harness.validation import validate

        report = validate(
            config_file,
            model_paths=list(model_paths),
            data_dir=data_dir,
            preflight=not no_preflight,
        )
        if as_json:
            click.echo(report.model_dump_json(indent=2))
        else:
            _print_validation(report)
        return report.exit_code

    sys.exit(guarded(work))


def _print_validation(report) -> None:
    """Information plain, warnings yellow, errors red with their fix; then the verdict and
    what validate cannot know."""
    from rich.markup import escape

    from harness.cli._common import Verbosity

    colours = {"error": "red", "warning": "yellow"}
    for finding in report.findings:
        if Verbosity.quiet and finding.level == "info":
            continue
        text = f"{escape(finding.subject)}: {escape(finding.message)}"
        if finding.fix:
            text += f" {escape(finding.fix)}"
        colour = colours.get(finding.level)
        label = f"[{colour}]{finding.level}:[/{colour}] " if colour else ""
        console.print(label + text, highlight=False)
    if report.ok:
        console.print(f"[green]{escape(report.config)}: valid[/green]", highlight=False)
    else:
        errors = len(report.errors)
        console.print(
            f"[red]{escape(report.config)}: {errors} error(s)[/red]: `harness run` would "
            "refuse the run or fail before scoring.",
            highlight=False,
        )
    if not Verbosity.quiet:
        console.print(
            "[dim]not checked without loading: " + escape("; ".join(report.unchecked)) + "[/dim]",
            highlight=False,
        )


@main.command("plan")
@config_file_argument
@model_path_option
@click.option(
    "--context",
    type=click.IntRange(min=1),
    help="Tokens per sequence to plan the KV cache and logits for (default: the model's "
    "generation.max_length, else 2048; for backend vllm, else the model's whole context).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout (sizes in bytes)."
)
def plan_command(config_file: Path, context, model_paths, as_json) -> None:
    """Will each model of CONFIG fit this machine? Decided from its config, nothing loaded.

    Models not on this machine are planned from harness's bundled reference config for their
    repo id, so the answer comes before a download."""
    from harness.config import load_config

    def work() -> int:
        from harness.runner import substitute_paths

        config = substitute_paths(load_config(config_file), list(model_paths))
        offline_for_lookups(config.offline.allow_loopback)
        from harness.capacity.hardware import detect_hardware
        from harness.capacity.preflight import plan_models
        from harness.models.engines import engine_problems
        from harness.reports import console as tables

        hardware = detect_hardware()
        plans = plan_models(config, hardware, context=context)
        problems = {
            spec.id: list(engine_problems(spec, config_file=config_file)) for spec in config.models
        }
        if as_json:
            print_json(tables.plan_json(hardware, plans, {k: v for k, v in problems.items() if v}))
            return 0
        out = wide_console()
        out.print(Text(tables.hardware_line(hardware)), soft_wrap=False)
        out.print(tables.plan_table(plans))
        out.print(tables.memory_table(plans))
        out.print(tables.formats_table(plans))
        for line in tables.plan_notes(plans):
            out.print(Text(line), soft_wrap=False)
        for model_id, found in problems.items():
            for problem in found:
                out.print(Text(f"{model_id}: {problem}"), soft_wrap=False)
        return 0

    sys.exit(guarded(work))


def _print_outcome(result, mode: str) -> None:
    """After the run: its warnings, scope, scores, report path, failures and verdict; with -q
    only failures, errors and the verdict."""
    from harness.reports.signoff import sandbox_warning
    from harness.sandbox.loopback import outside_warning
    from harness.scope import scope_lines

    record = result.record
    attempts = record.offline.attempts
    if not Verbosity.quiet:
        if warning := sandbox_warning(record):
            console.print(Text(warning, style="red"))
        if outside := outside_warning(record):
            console.print(Text(outside, style="red"))
        for line in scope_lines(record):
            console.print(Text(line, style="bold yellow"))
        _print_summary(record)
        console.print(
            Text.assemble(
                f"network attempts: {len(attempts)}",
                (" (blocked; see the report)" if attempts else "", "red"),
            )
        )
        console.print(Text(f"report: {result.run_dir}/report.html (and report.md, results.json)"))
    for failure in result.failures:
        error(failure, "failed:")
    _print_gates(record.gates)
    if record.gates is None and Verbosity.quiet:
        style = "green" if record.status == "complete" else "red"
        console.print(Text.assemble("run: ", (record.status, style), f" ({result.run_dir})"))
    if result.exit_code == 3:
        error(
            f"{len(attempts)} network attempt(s) under offline mode {mode}; the run cannot be "
            "attested as offline"
        )


def _print_gates(gates: GatesRecord | None) -> None:
    if gates is None:
        return
    counts = ", ".join(f"{n} {status}" for status, n in sorted(gates.counts.items()))
    if not gates.judged:
        judged = Text.assemble("gates: ", ("NOT JUDGED", "yellow"), f" (partial run; {counts})")
        console.print(judged)
        return
    colour = "green" if gates.passed else "red"
    console.print(
        Text.assemble("gates: ", ("passed" if gates.passed else "FAILED", colour), f" ({counts})")
    )
    from harness.gates import failing

    for check in gates.checks:
        if check.status in failing(gates.inconclusive_fails):
            console.print(
                Text.assemble(
                    "  ",
                    (check.status, "red"),
                    f" {check.gate}: {check.model} {check.task} {check.metric}: {check.detail}",
                )
            )


def _print_summary(record: RunRecord) -> None:
    from harness.evaluation import primary_metric

    table = Table("model", "suite", "task", "metric", "value", "± stderr", "n")
    for model_id, model in record.models.items():
        if model.status == "skipped":
            plain_row(table, model_id, "—", "—", "—", Text("skipped: not here", "yellow"), "", "")
        if model.status == "failed" and not model.suites:
            # No suite finished: it failed to load, or its worker or engine died while scoring.
            what = "failed to load" if model.load_seconds is None else "failed (see error)"
            plain_row(table, model_id, "—", "—", "—", Text(what, "red"), "", "")
        for suite, result in model.suites.items():
            if result.status == "failed":
                plain_row(table, model_id, suite, "—", "—", Text("failed", "red"), "", "")
                continue
            for task, task_result in result.tasks.items():
                if not task_result.metrics:
                    continue  # a group without an aggregate score
                name, value, stderr = primary_metric(task_result.metrics)
                counts = task_result.n_samples
                metric = name.split(",")[0]
                if (repeats := task_result.repeats) is not None:  # value: mean over k samples
                    top = repeats.pass_at_k.get(repeats.k)
                    metric += f" k={repeats.k}" + (f" pass@{repeats.k} {top:.3f}" if top else "")
                plain_row(
                    table,
                    model_id,
                    suite,
                    task,
                    metric,
                    f"{value:.3f}" if value is not None else "n/a",
                    f"{stderr:.3f}" if stderr is not None else "",
                    str(counts.effective) if counts else "",
                )
    Console().print(table)

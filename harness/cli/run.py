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

from harness.cli._common import (
    console,
    data_dir_option,
    guarded,
    main,
    model_path_option,
    offline_for_lookups,
    quiet_libraries,
    say,
    wide_console,
    with_data_dir,
)

if TYPE_CHECKING:
    from harness.record import GatesRecord, RunRecord


@main.command("run")
@click.argument("config_file", type=click.Path(path_type=Path))
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
                console.print(f"[yellow]not isolated:[/yellow] {exc}")
                os.environ[UNAVAILABLE_ENV] = str(exc)
        quiet_libraries()
        result = run(
            config,
            config_file=config_file,
            output_dir=output_dir,
            say=say,
            show_progress=True,
            preflight=not no_preflight,
            started_at=time.perf_counter() - (process_age() or 0.0),
            lock_file=lock_file,
            use_lock=not no_lock,
        )
        from rich.markup import escape

        from harness.reports.signoff import sandbox_warning
        from harness.scope import scope_lines

        record = result.record
        if warning := sandbox_warning(record):
            console.print(f"[red]{warning}[/red]", highlight=False)
        for line in scope_lines(record):
            console.print(f"[bold yellow]{escape(line)}[/bold yellow]", highlight=False)
        _print_summary(record)
        attempts = record.offline.attempts
        console.print(
            f"network attempts: {len(attempts)}"
            + ("" if not attempts else " [red](blocked; see the report)[/red]")
        )
        console.print(f"report: {result.run_dir}/report.html (and report.md, results.json)")
        for failure in result.failures:
            console.print(f"[red]failed:[/red] {failure}")
        _print_gates(record.gates)
        if result.exit_code == 3:
            console.print(
                f"[red]error:[/red] {len(attempts)} network attempt(s) under offline mode "
                f"{config.offline.mode}; the run cannot be attested as offline"
            )
        if sign_key is not None:
            from harness.signing import sign_run

            envelope = sign_run(result.run_dir, sign_key)
            console.print(
                f"signed: {envelope} (verify: harness attest {result.run_dir} --verify KEY.pub)"
            )
        return result.exit_code

    sys.exit(guarded(work))


@main.command("validate")
@click.argument("config_file", type=click.Path(path_type=Path))
@model_path_option
@data_dir_option
def validate_command(config_file: Path, model_paths, data_dir) -> None:
    """Check a config without loading any model: schema, files, models and suites.

    Every model is checked; exit 2 if one is not on this machine (`run` would skip it)."""
    from harness.config import load_config
    from harness.errors import ModelNotFoundError
    from harness.runner import substitute_paths

    def work() -> int:
        config = substitute_paths(load_config(config_file), list(model_paths))
        config = with_data_dir(config, data_dir)
        offline_for_lookups(config.offline.allow_loopback)
        from harness.models import resolve_model_source
        from harness.models.engines import engine_problems
        from harness.suites import SuiteCatalog

        absent, unrunnable = [], []
        for spec in config.models:
            try:
                source = resolve_model_source(spec)
            except ModelNotFoundError as exc:
                absent.append(spec.id)
                console.print(f"[yellow]model {spec.id}: not on this machine[/yellow]: {exc}")
                continue
            size = sum(p.stat().st_size for p in source.weight_files)
            console.print(f"model {spec.id}: {source.describe()} ({size / 2**20:,.0f} MiB)")
            for problem in engine_problems(spec, source, config_file):
                unrunnable.append(spec.id)
                console.print(f"[red]model {spec.id}: cannot run here[/red]: {problem}")
        for info in SuiteCatalog(config.task_paths, config.data_dir).check(config.suites):
            items = f", {info.total_items} items" if info.items else ""
            console.print(f"suite {info.name}: {info.kind}, {len(info.tasks)} task(s){items}")
        unpinned = _lock_summary(config, config_file)
        if unrunnable:
            names = ", ".join(dict.fromkeys(unrunnable))
            console.print(
                f"[red]error:[/red] the engine of {names} cannot run here (see above): "
                "`harness run` would refuse the run."
            )
        sandbox = None
        if config.offline.sandbox:
            from harness.sandbox import sandbox_problem

            if sandbox := sandbox_problem():
                console.print(f"[red]error:[/red] the sandbox cannot run here: {sandbox}")
            else:
                console.print("sandbox: available (each model will run in its own)")
        else:
            console.print("[yellow]sandbox: off in this config (NOT SANDBOXED)[/yellow]")
        if absent:
            console.print(
                f"[red]error:[/red] {len(absent)} of {len(config.models)} model(s) are not on "
                f"this machine ({', '.join(absent)}): `harness run` would skip them. Copy them "
                "here, or substitute local copies with --model-path ID=PATH."
            )
            return 2
        if unrunnable or sandbox or unpinned:
            return 2
        console.print(f"[green]{config_file}: valid[/green]")
        return 0

    sys.exit(guarded(work))


def _lock_summary(config, config_file: Path) -> bool:
    """Say which lock file `run` will check the files against; True when it does not pin
    every model and suite of the config (the run would refuse)."""
    from harness.lock import lock_path, read_lock

    path = lock_path(config_file)
    if not path.is_file():
        console.print(f"lock: none ({path.name} would pin the files: `harness lock`)")
        return False
    lock = read_lock(path)
    missing = [f"model {m.id}" for m in config.models if m.id not in lock.models]
    missing += [f"suite {name}" for name in config.suites if name not in lock.suites]
    if missing:
        console.print(
            f"[red]error:[/red] {path} does not pin {', '.join(missing)}: `harness run` would "
            "refuse. Run `harness lock` again."
        )
        return True
    console.print(f"lock: {path} (run checks every file against it before loading)")
    return False


@main.command("plan")
@click.argument("config_file", type=click.Path(path_type=Path))
@model_path_option
@click.option(
    "--context",
    type=click.IntRange(min=1),
    help="Tokens per sequence to plan the KV cache and logits for (default: the model's "
    "generation.max_length, else 2048; for backend vllm, else the model's whole context).",
)
def plan_command(config_file: Path, context, model_paths) -> None:
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
        from harness.reports import console as tables

        hardware = detect_hardware()
        plans = plan_models(config, hardware, context=context)
        out = wide_console()
        out.print(tables.hardware_line(hardware))
        out.print(tables.plan_table(plans))
        out.print(tables.formats_table(plans))
        for line in tables.plan_notes(plans):
            out.print(line, highlight=False)
        from harness.models.engines import engine_problems

        for spec in config.models:
            for problem in engine_problems(spec, config_file=config_file):
                out.print(f"{spec.id}: {problem}", highlight=False)
        return 0

    sys.exit(guarded(work))


def _print_gates(gates: GatesRecord | None) -> None:
    if gates is None:
        return
    counts = ", ".join(f"{n} {status}" for status, n in sorted(gates.counts.items()))
    if not gates.judged:
        console.print(f"gates: [yellow]NOT JUDGED[/yellow] (partial run; {counts})")
        return
    colour = "green" if gates.passed else "red"
    console.print(
        f"gates: [{colour}]{'passed' if gates.passed else 'FAILED'}[/{colour}] ({counts})"
    )
    from harness.gates import failing

    for check in gates.checks:
        if check.status in failing(gates.inconclusive_fails):
            console.print(
                f"  [red]{check.status}[/red] {check.gate}: {check.model} "
                f"{check.task} {check.metric}: {check.detail}"
            )


def _print_summary(record: RunRecord) -> None:
    from harness.evaluation import primary_metric

    table = Table("model", "suite", "task", "metric", "value", "± stderr", "n")
    for model_id, model in record.models.items():
        if model.status == "skipped":
            table.add_row(model_id, "—", "—", "—", "[yellow]skipped: not here[/yellow]", "", "")
        if model.status == "failed" and not model.suites:
            table.add_row(model_id, "—", "—", "—", "[red]failed to load[/red]", "", "")
        for suite, result in model.suites.items():
            if result.status == "failed":
                table.add_row(model_id, suite, "—", "—", "[red]failed[/red]", "", "")
                continue
            for task, task_result in result.tasks.items():
                if not task_result.metrics:
                    continue  # a group without an aggregate score
                name, value, stderr = primary_metric(task_result.metrics)
                counts = task_result.n_samples
                table.add_row(
                    model_id,
                    suite,
                    task,
                    name.split(",")[0],
                    f"{value:.3f}" if value is not None else "n/a",
                    f"{stderr:.3f}" if stderr is not None else "",
                    str(counts.effective) if counts else "",
                )
    Console().print(table)

"""The `harness` command: parses arguments, calls the library, renders, maps errors to exit codes.

Exit codes: 0 everything ran; 1 a model or suite failed to run; 2 bad input (nothing was run);
3 a network attempt under a strict offline policy (or a guard that failed its self-test);
4 a gate failed; 130 interrupted. Heavy libraries are imported only inside commands, after the
offline variables are set, so `harness --help` is instant.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError
from harness.families.catalog import FAMILIES

console = Console(stderr=True, highlight=False, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="harness")
def main() -> None:
    """Score open-weight models on local-language suites, offline, with an attestation that
    nothing left the machine."""


def _data_dir_option(command):
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path, exists=True, file_okay=False),
        help="Local copies of hub datasets, <DIR>/<org>/<name>/ (overrides the config's data_dir).",
    )(command)


def _with_data_dir(config, data_dir: Path | None):
    return (
        config if data_dir is None else config.model_copy(update={"data_dir": data_dir.resolve()})
    )


def _model_path_option(command):
    return click.option(
        "--model-path",
        "model_paths",
        multiple=True,
        metavar="ID=PATH",
        help="Load model ID from this local directory or .gguf file instead (repeatable).",
    )(command)


@main.command("run")
@click.argument("config_file", type=click.Path(path_type=Path))
@_model_path_option
@_data_dir_option
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
) -> None:
    """Score the config's models on its suites and write results/<name>/<time>/."""
    from harness.config import load_config
    from harness.offline.isolation import IsolationUnavailable, inside_isolation, rerun_isolated
    from harness.offline.policy import UNAVAILABLE_ENV
    from harness.runner import run, select, substitute_paths

    def work() -> int:
        config = substitute_paths(load_config(config_file), list(model_paths))
        config = select(_with_data_dir(config, data_dir), list(models), list(suites))
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
        if config.offline.mode == "isolate" and not inside_isolation():
            try:
                return rerun_isolated(sys.argv[1:])
            except IsolationUnavailable as exc:
                if not config.offline.isolation_fallback:
                    raise
                console.print(f"[yellow]not isolated:[/yellow] {exc}")
                os.environ[UNAVAILABLE_ENV] = str(exc)
        _quiet_libraries()
        result = run(
            config,
            config_file=config_file,
            output_dir=output_dir,
            say=_say,
            show_progress=True,
            preflight=not no_preflight,
        )
        _print_summary(result.data)
        attempts = result.data["offline"]["attempts"]
        console.print(
            f"network attempts: {len(attempts)}"
            + ("" if not attempts else " [red](blocked; see the report)[/red]")
        )
        console.print(f"results: {result.run_dir}/report.md")
        for failure in result.failures:
            console.print(f"[red]failed:[/red] {failure}")
        _print_gates(result.data.get("gates"))
        if result.exit_code == 3:
            console.print(
                f"[red]error:[/red] {len(attempts)} network attempt(s) under offline mode "
                f"{config.offline.mode}; the run cannot be attested as offline"
            )
        return result.exit_code

    sys.exit(_guarded(work))


@main.command("validate")
@click.argument("config_file", type=click.Path(path_type=Path))
@_model_path_option
@_data_dir_option
def validate_command(config_file: Path, model_paths, data_dir) -> None:
    """Check a config without loading any model: schema, files, models and suites.

    Every model is checked; exit 2 if one is not on this machine (`run` would skip it)."""
    from harness.config import load_config
    from harness.errors import ModelNotFoundError
    from harness.runner import substitute_paths

    def work() -> int:
        config = substitute_paths(load_config(config_file), list(model_paths))
        config = _with_data_dir(config, data_dir)
        _offline_for_lookups(config.offline.allow_loopback)
        from harness.models import resolve_model_source
        from harness.suites import SuiteCatalog

        absent = []
        for spec in config.models:
            try:
                source = resolve_model_source(spec)
            except ModelNotFoundError as exc:
                absent.append(spec.id)
                console.print(f"[yellow]model {spec.id}: not on this machine[/yellow]: {exc}")
                continue
            size = sum(p.stat().st_size for p in source.weight_files)
            console.print(f"model {spec.id}: {source.describe()} ({size / 2**20:,.0f} MiB)")
        for info in SuiteCatalog(config.task_paths, config.data_dir).check(config.suites):
            items = f", {info.total_items} items" if info.items else ""
            console.print(f"suite {info.name}: {info.kind}, {len(info.tasks)} task(s){items}")
        if absent:
            console.print(
                f"[red]error:[/red] {len(absent)} of {len(config.models)} model(s) are not on "
                f"this machine ({', '.join(absent)}): `harness run` would skip them. Copy them "
                "here, or substitute local copies with --model-path ID=PATH."
            )
            return 2
        console.print(f"[green]{config_file}: valid[/green]")
        return 0

    sys.exit(_guarded(work))


@main.command("plan")
@click.argument("config_file", type=click.Path(path_type=Path))
@_model_path_option
@click.option(
    "--context",
    type=click.IntRange(min=1),
    help="Tokens per sequence to plan the KV cache and logits for (default: the model's "
    "generation.max_length, else 2048).",
)
def plan_command(config_file: Path, context, model_paths) -> None:
    """Will each model of CONFIG fit this machine? Decided from its config, nothing loaded.

    Models not on this machine are planned from harness's bundled reference config for their
    repo id, so the answer comes before a download."""
    from harness.config import load_config

    def work() -> int:
        from harness.runner import substitute_paths

        config = substitute_paths(load_config(config_file), list(model_paths))
        _offline_for_lookups(config.offline.allow_loopback)
        from harness.capacity.hardware import detect_hardware
        from harness.capacity.preflight import plan_models
        from harness.reports import console as tables

        hardware = detect_hardware()
        plans = plan_models(config, hardware, context=context)
        out = _wide_console()
        out.print(tables.hardware_line(hardware))
        out.print(tables.plan_table(plans))
        out.print(tables.formats_table(plans))
        for line in tables.plan_notes(plans):
            out.print(line, highlight=False)
        return 0

    sys.exit(_guarded(work))


@main.command("selftest")
@click.option(
    "--family",
    "families",
    multiple=True,
    type=click.Choice([f.name for f in FAMILIES]),
    help="Check only this family (repeatable; default: all).",
)
def selftest_command(families) -> None:
    """Build a tiny replica of each seed architecture and check it end to end on this stack.

    Exit 0 when every check of every family passes, 1 otherwise."""

    def work() -> int:
        _offline_for_lookups()
        from transformers.utils import logging as transformers_logging

        from harness.environment import package_versions
        from harness.families.selftest import CHECKS, run_selftest
        from harness.reports.console import selftest_table

        transformers_logging.disable_progress_bar()
        with console.status("building and checking") as status:
            results = run_selftest(
                list(families) or None, progress=lambda name: status.update(f"checking {name}")
            )
        out = _wide_console()
        out.print(selftest_table(results, CHECKS))
        versions = package_versions()
        out.print(
            "transformers {transformers}, torch {torch}, lm-eval {lm_eval}".format(
                **{k: versions.get(k, "?") for k in ("transformers", "torch", "lm_eval")}
            ),
            highlight=False,
        )
        failed = [r for r in results if not r.passed]
        for result in failed:
            for name, ok in result.checks.items():
                if ok is False:
                    console.print(f"[red]{result.family.name} {name}:[/red] {result.details[name]}")
        return 1 if failed else 0

    sys.exit(_guarded(work))


@main.command("tasks")
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Extra task directory (repeatable).",
)
@click.option(
    "--available",
    is_flag=True,
    help="Also list lm-eval's standard benchmarks for the languages in view, and whether the "
    "data of each is on this machine.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Local copies of hub datasets, as a config's `data_dir:` (with --available).",
)
@click.option(
    "--suite",
    "suites",
    multiple=True,
    metavar="NAME",
    help="Also check this lm-eval task or group (repeatable; with --available).",
)
@click.option(
    "--language",
    "languages",
    multiple=True,
    metavar="CODE",
    help="Only the standard benchmarks of this language (repeatable; with --available).",
)
def tasks_command(paths, available, data_dir, suites, languages) -> None:
    """List the suites found in tasks/ (and --path), with languages and sizes.

    With --available, also lm-eval's standard benchmarks for the languages in view (and any
    --suite), each with where its data is on this machine or which dataset is missing."""

    def work() -> int:
        _offline_for_lookups()
        from harness.suites import SuiteCatalog

        catalog = SuiteCatalog(list(paths), data_dir)
        table = Table("suite", "kind", "tasks", "languages", "items", "data", "defined in")
        names = catalog.local_suite_names()
        manager = catalog.local
        if available:
            from harness.suites.benchmarks import standard_suites

            with console.status("reading lm-eval's task registry"):
                manager = catalog.full()
            names += [name for _, name in standard_suites(list(languages))] + list(suites)
        broken = 0
        for name in dict.fromkeys(names):
            if name not in manager.task_index:
                table.add_row(name, "—", "—", "—", "—", "[red]unknown suite[/red]", "")
                broken += 1
                continue
            try:
                info = catalog.describe(name, manager)
            except HarnessError as exc:
                table.add_row(name, "—", "—", "—", "—", f"[red]broken[/red]: {exc}", "")
                broken += 1
                continue
            table.add_row(*_suite_cells(info))
        _wide_console().print(table)
        return 2 if broken else 0

    sys.exit(_guarded(work))


def _suite_cells(info) -> list[str]:
    languages = ", ".join(sorted(set(info.languages.values()))) or "—"
    return [
        info.name,
        info.kind,
        str(len(info.tasks)),
        languages,
        str(info.total_items) if info.items else "—",
        _data_status(info),
        _short(info.source),
    ]


def _data_status(info) -> str:
    """Where a suite's data is: local files, or its hub datasets found and missing."""
    located = {loc.need: loc for loc in info.sources.values()}
    if not located:
        status = "local files" if info.items else "—"
    else:
        here = [loc for loc in located.values() if loc.present]
        places = ", ".join(sorted({loc.where for loc in here}))
        if len(here) == len(located):
            status = f"[green]present[/green] ({places})"
        else:
            missing = [need.describe() for need in info.missing]
            shown = "; ".join(missing[:2]) + (
                f"; +{len(missing) - 2} more" if len(missing) > 2 else ""
            )
            status = f"[yellow]missing {len(missing)} of {len(located)}[/yellow]: {shown}"
    if info.requirements:
        status += f"; [red]needs[/red] {', '.join(sorted({r.name for r in info.requirements}))}"
    return status


@main.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--model-a", metavar="ID", help="The model of RUN_A to compare (default: by id).")
@click.option("--model-b", metavar="ID", help="The model of RUN_B to compare it with.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Significance level of the paired tests.")  # fmt: skip
@click.option("--json", "json_file", type=click.Path(path_type=Path),
              help="Also write the comparison to this JSON file.")  # fmt: skip
@click.option("--fail-on-worse", is_flag=True, help="Exit 4 when B is significantly worse.")
def compare_command(run_a, run_b, model_a, model_b, alpha, json_file, fail_on_worse) -> None:
    """Compare two runs per model, suite and task: the delta, a paired test on the per-sample
    logs where the items are the same, and a verdict (B against A)."""

    def work() -> int:
        import json

        from harness.compare import compare_runs, load_run

        rows = compare_runs(load_run(run_a), load_run(run_b), model_a, model_b, alpha)
        table = Table("model A → B", "suite", "task", "metric", "A", "B", "Δ", "items",
                      "changed", "test", "p", "verdict")  # fmt: skip
        colour = {"worse": "red", "better": "green", "same": "dim"}
        for r in rows:
            style = colour.get(r.verdict)
            table.add_row(
                r.model_a if r.model_a == r.model_b else f"{r.model_a} → {r.model_b}",
                r.suite, r.task, r.metric, _fmt(r.a, r.a_stderr), _fmt(r.b, r.b_stderr),
                "—" if r.delta is None else f"{r.delta:+.3f}", str(r.paired_items),
                str(r.changed_answers), r.test,
                "—" if r.p_value is None else f"{r.p_value:.3g}",
                f"[{style}]{r.verdict}[/{style}]" if style else r.verdict,
            )  # fmt: skip
        _wide_console().print(table)
        if json_file:
            json_file.write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        if not rows:
            console.print("[yellow]no task scored in both runs[/yellow]")
        worse = [r for r in rows if r.verdict == "worse"]
        return 4 if worse and fail_on_worse else 0

    sys.exit(_guarded(work))


def _fmt(value, stderr) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" + (f" ± {stderr:.3f}" if stderr is not None else "")


@main.command("history")
@click.argument("config_file", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "output_dir",
    type=click.Path(path_type=Path),
    help="Results root (default: the config's output_dir, `results`).",
)
@click.option("--last", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many of the latest runs to show.")  # fmt: skip
def history_command(config_file: Path, output_dir, last) -> None:
    """The trend of each gate's metric over the config's runs (from results/index.json)."""
    from harness.config import load_config

    def work() -> int:
        from harness.history import gate_trends

        config = load_config(config_file)
        root = output_dir or config.output_dir
        runs, rows = gate_trends(root, config.name, last)
        if not runs:
            console.print(f"no runs of '{config.name}' recorded under {root}/index.json")
            return 0
        table = Table("gate", "model", "task", "metric", *(r["started"][:16] for r in runs))
        for (gate, model, task, metric), cells in rows:
            table.add_row(gate, model, task, metric, *(_trend_cell(c) for c in cells))
        table.add_row("exit code", "", "", "", *(str(r["exit_code"]) for r in runs))
        _wide_console().print(table)
        return 0

    sys.exit(_guarded(work))


def _trend_cell(cell) -> str:
    if cell is None:
        return "—"
    value, status = cell
    text = "—" if value is None else f"{value:.3f}"
    colour = {"fail": "red", "missing": "red", "within noise": "yellow"}.get(status)
    return f"[{colour}]{text} {status}[/{colour}]" if colour else text


@main.command("attest")
@click.argument("run_dir", type=click.Path(path_type=Path))
def attest_command(run_dir: Path) -> None:
    """Re-check a finished run: do its weight and data files still have the recorded sha256?

    Exit 0 when every file matches, 1 when one changed or is missing."""

    def work() -> int:
        from harness.attest import attest

        checks = attest(run_dir)
        table = Table("kind", "of", "file", "status")
        colour = {"match": "green", "changed": "red", "missing": "yellow"}
        for check in checks:
            status = f"[{colour[check.status]}]{check.status}[/{colour[check.status]}]"
            table.add_row(check.kind, check.owner, check.path, status)
        Console(soft_wrap=True).print(table)
        bad = [c for c in checks if c.status != "match"]
        if bad:
            console.print(f"[red]{len(bad)} of {len(checks)} file(s) differ from the run[/red]")
            return 1
        console.print(f"[green]all {len(checks)} file(s) match the run[/green]")
        return 0

    sys.exit(_guarded(work))


def _offline_for_lookups(allow_loopback: bool = True) -> None:
    """For commands that only read files: the offline variables and the guard."""
    from harness.offline import apply_offline_env, install_guard, refuse_online_settings

    refuse_online_settings()
    apply_offline_env()
    install_guard(allow_loopback=allow_loopback)
    _quiet_libraries()


def _guarded(work) -> int:
    """Run a command body; user errors become one message and their exit code."""
    try:
        return work()
    except HarnessError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]; results written so far are kept")
        return 130


def _print_gates(gates: dict | None) -> None:
    if not gates:
        return
    counts = ", ".join(f"{n} {status}" for status, n in sorted(gates["counts"].items()))
    colour = "green" if gates["passed"] else "red"
    console.print(
        f"gates: [{colour}]{'passed' if gates['passed'] else 'FAILED'}[/{colour}] ({counts})"
    )
    for check in gates["checks"]:
        if check["status"] in ("fail", "missing"):
            console.print(
                f"  [red]{check['status']}[/red] {check['gate']}: {check['model']} "
                f"{check['task']} {check['metric']}: {check['detail']}"
            )


def _say(message: str) -> None:
    console.print(f"[dim]·[/dim] {message}")


def _print_summary(data: dict) -> None:
    from harness.evaluation import primary_metric

    table = Table("model", "suite", "task", "metric", "value", "± stderr", "n")
    for model_id, model in data["models"].items():
        if model.get("status") == "skipped":
            table.add_row(model_id, "—", "—", "—", "[yellow]skipped: not here[/yellow]", "", "")
        if model.get("status") == "failed" and not model.get("suites"):
            table.add_row(model_id, "—", "—", "—", "[red]failed to load[/red]", "", "")
        for suite, result in model.get("suites", {}).items():
            if result["status"] == "failed":
                table.add_row(model_id, suite, "—", "—", "[red]failed[/red]", "", "")
                continue
            for task, task_result in result["tasks"].items():
                if not task_result.get("metrics"):
                    continue  # a group without an aggregate score
                name, value, stderr = primary_metric(task_result.get("metrics", {}))
                counts = task_result.get("n_samples") or {}
                table.add_row(
                    model_id,
                    suite,
                    task,
                    name.split(",")[0],
                    f"{value:.3f}" if value is not None else "n/a",
                    f"{stderr:.3f}" if stderr is not None else "",
                    str(counts.get("effective", "")),
                )
    Console().print(table)


def _quiet_libraries() -> None:
    # Library chatter goes to the run's run.log; the console keeps errors only.
    logging.getLogger().setLevel(logging.INFO)
    for name in ("lm-eval", "lm_eval", "datasets", "transformers", "huggingface_hub", "accelerate"):
        logging.getLogger(name).setLevel(logging.INFO)
    if not any(getattr(h, "_harness_console", False) for h in logging.getLogger().handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.ERROR)
        handler._harness_console = True  # type: ignore[attr-defined]
        logging.getLogger().addHandler(handler)


def _wide_console() -> Console:
    """Stdout; tables keep their columns when piped to a file or a CI log."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _short(source: str) -> str:
    try:
        return str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        return source


if __name__ == "__main__":
    main()

"""`harness compare`, `history` and `attest`: reading finished runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from harness.cli._common import (
    console,
    guarded,
    main,
    wide_console,
)


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
        wide_console().print(table)
        for r in rows:
            if r.note:
                console.print(f"[yellow]{r.model_b} {r.task}:[/yellow] {r.note}")
        if json_file:
            json_file.write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        if not rows:
            console.print("[yellow]no task scored in both runs[/yellow]")
        worse = [r for r in rows if r.verdict == "worse"]
        return 4 if worse and fail_on_worse else 0

    sys.exit(guarded(work))


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
        # A partial run's numbers are over fewer items: its column says so.
        heads = [r["started"][:16] + (" PARTIAL" if r.get("partial") else "") for r in runs]
        table = Table("gate", "model", "task", "metric", *heads)
        for (gate, model, task, metric), cells in rows:
            table.add_row(gate, model, task, metric, *(_trend_cell(c) for c in cells))
        table.add_row("exit code", "", "", "", *(str(r["exit_code"]) for r in runs))
        wide_console().print(table)
        return 0

    sys.exit(guarded(work))


def _trend_cell(cell) -> str:
    if cell is None:
        return "—"
    value, status = cell
    text = "—" if value is None else f"{value:.3f}"
    colour = {
        "fail": "red",
        "missing": "red",
        "inconclusive": "yellow",
        "insufficient evidence": "yellow",
    }.get(status)
    return f"[{colour}]{text} {status}[/{colour}]" if colour else text


@main.command("attest")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--verify",
    "public_key",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PUBKEY",
    help="Also check the run's signed attestation (attestation.intoto.json) with this public "
    "key, and every file it names, the run's own reports included.",
)
def attest_command(run_dir: Path, public_key: Path | None) -> None:
    """Re-check a finished run: does every file it read (weights, config, tokenizer, code,
    task definitions, data) still have the recorded sha256? With --verify, is its signed
    attestation intact and signed by that key?

    Exit 0 when everything matches, 1 when a file changed or is missing or the signature does
    not verify."""

    def work() -> int:
        from harness.attest import attest

        checks = attest(run_dir)
        table = Table("kind", "of", "file", "status")
        table.columns[2].overflow = "fold"  # a path is never cut short
        colour = {"match": "green", "changed": "red", "missing": "yellow"}
        for check in checks:
            status = f"[{colour[check.status]}]{check.status}[/{colour[check.status]}]"
            table.add_row(check.kind, check.owner, check.path, status)
        wide_console().print(table)
        bad = [c for c in checks if c.status != "match"]
        if bad:
            console.print(f"[red]{len(bad)} of {len(checks)} file(s) differ from the run[/red]")
        else:
            console.print(f"[green]all {len(checks)} file(s) match the run[/green]")
        if public_key is not None and not _verify(run_dir, public_key):
            return 1
        return 1 if bad else 0

    sys.exit(guarded(work))


def _verify(run_dir: Path, public_key: Path) -> bool:
    from harness.signing import verify_run

    result = verify_run(run_dir, public_key)
    changed = [s for s in result.subjects if s.status != "match"]
    for subject in changed:
        console.print(f"[red]{subject.status}:[/red] {subject.kind} {subject.name}")
    for problem in result.problems:
        console.print(f"[red]{problem}[/red]")
    if result.ok:
        console.print(
            f"[green]signature verified[/green] (key {result.keyid}); all "
            f"{len(result.subjects)} signed file(s) match"
        )
    else:
        signature = "verified" if result.signature_ok else "[red]does NOT verify[/red]"
        console.print(f"signature {signature}; {len(changed)} signed file(s) differ")
    return result.ok


@main.command("schema")
def schema_command() -> None:
    """Print the JSON schema of results.json (the typed run record, with its schema_version)."""
    import json

    from harness.record import schema

    click.echo(json.dumps(schema(), indent=2))

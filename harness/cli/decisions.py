"""`harness compare`, `history` and `attest`: reading finished runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich import box
from rich.table import Table
from rich.text import Text

from harness.cli._common import (
    config_file_argument,
    console,
    error,
    guarded,
    main,
    plain_row,
    print_json,
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
            plain_row(
                table,
                r.model_a if r.model_a == r.model_b else f"{r.model_a} → {r.model_b}",
                r.suite, r.task, r.metric, _fmt(r.a, r.a_stderr), _fmt(r.b, r.b_stderr),
                "—" if r.delta is None else f"{r.delta:+.3f}", str(r.paired_items),
                str(r.changed_answers), r.test,
                "—" if r.p_value is None else f"{r.p_value:.3g}",
                Text(r.verdict, style=colour.get(r.verdict, "")),
            )  # fmt: skip
        wide_console().print(table)
        for r in rows:
            if r.note:
                console.print(Text.assemble((f"{r.model_b} {r.task}:", "yellow"), f" {r.note}"))
        if json_file:
            json_file.write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        if not rows:
            console.print(Text("no task scored in both runs", style="yellow"))
        worse = [r for r in rows if r.verdict == "worse"]
        return 4 if worse and fail_on_worse else 0

    sys.exit(guarded(work))


def _fmt(value, stderr) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" + (f" ± {stderr:.3f}" if stderr is not None else "")


@main.command("history")
@config_file_argument
@click.option(
    "--output",
    "output_dir",
    type=click.Path(path_type=Path),
    help="Results root (default: the config's output_dir, `results`).",
)
@click.option("--last", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many of the latest runs to show.")  # fmt: skip
@click.option(
    "--json", "as_json", is_flag=True, help="Print the runs and trends as JSON on stdout."
)
def history_command(config_file: Path, output_dir, last, as_json) -> None:
    """The trend of each gate's metric over the config's runs (from results/index.json)."""
    from harness.config import load_config

    def work() -> int:
        from harness.history import gate_trends

        config = load_config(config_file)
        root = output_dir or config.output_dir
        runs, rows = gate_trends(root, config.name, last)
        if as_json:
            print_json(_history_json(config.name, root, runs, rows))
            return 0
        if not runs:
            console.print(Text(f"no runs of '{config.name}' recorded under {root}/index.json"))
            return 0
        out = wide_console()
        out.print(_history_table(runs, rows))
        for number, ((gate, model, task, metric), _) in enumerate(rows, 1):
            out.print(Text(f"gate {number}: {gate}: {model} {task} {metric}"), soft_wrap=False)
        return 0

    sys.exit(guarded(work))


def _history_table(runs: list[dict], rows: list[tuple]) -> Table:
    """One row per run (oldest first), one column per gate check: narrow enough for 80
    columns with a few gates (each gate is named below the table)."""
    table = Table(title="Gate trends", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("run (UTC)", no_wrap=True)
    table.add_column("exit", justify="right")
    for number in range(1, len(rows) + 1):
        table.add_column(f"gate {number}", justify="right")
    for index, run in enumerate(runs):
        # A partial run's numbers are over fewer items: its row says so.
        started = run["started"][:16].replace("T", " ") + (" PARTIAL" if run.get("partial") else "")
        cells = [_trend_cell(cells[index]) for _, cells in rows]
        plain_row(table, started, str(run["exit_code"]), *cells)
    return table


def _history_json(name: str, root: Path, runs: list[dict], rows: list[tuple]) -> dict:
    return {
        "config": name,
        "results_root": str(root),
        "runs": runs,
        "trends": [
            {
                "gate": gate,
                "model": model,
                "task": task,
                "metric": metric,
                "values": [
                    None if cell is None else {"value": cell[0], "status": cell[1]}
                    for cell in cells
                ],
            }
            for (gate, model, task, metric), cells in rows
        ],
    }


def _trend_cell(cell) -> Text:
    if cell is None:
        return Text("—")
    value, status = cell
    text = "—" if value is None else f"{value:.3f}"
    colour = {
        "fail": "red",
        "missing": "red",
        "inconclusive": "yellow",
        "insufficient evidence": "yellow",
    }.get(status)
    return Text(f"{text} {status}", style=colour) if colour else Text(text)


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
            status = Text(check.status, style=colour[check.status])
            plain_row(table, check.kind, check.owner, check.path, status)
        wide_console().print(table)
        bad = [c for c in checks if c.status != "match"]
        if bad:
            error(f"{len(bad)} of {len(checks)} file(s) differ from the run", "error:")
        else:
            console.print(Text(f"all {len(checks)} file(s) match the run", style="green"))
        if public_key is not None and not _verify(run_dir, public_key):
            return 1
        return 1 if bad else 0

    sys.exit(guarded(work))


def _verify(run_dir: Path, public_key: Path) -> bool:
    from harness.signing import verify_run

    result = verify_run(run_dir, public_key)
    changed = [s for s in result.subjects if s.status != "match"]
    for subject in changed:
        error(f"{subject.kind} {subject.name}", f"{subject.status}:")
    for problem in result.problems:
        console.print(Text(problem, style="red"))
    if result.ok:
        console.print(
            Text.assemble(
                ("signature verified", "green"),
                f" (key {result.keyid}); all {len(result.subjects)} signed file(s) match",
            )
        )
    else:
        signature = ("verified", "") if result.signature_ok else ("does NOT verify", "red")
        console.print(
            Text.assemble("signature ", signature, f"; {len(changed)} signed file(s) differ")
        )
    return result.ok


@main.command("schema")
@click.option(
    "--results",
    is_flag=True,
    help="The schema of results.json (the typed run record) instead of the config's.",
)
def schema_command(results: bool) -> None:
    """Print the JSON schema of a config file, for editors (docs/config.md says how); with
    --results, the schema of results.json, with its schema_version."""
    import json

    if results:
        from harness.record import schema
    else:
        from harness.reference import config_schema as schema

    click.echo(json.dumps(schema(), indent=2))

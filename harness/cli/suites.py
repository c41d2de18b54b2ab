"""`harness tasks` and `selftest`: what suites and architectures this machine can run."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from harness.cli._common import (
    console,
    guarded,
    main,
    offline_for_lookups,
    short,
    wide_console,
)
from harness.errors import HarnessError
from harness.families.catalog import FAMILIES


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
        offline_for_lookups()
        from transformers.utils import logging as transformers_logging

        from harness.environment import package_versions
        from harness.families.selftest import CHECKS, run_selftest
        from harness.reports.console import selftest_table

        transformers_logging.disable_progress_bar()
        with console.status("building and checking") as status:
            results = run_selftest(
                list(families) or None, progress=lambda name: status.update(f"checking {name}")
            )
        out = wide_console()
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

    sys.exit(guarded(work))


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
        offline_for_lookups()
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
        wide_console().print(table)
        return 2 if broken else 0

    sys.exit(guarded(work))


def _suite_cells(info) -> list[str]:
    languages = ", ".join(sorted(set(info.languages.values()))) or "—"
    return [
        info.name,
        info.kind,
        str(len(info.tasks)),
        languages,
        str(info.total_items) if info.items else "—",
        _data_status(info),
        short(info.source),
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

"""`harness tasks` and `selftest`: what suites and architectures this machine can run."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from harness.cli._common import (
    error,
    guarded,
    main,
    offline_for_lookups,
    print_json,
    status,
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
        with status("building and checking") as update:
            results = run_selftest(
                list(families) or None, progress=lambda name: update(f"checking {name}")
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
                    error(result.details[name], f"{result.family.name} {name}:")
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
    help="Also list lm-eval's standard benchmarks (every one in a --language, else a short list "
    "per language in view), and whether the data of each is on this machine.",
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
    help="Only suites with a task in this language: ISO 639 or BCP 47 (sw, swh, hi-Latn; "
    "repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout instead.")
def tasks_command(paths, available, data_dir, suites, languages, as_json) -> None:
    """List the suites found in tasks/ (and --path), with their tasks, languages and sizes.

    With --available, also lm-eval's standard benchmarks (with --language, every lm-eval suite
    in that language; languages are read off lm-eval's task names, docs/languages.md) and any
    --suite, each with where its data is on this machine or which dataset is missing."""

    def work() -> int:
        offline_for_lookups()
        from harness.suites import SuiteCatalog

        codes = _language_codes(languages)
        catalog = SuiteCatalog(list(paths), data_dir)
        names = catalog.local_suite_names()
        asked = {*names, *suites}
        manager = catalog.local
        if available:
            from harness.suites.benchmarks import standard_suites

            with status("reading lm-eval's task registry"):
                manager = catalog.full()
                index = catalog.languages(manager)
                if codes:
                    names += [name for code in codes for name in index.suites(code)]
                else:
                    names += [name for _, name in standard_suites()]
        names += list(suites)
        rows, broken = [], 0
        for name in dict.fromkeys(names):
            if name not in manager.task_index:
                rows.append((name, None, "unknown suite"))
                broken += name in asked
                continue
            try:
                info = catalog.describe(name, manager)
            except HarnessError as exc:
                rows.append((name, None, f"broken: {exc}"))
                broken += name in asked
                continue
            if codes and name not in suites and not _speaks(info, codes):
                continue
            rows.append((name, info, None))
        if as_json:
            print_json({"suites": [_suite_record(name, info, err) for name, info, err in rows]})
        else:
            wide_console().print(_suites_table(rows))
        return 2 if broken else 0

    sys.exit(guarded(work))


def _language_codes(languages) -> list[str]:
    """--language values as BCP 47 tags; a code that names no language is bad input."""
    from harness.errors import BadInputError
    from harness.suites.languages import normalize

    codes = []
    for given in languages:
        code = normalize(given)
        if code is None:
            raise BadInputError(
                f"--language {given}: not a language code. Give an ISO 639 code or a BCP 47 "
                "tag, e.g. sw, swh, hi, hi-Latn, zh-Hant."
            )
        codes.append(code)
    return codes


def _speaks(info, codes: list[str]) -> bool:
    from harness.suites.languages import matches

    return any(matches(language, code) for language in info.languages.values() for code in codes)


def _suites_table(rows) -> Table:
    """One row per suite: its name with its tasks beneath (the names gates use), languages,
    items and data; narrow enough for 80 columns."""
    table = Table("suite and its tasks", "languages", "items", "data")
    for name, info, problem in rows:
        if info is None:
            table.add_row(name, "—", "—", f"[red]{escape(problem)}[/red]")
            continue
        table.add_row(
            _name_cell(info),
            _languages_cell(info),
            f"{info.total_items:,}" if info.items else "—",
            _data_status(info),
        )
    return table


def _name_cell(info, shown: int = 6, width: int = 32) -> str:
    """The suite's name, then its tasks when it is a group, dimmed: their shared prefix once
    (`native_ja_{mc, gen}`), the first `shown` of them (`--json` lists every one)."""
    import os
    import textwrap

    name = escape(info.name)
    if info.tasks == [info.name] or not info.tasks:
        return name
    prefix = os.path.commonprefix(info.tasks) if len(info.tasks) > 1 else ""
    prefix = prefix[: prefix.rfind("_") + 1]
    rest = [task.removeprefix(prefix) for task in info.tasks]
    listed = ", ".join(rest[:shown]) + (f", +{len(rest) - shown} more" if len(rest) > shown else "")
    listed = f"{prefix}{{{listed}}}" if len(prefix) > 3 else listed
    lines = textwrap.wrap(listed, width, initial_indent="  ", subsequent_indent="    ")
    return name + "".join(f"\n[dim]{escape(line)}[/dim]" for line in lines)


def _languages_cell(info, shown: int = 3) -> str:
    languages = sorted(set(info.languages.values()))
    if not languages:
        return "—"
    if len(languages) > shown:
        return f"{len(languages)} languages"
    return ", ".join(languages)


def _suite_record(name: str, info, problem: str | None) -> dict:
    """A suite for `tasks --json`: every leaf task with its language and item count, and its
    data: the datasets it reads, each found (where) or missing, and what it lacks."""
    if info is None:
        return {"name": name, "error": problem}
    datasets = [
        {
            "dataset": loc.need.describe(),
            "present": loc.present,
            "where": loc.where,
            "problem": loc.problem,
        }
        for loc in {loc.need: loc for loc in info.sources.values()}.values()
    ]
    if datasets:
        status = "present" if all(d["present"] for d in datasets) else "missing"
    else:
        status = "local files" if info.items else "none"
    return {
        "name": info.name,
        "kind": info.kind,
        "source": info.source,
        "tasks": [
            {
                "name": task,
                "language": info.languages.get(task),
                "items": info.items.get(task),
                "dataset": info.sources[task].need.describe() if task in info.sources else None,
            }
            for task in info.tasks
        ],
        "languages": sorted(set(info.languages.values())),
        "items": info.total_items if info.items else None,
        "data": {"status": status, "datasets": datasets},
        "requirements": [r.explain() for r in info.requirements],
        "error": None,
    }


def _data_status(info) -> str:
    """Where a suite's data is: local files, or its hub datasets found and missing."""
    located = {loc.need: loc for loc in info.sources.values()}
    if not located:
        status = "local files" if info.items else "—"
    else:
        here = [loc for loc in located.values() if loc.present]
        places = ", ".join(sorted({loc.where for loc in here}))
        # a copy without the config or split a task reads is not "present": run would fail
        incomplete = [loc for loc in located.values() if loc.where and loc.problem]
        if len(here) == len(located):
            status = f"[green]present[/green] ({places})"
        elif incomplete:
            what = "; ".join(f"{loc.need.describe()} ({loc.where})" for loc in incomplete[:2]) + (
                f"; +{len(incomplete) - 2} more" if len(incomplete) > 2 else ""
            )
            status = f"[red]incomplete copy[/red]: {what} (`harness validate` says what it lacks)"
        else:
            missing = [need.describe() for need in info.missing]
            shown = "; ".join(missing[:2]) + (
                f"; +{len(missing) - 2} more" if len(missing) > 2 else ""
            )
            status = f"[yellow]missing {len(missing)} of {len(located)}[/yellow]: {shown}"
    if info.requirements:
        status += f"; [red]needs[/red] {', '.join(sorted({r.name for r in info.requirements}))}"
    return status

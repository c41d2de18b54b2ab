"""`harness cache list` and `harness cache clean`: the machine-wide cache of converted GGUF
copies (docs/paths-and-cache.md)."""

from __future__ import annotations

import sys

import click
from rich.table import Table
from rich.text import Text

from harness.cli._common import console, guarded, main, wide_console


@main.group("cache")
def cache_group() -> None:
    """The machine-wide cache of converted GGUF weights, shared by every run and output
    directory ($HARNESS_CACHE, else $XDG_CACHE_HOME/harness, else ~/.cache/harness)."""


@cache_group.command("list")
def list_command() -> None:
    """Every entry with its size and when a run last used it, least recently used first."""

    def work() -> int:
        from harness.models.cache_cleanup import human_size, list_entries
        from harness.models.gguf_cache import gguf_root

        entries = list_entries()
        if not entries:
            console.print(Text(f"no entries in {gguf_root()}"))
            return 0
        # Entry names run past 100 characters: the table shows what tells them apart.
        table = Table("GGUF sha256", "dtype", "transformers", "size", "last used (UTC)")
        for entry in entries:
            sha = (entry.gguf_sha256 or "")[:12] if entry.complete else "(incomplete)"
            used = entry.last_used.strftime("%Y-%m-%d %H:%M")
            table.add_row(
                Text(sha), Text(entry.dtype or ""), Text(entry.transformers or ""),
                human_size(entry.size_bytes), used,
            )  # fmt: skip
        wide_console().print(table)
        total = human_size(sum(e.size_bytes for e in entries))
        console.print(Text(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {total}, in "
                           f"{gguf_root()}"))  # fmt: skip
        return 0

    sys.exit(guarded(work))


@cache_group.command("clean")
@click.option(
    "--max-size",
    metavar="SIZE",
    help="Keep at most this much (e.g. 20G; K, M, G, T are powers of 1024), removing the least "
    "recently used entries first.",
)
@click.option("--all", "everything", is_flag=True, help="Remove every entry.")
def clean_command(max_size: str | None, everything: bool) -> None:
    """Remove entries, least recently used first, down to --max-size (or --all). Leftovers
    of interrupted conversions always go; an entry a run is converting is kept."""

    def work() -> int:
        from harness.errors import BadInputError
        from harness.models.cache_cleanup import clean, human_size, parse_size

        if (max_size is None) == (not everything):
            raise BadInputError("harness cache clean: give --max-size SIZE or --all (not both)")
        removed, kept = clean(None if max_size is None else parse_size(max_size), everything)
        for entry in removed:
            console.print(Text(f"removed {entry.path.name} ({human_size(entry.size_bytes)})"))
        freed = human_size(sum(e.size_bytes for e in removed))
        left = human_size(sum(e.size_bytes for e in kept))
        console.print(f"freed {freed}; {len(kept)} entr{'y' if len(kept) == 1 else 'ies'} "
                      f"({left}) kept")  # fmt: skip
        return 0

    sys.exit(guarded(work))

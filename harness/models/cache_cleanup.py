"""Listing and trimming the machine-wide GGUF cache (`harness cache list` / `harness cache clean`).

Entries are large (a 7B model's float copy is 15 to 30 GB) and nothing removes them on its own,
so the cache is bounded by hand or by a cron job: `clean --max-size 20G` removes the least
recently used entries until the rest fit. An entry whose lock is held (a run converting it) is
left alone; a run that loses its entry while loading converts again or reads the GGUF file.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import BadInputError
from harness.models.gguf_cache import gguf_root

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


@dataclass(frozen=True)
class CacheEntry:
    """One converted copy as `harness cache list` shows it."""

    path: Path
    size_bytes: int
    last_used: datetime
    gguf_sha256: str | None
    dtype: str | None
    transformers: str | None
    """The transformers version that converted it (entries of other versions are never read)."""
    complete: bool
    """False for a staging directory or an entry without a readable manifest."""


def list_entries(root: Path | None = None) -> list[CacheEntry]:
    """Every entry and leftover staging directory, least recently used first."""
    root = root or gguf_root()
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if not path.is_dir() or path.is_symlink():
            continue
        manifest = _manifest(path)
        used = path / "last-used"
        stamp = (used if used.is_file() else path).stat().st_mtime
        found.append(
            CacheEntry(
                path=path,
                size_bytes=_size(path),
                last_used=datetime.fromtimestamp(stamp, tz=timezone.utc),
                gguf_sha256=(manifest or {}).get("gguf_sha256"),
                dtype=(manifest or {}).get("dtype"),
                transformers=(manifest or {}).get("converter", {}).get("transformers"),
                complete=manifest is not None and not path.name.startswith("."),
            )
        )
    return sorted(found, key=lambda e: (e.complete, e.last_used))


def clean(
    max_bytes: int | None = None, everything: bool = False, root: Path | None = None
) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Remove entries, least recently used first, until the rest take at most `max_bytes`
    (`everything`: all of them). Incomplete leftovers always go. An entry being converted (its
    lock held) is kept. Returns (removed, kept)."""
    from filelock import FileLock, Timeout

    root = root or gguf_root()
    entries = list_entries(root)
    total = sum(e.size_bytes for e in entries)
    removed, kept = [], []
    for entry in entries:  # leftovers first, then least recently used
        wanted = everything or not entry.complete or (max_bytes is not None and total > max_bytes)
        if not wanted:
            kept.append(entry)
            continue
        lock = FileLock(str(root / f"{_entry_name(entry.path)}.lock"), timeout=0)
        try:
            with lock:
                shutil.rmtree(entry.path, ignore_errors=True)
        except Timeout:
            kept.append(entry)  # a run is converting it right now
            continue
        total -= entry.size_bytes
        removed.append(entry)
    # Lock files stay: deleting one a run holds would let a second run convert beside it.
    return removed, kept


def parse_size(text: str) -> int:
    """Bytes from `10G`, `500M`, `1.5T`, `2GiB`, `2GB` or a plain number (K, M, G, T are powers
    of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise BadInputError(
            f"--max-size {text!r}: not a size; give a number of bytes or one with K, M, G or T "
            "(e.g. 20G)"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def human_size(size: int) -> str:
    """`517.0 MiB`: sizes as `harness cache` prints them."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{value:.1f} TiB"


def _entry_name(path: Path) -> str:
    """The entry a directory belongs to: itself, or the one a staging (or half-removed)
    directory was for: `.staging-NAME-RANDOM`, `.trash-NAME-PID`."""
    name = path.name
    for prefix in (".staging-", ".trash-"):
        if name.startswith(prefix):
            return name.removeprefix(prefix).rsplit("-", 1)[0]
    return name


def _manifest(path: Path) -> dict | None:
    try:
        return json.loads((path / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())

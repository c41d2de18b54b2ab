"""Where a run's results go: checked before anything runs, and a failed write turned into one
message that says what was kept.

A run writes results.json after every step, its per-sample logs, the result cache and, at
the end, the reports. Before this module each of those writes could end a run in an
`OSError` traceback: an output path that is a file, a read-only mount, a full disk. Now the
output root is checked before a model loads (no run directory is made for a place that
cannot take one), and a write that fails during the run (the disk filled up) stops the run
with `OutputError` naming the file, the reason and what results.json still holds: every write
is atomic (`harness.reports.files`), so the last complete results.json stays as it was.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from harness.errors import OutputError

MIN_FREE_BYTES = 4 * 2**20
"""Refuse to start with less free space than this under the output root: results.json and
the reports of even a small run take some hundred kilobytes, written twice (atomic
replace)."""

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
"""`OSError`s of a write that are about the disk, not about harness: full, over quota,
read-only, file too large."""


def check_output_root(root: Path, name: str, *, option: str = "--output / output_dir") -> None:
    """Raise `OutputError` unless run directories can be made under `root / name`: no file
    in the way, writable, and not full. Nothing is created (a probe file is removed)."""
    root = Path(root)
    target = root / name
    existing = target
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "" if existing == root else f" ({existing} is in the way)"
        raise OutputError(
            f"output directory {root}{where}: {existing} is a file, not a directory. Give "
            f"another {option}, or move the file away."
        )
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".harness-probe-")
    except OSError as exc:
        raise OutputError(
            f"output directory {root}: cannot write in {existing} ({_reason(exc)}). Give a "
            f"writable {option}."
        ) from None
    os.close(handle)
    os.unlink(probe)
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise OutputError(
            f"output directory {root}: the disk holding {existing} is full ({_size(free)} "
            f"free; a run needs at least {_size(MIN_FREE_BYTES)}). Free some space, or give "
            f"another {option}."
        )


def is_disk_error(exc: BaseException) -> bool:
    """Whether `exc` is a write refused by the disk (full, read-only, over quota)."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


def write_failure(exc: OSError, path: Path | str | None, kept: str) -> OutputError:
    """The `OutputError` for a write that failed during a run; `kept` says what was saved."""
    where = path or exc.filename or "a result file"
    return OutputError(
        f"cannot write {where}: {_reason(exc)}. The run stopped here. {kept} Free some space "
        "(or give another --output) and run the same command again: with the result cache on, "
        "suites already scored are not scored again."
    )


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the disk"
    if exc.errno == errno.EROFS:
        return "the file system is mounted read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied ({exc.strerror}; an immutable or root-owned directory?)"
    return exc.strerror or str(exc)


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB"

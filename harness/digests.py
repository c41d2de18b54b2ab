"""Which exact files a run read: the size and sha256 of every weight and data file.

A digest is computed once per file as it is on disk: remembered in the process, and for large
files across runs in harness's cache (`digests.json`), keyed by what any change to the file
changes (its ctime, which no process can set back).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class FileDigest:
    """One file as it was on disk when the run read it."""

    path: str
    """The path as the run reached it (in the HF cache, the snapshot's symlink)."""
    real_path: str
    size_bytes: int
    sha256: str

    def to_dict(self) -> dict:
        return asdict(self)


_SEEN: dict[tuple, str] = {}
"""sha256 by (real path, device, inode, size, mtime, ctime): a file checked against its pins
before the run is not read again when the run records it. Any write to the file changes its
ctime, which no process can set back, so a changed file is always read again."""

PERSISTENT_MIN_BYTES = 1024 * 1024
"""Files at least this large have their digest kept across runs too (`_persistent`), under the
same key: a model's weights are read once per machine, not once per run. Small files (task
definitions, data) are cheaper to hash again than to look up."""
_LOADED = False


def _store() -> Path:
    from harness.models.gguf_cache import cache_root

    return cache_root() / "digests.json"


def _persistent() -> None:
    """Add the digests kept by earlier runs to `_SEEN` (once per process; a missing or
    unreadable store is an empty one)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    try:
        kept = json.loads(_store().read_text(encoding="utf-8"))
        for entry in kept:
            _SEEN.setdefault(tuple(entry["key"]), entry["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass


def _keep() -> None:
    """Write the digests of large files to the store, atomically (a concurrent run's write
    may win: it is a cache)."""
    entries = [{"key": list(k), "sha256": v} for k, v in _SEEN.items()
               if k[3] >= PERSISTENT_MIN_BYTES]  # fmt: skip
    store = _store()
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=store.parent, delete=False,
                                         encoding="utf-8") as handle:  # fmt: skip
            json.dump(entries, handle)
        os.replace(handle.name, store)
    except OSError:
        pass  # a read-only cache: digests are computed again next time


def known_sha256(path: Path) -> str | None:
    """The sha256 of `path` if this process (or, for a large file, an earlier run) hashed it
    as it is now; None otherwise. Reads no file content."""
    _persistent()
    real = Path(path).resolve()
    try:
        stat = real.stat()
    except OSError:
        return None
    return _SEEN.get(_key(real, stat))


def _key(real: Path, stat) -> tuple:
    return (str(real), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
            stat.st_ctime_ns)  # fmt: skip


def hash_files(
    paths: Iterable[Path], on_bytes: Callable[[int], None] | None = None, *, verify: bool = False
) -> list[FileDigest]:
    """sha256 each file, streaming; `on_bytes` is told of progress (for a progress bar).

    `verify=True` reads every byte again and trusts no remembered digest: for `harness attest`
    and signature verification, which must not rest on a store that any process of this user
    could have written (digests.json)."""
    if not verify:
        _persistent()
    out, fresh = [], False
    for path in paths:
        real = Path(path).resolve()
        stat = real.stat()
        key = _key(real, stat)
        if verify or key not in _SEEN:
            fresh = fresh or stat.st_size >= PERSISTENT_MIN_BYTES
            digest = hashlib.sha256()
            with open(real, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
            if verify:
                out.append(FileDigest(str(path), str(real), stat.st_size, digest.hexdigest()))
                continue
            _SEEN[key] = digest.hexdigest()
        elif on_bytes:
            on_bytes(stat.st_size)
        out.append(FileDigest(str(path), str(real), stat.st_size, _SEEN[key]))
    if fresh and not verify:
        _keep()
    return out

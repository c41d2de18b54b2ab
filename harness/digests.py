"""Which exact files a run read: the size and sha256 of every weight and data file."""

from __future__ import annotations

import hashlib
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


def hash_files(
    paths: Iterable[Path], on_bytes: Callable[[int], None] | None = None
) -> list[FileDigest]:
    """sha256 each file, streaming; `on_bytes` is told of progress (for a progress bar)."""
    out = []
    for path in paths:
        real = Path(path).resolve()
        stat = real.stat()
        key = (str(real), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
               stat.st_ctime_ns)  # fmt: skip
        if key not in _SEEN:
            digest = hashlib.sha256()
            with open(real, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
            _SEEN[key] = digest.hexdigest()
        elif on_bytes:
            on_bytes(stat.st_size)
        out.append(FileDigest(str(path), str(real), stat.st_size, _SEEN[key]))
    return out

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


def hash_files(
    paths: Iterable[Path], on_bytes: Callable[[int], None] | None = None
) -> list[FileDigest]:
    """sha256 each file, streaming; `on_bytes` is told of progress (for a progress bar)."""
    out = []
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        real = path.resolve()
        out.append(FileDigest(str(path), str(real), real.stat().st_size, digest.hexdigest()))
    return out

"""Where a task's data is on this machine: standard benchmarks from local copies.

An lm-eval task names a Hugging Face dataset (`dataset_path`, `dataset_name`). Offline,
`datasets` can load it only from its own cache of a previous load. harness also finds it in

1. a config's `data_dir:`, laid out as `<data_dir>/<org>/<name>/`, which is what
   `hf download --repo-type dataset ORG/NAME --local-dir DATA_DIR/ORG/NAME` writes;
2. the Hugging Face hub cache (`HF_HUB_CACHE`, as `hf download` fills it by default), at the
   task's revision or `main`;
3. the `datasets` cache (`HF_DATASETS_CACHE`) of an earlier `load_dataset` of that config.

`redirect_to_local_copies` makes lm-eval load from 1 or 2 without editing a task: while it is
active, `datasets.load_dataset("org/name", ...)` reads the local directory instead. `locate`
answers, before any model loads, whether each task's data is here, and where.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PACKAGED_BUILDERS = frozenset(
    {"json", "jsonl", "csv", "parquet", "text", "arrow", "pandas", "xml", "sql", "generator"}
)
"""`dataset_path` values that name a `datasets` file format, not a dataset on the hub."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class DataNeed:
    """The dataset one task reads."""

    path: str
    name: str | None = None
    revision: str | None = None

    def describe(self) -> str:
        config = f" (config {self.name})" if self.name else ""
        at = f" at revision {self.revision}" if self.revision else ""
        return f"{self.path}{config}{at}"


@dataclass
class DataLocation:
    """Where a `DataNeed` was found: `where` is `data_dir`, `hub cache`, `datasets cache`, or
    None when it is not on this machine."""

    need: DataNeed
    where: str | None
    directory: Path | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return self.where is not None


def is_hub_dataset(path: str) -> bool:
    """Whether a `dataset_path` names a hub dataset (not a file format or a local directory)."""
    return (
        path not in PACKAGED_BUILDERS
        and bool(_HUB_ID.match(path))
        and not Path(path).expanduser().is_absolute()
        and not Path(path).exists()
    )


def locate(need: DataNeed, data_dir: Path | None) -> DataLocation:
    """Find the data of `need` on this machine, looking where harness and `datasets` can load
    it offline."""
    copy = local_copy(need.path, need.revision, data_dir)
    if copy is not None:
        where = (
            "data_dir" if data_dir is not None and copy.is_relative_to(data_dir) else "hub cache"
        )
        return DataLocation(need, where, copy, _data_files(copy))
    cached = _datasets_cache_dir(need)
    if cached is not None:
        return DataLocation(need, "datasets cache", cached, _data_files(cached))
    return DataLocation(need, None)


def local_copy(path: str, revision: str | None, data_dir: Path | None) -> Path | None:
    """The directory holding a copy of hub dataset `path`: in `data_dir`, else in the hub
    cache at `revision` (default `main`)."""
    if data_dir is not None:
        for candidate in (data_dir / path, data_dir / path.replace("/", "__")):
            if candidate.is_dir():
                return candidate
    return _hub_snapshot(path, revision)


def _hub_snapshot(path: str, revision: str | None) -> Path | None:
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / ("datasets--" + path.replace("/", "--"))
    revision = revision or "main"
    commit = revision if _COMMIT.match(revision) else None
    if commit is None:
        ref = repo / "refs" / revision
        commit = ref.read_text().strip() if ref.is_file() else None
    snapshot = repo / "snapshots" / commit if commit else None
    return snapshot if snapshot is not None and snapshot.is_dir() else None


def _datasets_cache_dir(need: DataNeed) -> Path | None:
    """The `datasets` cache directory of an earlier load of this dataset and config (it is
    named as `datasets` names it: `org___name/<config>/<version>/<hash>`)."""
    from datasets import config
    from datasets.naming import camelcase_to_snakecase

    parts = need.path.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    root = Path(config.HF_DATASETS_CACHE) / "___".join(parts) / (need.name or "default")
    found = sorted(p for p in root.glob("*/*") if p.is_dir() and any(p.glob("*.arrow")))
    return found[-1] if found else None


def _data_files(directory: Path) -> list[Path]:
    """The files of a local dataset copy, for the run's attestation (no git or lock files)."""
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
        and p.suffix != ".lock"
    )


def fetch_hint(need: DataNeed) -> str:
    """How to bring a dataset here: the commands for a machine that has network."""
    revision = f" --revision {need.revision}" if need.revision else ""
    return (
        f"on a machine with network, `hf download --repo-type dataset {need.path}{revision} "
        f"--local-dir DATA_DIR/{need.path}`, copy DATA_DIR here and set `data_dir: DATA_DIR` in "
        "the config (or copy that machine's Hugging Face cache and point HF_HUB_CACHE at it)"
    )


@contextmanager
def redirect_to_local_copies(data_dir: Path | None) -> Iterator[None]:
    """While active, `datasets.load_dataset` of a hub dataset with a local copy (in `data_dir`
    or the hub cache) loads that directory instead. Other loads are untouched."""
    import datasets

    original = datasets.load_dataset

    def load_dataset(path, name=None, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and is_hub_dataset(str(path)):
            copy = local_copy(str(path), kwargs.get("revision"), data_dir)
            if copy is not None:
                kwargs.pop("revision", None)  # the copy is of that revision already
                return original(str(copy), name, *args, **kwargs)
        return original(path, name, *args, **kwargs)

    datasets.load_dataset = load_dataset
    try:
        yield
    finally:
        datasets.load_dataset = original

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

A directory is not enough: a copy of xcopa holding only `ta` cannot serve a task that reads
`it`, and lm-eval would say so (`BuilderConfig 'it' not found`) only after the model loaded.
So `locate` asks `datasets` itself, offline, to resolve the copy's builder for the task's config
(what `load_dataset` does first: read the README's `configs:`, or infer one config from the
files) and checks that the splits the task reads are among the builder's.
"""

from __future__ import annotations

import functools
import json
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
    splits: tuple[str, ...] = ()
    """The splits the task reads (its evaluation split and the one its few-shot examples come
    from); empty when unknown."""
    load_kwargs: str = "{}"
    """The task's `dataset_kwargs` but `revision`, as JSON (the record stays hashable), passed
    on to `datasets` as lm-eval passes them."""

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
    problem: str | None = None
    """Why the copy found cannot serve the task (a config or split it lacks); None when it can."""

    @property
    def present(self) -> bool:
        """Whether the task's data can be loaded from here: found, and complete for the task."""
        return self.where is not None and self.problem is None


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
        return DataLocation(need, where, copy, _data_files(copy), copy_problem(copy, need))
    cached = _datasets_cache_dir(need)
    if cached is not None:
        files = _data_files(cached)
        return DataLocation(need, "datasets cache", cached, files, _cache_problem(files, need))
    return DataLocation(need, None)


def copy_problem(copy: Path, need: DataNeed) -> str | None:
    """Why `datasets.load_dataset(copy, need.name)` would fail, or not give the task's splits;
    None when it would serve them. Nothing is downloaded or prepared: `datasets` resolves the
    copy's module (the README's `configs:` and `dataset_info`, or the files' layout) once per
    copy, and the config is chosen from it as `load_dataset_builder` chooses it."""
    kwargs = json.loads(need.load_kwargs)
    if set(kwargs) - {"data_dir", "data_files"}:
        return _builder_problem(copy, need, kwargs)  # config arguments: let datasets decide
    module = _dataset_module(str(copy), need.load_kwargs)
    if isinstance(module, str):
        return f"the copy at {copy} cannot serve it: {module}"
    parameters = module.builder_configs_parameters
    configs = {c.name: c for c in parameters.builder_configs or []}
    name = need.name or parameters.default_config_name
    if name is None and len(configs) == 1:
        name = next(iter(configs))
    if configs and name not in configs:
        shown = str(list(configs)[:12]) + (f" ({len(configs)} in all)" if len(configs) > 12 else "")
        found = (
            f"BuilderConfig '{name}' not found. Available: {shown}"
            if name is not None
            else f"Config name is missing. Available: {shown}"
        )
        return f"the copy at {copy} cannot serve it: {found}"
    config = configs.get(name)
    splits = {str(s) for s in (config.data_files if config and config.data_files else {})}
    info = (module.dataset_infos or {}).get(name)
    splits |= {str(s) for s in (info.splits if info and info.splits else {})}
    return _lacking(copy, need, splits)


def _lacking(copy: Path, need: DataNeed, splits: set[str]) -> str | None:
    lacking = [s for s in need.splits if splits and _split_name(s) not in splits]
    if not lacking:
        return None
    return (
        f"the copy at {copy} has no split {', '.join(lacking)} in {need.describe()} (it has "
        f"{', '.join(sorted(splits))})"
    )


@functools.lru_cache(maxsize=256)
def _dataset_module(copy: str, load_kwargs: str):
    """The `datasets` module of a local copy (what `load_dataset` resolves first), or why it
    cannot be made. Cached: a copy with a hundred configs takes a third of a second, and a
    group reads one config per task."""
    from datasets.load import dataset_module_factory

    try:
        return dataset_module_factory(copy, **json.loads(load_kwargs))
    except Exception as exc:  # datasets raises ValueError, FileNotFoundError, ...: all mean "no"
        return _first_line(exc)


def _builder_problem(copy: Path, need: DataNeed, kwargs: dict) -> str | None:
    """`copy_problem` through `datasets.load_dataset_builder` itself, in a throwaway cache
    directory so that its lock files land nowhere else."""
    import tempfile

    import datasets

    try:
        with tempfile.TemporaryDirectory(prefix="harness-builder-") as cache:
            builder = datasets.load_dataset_builder(str(copy), need.name, cache_dir=cache, **kwargs)
    except Exception as exc:  # as in _dataset_module
        return f"the copy at {copy} cannot serve it: {_first_line(exc)}"
    splits = {str(s) for s in builder.config.data_files or {}}
    splits |= {str(s) for s in builder.info.splits or {}}
    return _lacking(copy, need, splits)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cache_problem(files: list[Path], need: DataNeed) -> str | None:
    """The `datasets` cache holds one arrow file (or shards) per split: `<name>-<split>.arrow`."""
    names = {p.name for p in files if p.suffix == ".arrow"}
    lacking = [
        s
        for s in need.splits
        if not any(
            n.endswith((f"-{_split_name(s)}.arrow",)) or f"-{_split_name(s)}-" in n for n in names
        )  # fmt: skip
    ]
    if lacking and names:
        return f"the datasets cache of {need.describe()} has no split {', '.join(lacking)}"
    return None


def _split_name(split: str) -> str:
    """`test[:100]` reads split `test`."""
    return split.split("[", 1)[0]


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
            # copy_problem resolves the builder with these same arguments, so what it accepts
            # loads here
            if copy is not None:
                kwargs.pop("revision", None)  # the copy is of that revision already
                return original(str(copy), name, *args, **kwargs)
        return original(path, name, *args, **kwargs)

    datasets.load_dataset = load_dataset
    try:
        yield
    finally:
        datasets.load_dataset = original


def splits_read(cfg: dict) -> tuple[str, ...]:
    """The splits lm-eval reads when it builds a task from config `cfg`: the evaluation split
    (test, else validation) and the few-shot source (fewshot_split, else training, validation,
    test, in that order), read whether or not the task asks for few-shot examples."""
    evaluation = cfg.get("test_split") or cfg.get("validation_split")
    shots = cfg.get("fewshot_config") if isinstance(cfg.get("fewshot_config"), dict) else {}
    fewshot = shots.get("split") or cfg.get("fewshot_split")
    if not fewshot and shots.get("samples") is None:  # else the examples are in the config
        fewshot = cfg.get("training_split") or cfg.get("validation_split") or cfg.get("test_split")
    return tuple(dict.fromkeys(str(s) for s in (evaluation, fewshot) if s))

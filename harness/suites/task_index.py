"""lm-eval's task index of its own registry, kept between runs.

A `TaskManager` that includes lm-eval's registry parses all of its task files (about 14,000
YAML files) when it is made: 15 to 20 seconds before the first model of a run with one standard
benchmark, every run, although those files change only when lm-eval is installed again. Here
the index of the registry directory is kept in harness's cache as names, kinds, tags and file
paths, keyed by lm-eval's version and a fingerprint of the directory (path, size and mtime of
every YAML file, a stat each: well under a second). Each entry reads its task file again the
first time its configuration is asked for, with the same loader and options lm-eval's index
uses, so a task that is built gets exactly the configuration it would have had. The task paths
of a run (harness's `tasks/`, a config's `task_paths`) are indexed as lm-eval does, every time.

The cache is JSON (never pickle: it is read outside the sandbox) and lives beside harness's
other caches (`harness.models.gguf_cache.cache_root`), which the sandboxed worker cannot write.

Checked against lm-eval 0.4.13 (`lm_eval.tasks._index.TaskIndex.build`, `Entry`);
tests/suites/test_task_index.py fails if the cached index differs from lm-eval's own.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

_IGNORED = ("__pycache__", ".ipynb_checkpoints")  # lm-eval's `_IGNORE_DIRS`


def registry_root() -> Path:
    """The directory of lm-eval's own task files."""
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def fingerprint(root: Path) -> str:
    """sha256 over (path, size, mtime) of every YAML file under `root`: any file added,
    removed or rewritten changes it."""
    digest = hashlib.sha256()
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in _IGNORED:
                        stack.append(entry.path)
                elif entry.name.endswith(".yaml"):
                    stat = entry.stat()
                    digest.update(f"{entry.path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _lazy_entry_class():
    from lm_eval.tasks._index import Entry
    from lm_eval.tasks._yaml_loader import load_yaml

    class LazyEntry(Entry):
        """An index entry whose configuration is read from its file when first asked for."""

        summary: dict | None = None
        """What index-wide scans read of every entry (`summary_of`), without the file."""

        @property
        def cfg(self):
            if self._cfg is None and self.yaml_path is not None and not self._read:
                self._read = True
                self._cfg = load_yaml(self.yaml_path, resolve_func=False, recursive=True)
            return self._cfg

        @cfg.setter
        def cfg(self, value) -> None:
            self._cfg = value
            self._read = value is not None

    return LazyEntry


def registry_index(root: Path | None = None, build=None) -> dict:
    """lm-eval's index of its registry (`TaskIndex.build([root])`), from harness's cache when
    it is current, else built (by `build`, default lm-eval's) and kept."""
    from importlib.metadata import version

    from lm_eval.tasks._index import Kind, TaskIndex

    from harness.models.gguf_cache import cache_root

    root = root or registry_root()
    stamp = fingerprint(root)
    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    kept = cache_root() / "lm-eval-index" / f"{version('lm_eval')}-{name}-2.json"
    try:
        data = json.loads(kept.read_text(encoding="utf-8"))
        if data["fingerprint"] == stamp:
            lazy = _lazy_entry_class()
            index = {}
            for key, (kind, path, tags, summary) in data["entries"].items():
                entry = lazy(key, Kind[kind], Path(path) if path else None, None, set(tags))
                entry.summary = summary
                index[key] = entry
            return index
    except (OSError, ValueError, KeyError, TypeError):
        pass
    index = (build or TaskIndex.build)([root])
    entries = {
        key: (
            e.kind.name,
            str(e.yaml_path) if e.yaml_path else None,
            sorted(e.tags),
            summary_of(e.cfg),
        )
        for key, e in index.items()
    }
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"fingerprint": stamp, "entries": entries}), "utf-8")
        os.replace(partial, kept)
    except OSError:
        pass  # a read-only cache: index again next time
    return index


def summary_of(cfg: dict | None) -> dict:
    """The keys of a task's configuration that scans of the whole index read
    (`harness.suites.languages.LanguageIndex`): its dataset, and a group's member names."""
    cfg = cfg or {}
    summary = {k: cfg[k] for k in ("dataset_path", "dataset_name") if cfg.get(k) is not None}
    if "group" in cfg:
        members = cfg.get("task")
        members = members if isinstance(members, list) else [members]
        names = [m.get("task") if isinstance(m, dict) else m for m in members]
        summary["task"] = [n for n in names if isinstance(n, str)]
    return summary


@contextmanager
def _registry_from_cache():
    """While active, lm-eval's `TaskIndex.build` takes its registry directory's index from
    `registry_index` and indexes the other directories itself, merged as it merges them
    (later directories override earlier ones)."""
    from lm_eval.tasks._index import TaskIndex

    original = TaskIndex.__dict__["build"]
    root = registry_root()

    def build(paths, *, resolve_includes=True):
        paths = list(paths)
        if not paths or not resolve_includes or Path(paths[0]) != root:
            return original.__func__(paths, resolve_includes=resolve_includes)
        index = dict(registry_index(root, original.__func__))
        if paths[1:]:
            index.update(original.__func__(paths[1:], resolve_includes=resolve_includes))
        return index

    TaskIndex.build = staticmethod(build)
    try:
        yield
    finally:
        TaskIndex.build = original


def full_task_manager(include_path: list[str]):
    """lm-eval's `TaskManager(include_path=...)` (its registry and these directories), with
    the registry's index from harness's cache."""
    from lm_eval.tasks import TaskManager

    with _registry_from_cache():
        return TaskManager(include_path=include_path)

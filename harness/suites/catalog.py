"""Find suites: lm-eval tasks and groups in the project's `tasks/`, a config's `task_paths`,
or lm-eval's own registry, and check that their local data is readable before a model loads."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.builtin import TASKS
from harness.errors import TaskError
from harness.suites.jsonl import LOADER, check_jsonl, resolve_data_files
from harness.suites.requirements import Requirement, task_requirements
from harness.suites.sources import (
    DataLocation,
    DataNeed,
    fetch_hint,
    is_hub_dataset,
    locate,
    splits_read,
)

PROJECT_TASKS = TASKS
"""The built-in suites: the repository's `tasks/`, or the copy inside an installed wheel."""


@dataclass
class SuiteInfo:
    """A suite as harness sees it before running: what it contains and where its data is."""

    name: str
    kind: str
    """`group` or `task`."""
    source: str
    """The YAML file defining it, or `lm-eval registry`."""
    tasks: list[str] = field(default_factory=list)
    """Leaf task names."""
    languages: dict[str, str] = field(default_factory=dict)
    """Leaf task name -> language (BCP 47), from its `metadata.language` or read off lm-eval's
    names and configs (`harness.suites.languages`); tasks of unknown language are absent."""
    items: dict[str, int] = field(default_factory=dict)
    """Leaf task name -> number of items in its local data (when local)."""
    data_files: list[Path] = field(default_factory=list)
    sources: dict[str, DataLocation] = field(default_factory=dict)
    """Leaf task name -> where its hub dataset is on this machine (tasks that name one)."""
    requirements: list[Requirement] = field(default_factory=list)
    """What its tasks would fetch or import at run time and this machine lacks."""
    definition_files: list[tuple[Path, str]] = field(default_factory=list)
    """(path, role) of the files that define its tasks (`harness.identity.task_files`)."""
    shapes: dict[str, tuple[int, bool]] = field(default_factory=dict)
    """Leaf task name -> (its `num_fewshot`, whether it generates): what the memory preflight
    needs to bound the length of its requests (`harness.capacity.inputs`)."""

    @property
    def total_items(self) -> int:
        return sum(self.items.values())

    @property
    def missing(self) -> list[DataNeed]:
        """The hub datasets of this suite that are not on this machine, each once."""
        needs = [loc.need for loc in self.sources.values() if not loc.present]
        return list(dict.fromkeys(needs))


class SuiteCatalog:
    """The suites visible to a run. lm-eval's full registry (about 15,000 YAML files, some
    twenty seconds to index) is read only when a suite is not found in the local directories."""

    def __init__(self, task_paths: list[Path] | None = None, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        if data_dir is not None and not data_dir.is_dir():
            raise TaskError(f"data_dir {data_dir} does not exist (from `data_dir:`)")
        self.directories = [PROJECT_TASKS, *(task_paths or [])]
        for directory in self.directories[1:]:
            if not directory.is_dir():
                raise TaskError(f"task path {directory} does not exist (from `task_paths:`)")
        self._local = None
        self._full = None
        self._located: dict = {}
        self._language_index: tuple = (None, None)

    @property
    def local(self):
        """A TaskManager over the local task directories only."""
        if self._local is None:
            from lm_eval.tasks import TaskManager

            self._local = TaskManager(include_path=self._dirs(), include_defaults=False)
        return self._local

    def full(self):
        """A TaskManager over the local directories and lm-eval's registry."""
        if self._full is None:
            from harness.suites.task_index import full_task_manager

            self._full = full_task_manager(self._dirs())  # the registry's index kept between runs
        return self._full

    def manager_for(self, names: list[str]):
        """The cheapest TaskManager that knows every name in `names`."""
        if all(name in self.local.task_index for name in names):
            return self.local
        return self.full()

    def check(self, names: list[str]) -> list[SuiteInfo]:
        """Resolve each suite name and read its local data; raise `TaskError` on the first
        unknown name or broken file."""
        manager = self.manager_for(names)
        unknown = [n for n in names if n not in manager.task_index]
        if unknown:
            raise TaskError(self._unknown_message(unknown, manager))
        infos = [self.describe(name, manager) for name in names]
        missing = {need: info.name for info in infos for need in info.missing}
        lacking = [r for info in infos for r in info.requirements]
        if missing or lacking:
            lines = [self._missing_data_message(missing)] if missing else []
            if lacking:
                lines.append("needed at run time and not on this machine (nothing was loaded):")
                lines += [f"  {r.explain()}" for r in lacking]
            raise TaskError("\n".join(lines))
        return infos

    def describe(self, name: str, manager=None) -> SuiteInfo:
        """What suite `name` contains, counting the items of its local JSONL data."""
        manager = manager or self.local
        entry = manager.task_index[name]
        kind = "group" if entry.kind.name == "GROUP" else "task"
        info = SuiteInfo(name=name, kind=kind, source=self._source(entry))
        yaml_paths = [entry.yaml_path] if entry.yaml_path else []
        for leaf_name, cfg in self._leaves(name, manager.task_index, seen=set()):
            leaf = manager.task_index.get(leaf_name)
            if leaf is not None and leaf.yaml_path:
                yaml_paths.append(leaf.yaml_path)
            info.tasks.append(leaf_name)
            generates = cfg.get("output_type") == "generate_until"
            info.shapes[leaf_name] = (int(cfg.get("num_fewshot") or 0), generates)
            info.requirements += task_requirements(leaf_name, cfg)
            language = self.languages(manager).of(leaf_name, cfg, parents=(name,))
            if language:
                info.languages[leaf_name] = language
            splits = self._local_data_splits(cfg, manager.task_index.get(leaf_name))
            files = [p for paths in splits.values() for p in paths]
            if files:
                info.data_files += files
                counts = {p: check_jsonl(p, cfg) for p in files}  # every file checked
                # the items are the split lm-eval scores (a dev split only gives few-shot
                # examples); all files when the split is not named among them
                scored = splits.get(cfg.get("test_split") or cfg.get("validation_split"), files)
                info.items[leaf_name] = sum(counts[p] for p in scored)
            elif is_hub_dataset(str(cfg.get("dataset_path") or "json")):
                location = self._locate(cfg)
                info.sources[leaf_name] = location
                info.data_files += [p for p in location.files if p not in info.data_files]
        from harness.identity import task_files

        info.definition_files = task_files(yaml_paths)
        return info

    def languages(self, manager=None):
        """The `LanguageIndex` of a TaskManager's index (built once per manager)."""
        from harness.suites.languages import LanguageIndex

        manager = manager or self.local
        if self._language_index[0] is not manager:
            self._language_index = (manager, LanguageIndex(manager.task_index))
        return self._language_index[1]

    def _locate(self, cfg: dict) -> DataLocation:
        kwargs = cfg.get("dataset_kwargs") or {}
        need = DataNeed(
            path=str(cfg["dataset_path"]),
            name=str(cfg["dataset_name"]) if cfg.get("dataset_name") else None,
            revision=kwargs.get("revision"),
            splits=splits_read(cfg),
            load_kwargs=json.dumps(
                {k: v for k, v in kwargs.items() if k != "revision"}, sort_keys=True, default=str
            ),
        )
        key = (need, self.data_dir)
        if key not in self._located:
            self._located[key] = locate(need, self.data_dir)
        return self._located[key]

    def _missing_data_message(self, missing: dict[DataNeed, str]) -> str:
        problems = {loc.need: loc.problem for loc in self._located.values() if loc.problem}
        lines = [
            "data not on this machine (nothing was loaded):"
            if any(need not in problems for need in missing)
            else "a local copy lacks the config or split a task reads (nothing was loaded):"
        ]
        lines += [
            f"  suite '{suite}' needs {need.describe()}"
            + (f": {problems[need]}" if need in problems else "")
            for need, suite in missing.items()
        ]
        looked = f"`data_dir:` ({self.data_dir}), " if self.data_dir else "`data_dir:` (not set), "
        lines.append(
            f"Looked in {looked}the Hugging Face hub cache and the datasets cache. To fix it: "
            + fetch_hint(next(iter(missing)))
            + "."
        )
        return "\n".join(lines)

    def local_suite_names(self) -> list[str]:
        """Every group in the local directories, and every task not inside one of them."""
        index = self.local.task_index
        groups = sorted(name for name, entry in index.items() if entry.kind.name == "GROUP")
        grouped = {leaf for group in groups for leaf, _ in self._leaves(group, index, set())}
        tasks = sorted(
            name
            for name, entry in index.items()
            if entry.kind.name in ("TASK", "PY_TASK") and name not in grouped
        )
        return groups + tasks

    def local_suites(self) -> list[SuiteInfo]:
        """`describe` of every local suite; raises on the first broken one."""
        return [self.describe(name) for name in self.local_suite_names()]

    def _leaves(self, name: str, index: dict, seen: set[str]):
        entry = index.get(name)
        if entry is None or name in seen:
            return
        seen.add(name)
        cfg: dict[str, Any] = entry.cfg or {}
        if entry.kind.name == "GROUP":
            for child in _as_list(cfg.get("task")):
                if isinstance(child, str) and child not in index:
                    raise TaskError(self._missing_member_message(name, entry, child))
                if isinstance(child, str):
                    yield from self._leaves(child, index, seen)
                elif isinstance(child, dict) and "task" in child:
                    yield str(child["task"]), child
        elif entry.kind.name == "TAG":
            for other, other_entry in index.items():
                if name in (other_entry.tags or ()):
                    yield from self._leaves(other, index, seen)
        else:
            if entry.kind.name == "TASK" and not (
                cfg.get("dataset_path") or cfg.get("custom_dataset")
            ):
                raise TaskError(
                    f"task '{name}' ({entry.yaml_path}) names no data: set `dataset_path` "
                    "(a hub dataset, or `json` with `dataset_kwargs.data_files`) or "
                    f"`custom_dataset: !function {LOADER}`."
                )
            yield name, cfg

    def _missing_member_message(self, group: str, entry, child: str) -> str:
        lines = [
            f"group '{group}' ({entry.yaml_path}) lists task '{child}', which no readable "
            "task file defines."
        ]
        return "\n".join(lines + self._unreadable_yaml_lines())

    def _local_data_splits(self, cfg: dict, entry) -> dict[str, list[Path]]:
        """A task's local JSONL files per split (none when its data is not local JSON)."""
        kwargs = cfg.get("dataset_kwargs") or {}
        loader = str(cfg.get("custom_dataset") or "")
        uses_local_loader = loader.endswith(LOADER)
        is_json = cfg.get("dataset_path") in ("json", "jsonl") or uses_local_loader
        if not is_json or "data_files" not in kwargs:
            return {}
        base = entry.yaml_path.parent if entry is not None and entry.yaml_path else Path()
        if not uses_local_loader:
            base = Path()  # plain `dataset_path: json` resolves against the working directory
        return resolve_data_files(kwargs["data_files"], base)

    def _source(self, entry) -> str:
        if entry.yaml_path is None:
            return "lm-eval (python)"
        path = Path(entry.yaml_path)
        for directory in self.directories:
            if path.is_relative_to(directory.resolve()):
                return str(path)
        return "lm-eval registry"

    def _unknown_message(self, unknown: list[str], manager) -> str:
        from harness.suites.task_yaml import likely_definition

        lines = []
        broken = self._unreadable_yaml()
        for name in unknown:
            if found := likely_definition(name, broken):
                lines.append(
                    f"suite '{name}': its task file {found[0]} cannot be read: {found[1]}. "
                    "Fix the file; lm-eval skips a file it cannot parse."
                )
                broken.remove(found)
                continue
            close = difflib.get_close_matches(name, manager.all_tasks, n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            lines.append(
                f"unknown suite '{name}': no lm-eval task, group or tag by that name.{hint}"
            )
        if broken:
            lines.append("These task files could not be read and may be the cause:")
            lines += [f"  {path}: {reason}" for path, reason in broken]
        lines.append("`harness tasks` lists the local suites.")
        return "\n".join(lines)

    def _unreadable_yaml_lines(self) -> list[str]:
        broken = self._unreadable_yaml()
        if not broken:
            return []
        return ["These task files could not be read and may be the cause:"] + [
            f"  {path}: {reason}" for path, reason in broken
        ]

    def _unreadable_yaml(self) -> list[tuple[Path, str]]:
        from lm_eval.tasks._yaml_loader import load_yaml

        from harness.suites.task_yaml import describe_yaml_error

        broken = []
        for directory in self.directories:
            for path in sorted(directory.glob("**/*.yaml")):
                try:
                    load_yaml(path, resolve_func=False)
                except Exception as exc:
                    broken.append((path, describe_yaml_error(exc, path)))
        return broken

    def _dirs(self) -> list[str]:
        return [str(d) for d in self.directories if d.is_dir()]


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]

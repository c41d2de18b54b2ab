"""The language of every task, read off lm-eval's own names and configs.

lm-eval's task YAMLs have no language field, but its names and dataset configs follow a few
conventions, and a code in one of them is parsed and normalised by `langcodes` (the IANA
language subtag registry, BCP 47), so any language lm-eval covers is found, not only a list of
ours. The evidence for one task, strongest first:

1. `metadata.language` (harness's own suites set it);
2. a pair of languages in the name (`flores_afr-eng`, `..._eu-it`): a translation, `mul`;
3. a code with its script in the name: `belebele_swh_Latn`, `flores_hin_Deva`;
4. a benchmark named without a code (`kobest`, `kmmlu`, ...: `benchmarks.UNMARKED`);
5. a code as the last segment of the name (`xnli_sw`, `indicxnli_gu`), counted only when the
   sibling names (same prefix) carry at least three codes, or the dataset config or a folder of
   the data files is that code: `uncheatable_eval_arxiv_cs` (computer science), `csatqa_li`
   (literature) and `xnli_eu_mt` (machine-translated) are not Czech, Limburgish or Maltese;
6. the dataset config: `sw`, `swh_Latn`, `SW_KE`, `Swahili`, a three-letter code if that
   dataset's other configs are codes too;
7. a language's English name as a segment of the name (`include_base_44_hindi`,
   `japanese_leaderboard`);
8. the same, in order, for the groups that list the task and the tags it carries, nearest first:
   `ja_leaderboard_jnli` is Japanese because `japanese_leaderboard` lists it.

Codes are normalised by `harness.suites.language_codes` (`sw`, `ar`, `zh`, `hi`, `hi-Latn`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from harness.suites.benchmarks import UNMARKED
from harness.suites.language_codes import (
    MULTIPLE,
    code,
    english_name,
    is_major,
    matches,
    normalize,
    words_are_spaced,
)

__all__ = ["MULTIPLE", "LanguageIndex", "matches", "normalize", "words_are_spaced"]

_SCRIPTED = re.compile(r"(?<![A-Za-z])([a-z]{3})_([A-Z][a-z]{3})(?![a-z])")
_CODE = r"[a-z]{2,3}(?:_[A-Z][a-z]{3})?"
_PAIR = re.compile(rf"(?<![A-Za-z])({_CODE})-({_CODE})(?![A-Za-z])")
_LOCALE = re.compile(r"([A-Za-z]{2})[_-]([A-Z]{2}|\d{3})")
_FAMILY_MIN = 3


class LanguageIndex:
    """The languages of the tasks of one lm-eval task index (`TaskManager.task_index`), read
    without building any task or touching any dataset."""

    def __init__(self, index: Mapping[str, Any]) -> None:
        self.index = index
        self._families: dict[str, set[str]] = defaultdict(set)
        self._configs: dict[str, set[str]] = defaultdict(set)
        self._parents: dict[str, list[str]] = defaultdict(list)
        self._middles: dict[tuple[str, str], set[str]] = defaultdict(set)
        for name, entry in index.items():
            prefix, _, last = name.rpartition("_")
            self._families[prefix].add(last)
            grand, _, before = prefix.rpartition("_")
            self._middles[grand, last].add(before)
            # an entry of lm-eval's registry kept by harness (`task_index`) has what this
            # reads without reading its file
            summary = getattr(entry, "summary", None)
            cfg = summary if summary is not None else (entry.cfg or {})
            if cfg.get("dataset_path") and cfg.get("dataset_name") is not None:
                self._configs[str(cfg["dataset_path"])].add(str(cfg["dataset_name"]))
            if entry.kind.name == "GROUP":
                for child in filter(None, map(_child_name, _as_list(cfg.get("task")))):
                    self._parents[child].append(name)
            elif entry.kind.name != "TAG":
                self._parents[name] += sorted(entry.tags or ())
        self._memo: dict[str, str | None] = {}
        self._own_memo: dict[str, str | None] = {}
        self._leaves: dict[str, list[str]] = {}
        self._backing: dict[str, int] = {}

    def of(self, name: str, cfg: Mapping | None = None, parents: Iterable[str] = ()) -> str | None:
        """The language of task `name` (its config `cfg` when it is not in the index, e.g. a
        task defined inside a group), or None when nothing says; `parents` are groups it is
        known to be in besides those of the index."""
        extra = tuple(p for p in parents if p != name)
        if cfg is None and not extra and name in self._memo:
            return self._memo[name]
        entry = self.index.get(name)
        entry_cfg = (entry.cfg if entry is not None else None) or {}
        if cfg is None:
            cfg = entry_cfg
        language = self._own(name, cfg) if cfg is not entry_cfg else self._own_indexed(name)
        level, seen = [*self._parents.get(name, ()), *extra], {name}
        while language is None and level:
            found = {self._own_indexed(p) for p in level} - {None}
            if len(found) == 1:
                language = found.pop()
            elif found:
                break  # parents that disagree say nothing
            seen.update(level)
            level = [q for p in level for q in self._parents.get(p, ()) if q not in seen]
        if not extra and cfg is entry_cfg:
            self._memo[name] = language
        return language

    def leaves(self, name: str) -> list[str]:
        """The tasks under a group or tag (a task is its own leaf), skipping unknown members."""
        if name not in self._leaves:
            self._leaves[name] = []  # a group inside itself ends here
            entry = self.index.get(name)
            kind = entry.kind.name if entry is not None else None
            if kind == "GROUP":
                children = [_child_name(c) for c in _as_list((entry.cfg or {}).get("task"))]
                found = [leaf for c in children if c for leaf in self.leaves(c)]
            elif kind == "TAG":
                found = [leaf for t in sorted(entry.tags or ()) for leaf in self.leaves(t)]
            else:
                found = [name] if entry is not None else []
            self._leaves[name] = list(dict.fromkeys(found))
        return self._leaves[name]

    def suites(self, wanted: str) -> list[str]:
        """The largest suites in language `wanted`: each group whose tasks are all in it and
        is not inside such a group, then each such task in no such group, by name."""
        groups = {n for n, e in self.index.items() if e.kind.name == "GROUP"}
        tasks = {n for n, e in self.index.items() if e.kind.name in ("TASK", "PY_TASK")}
        fits = {t for t in tasks if matches(self.of(t), wanted)}
        whole = {g for g in groups if (leaves := self.leaves(g)) and set(leaves) <= fits}
        inside = {c for g in whole for c in self._members(g)}
        covered = {leaf for g in whole for leaf in self.leaves(g)}
        top = sorted(g for g in whole if g not in inside)
        return top + sorted(fits - covered)

    def _members(self, group: str) -> set[str]:
        members, stack = set(), [group]
        while stack:
            cfg = self._cfg(stack.pop())
            for child in filter(None, map(_child_name, _as_list(cfg.get("task")))):
                if child not in members:
                    members.add(child)
                    stack.append(child)
        return members

    def _own_indexed(self, name: str) -> str | None:
        if name not in self._own_memo:
            self._own_memo[name] = self._own(name, self._cfg(name))
        return self._own_memo[name]

    def _cfg(self, name: str) -> Mapping:
        entry = self.index.get(name)
        return (entry.cfg if entry is not None else None) or {}

    def _own(self, name: str, cfg: Mapping) -> str | None:
        """What the task's own name and config say (steps 1 to 7 of the module docstring)."""
        declared = (cfg.get("metadata") or {}).get("language") if isinstance(cfg, Mapping) else None
        if declared:
            return normalize(str(declared)) or str(declared)
        if any(code(a.split("_")[0]) and code(b.split("_")[0]) for a, b in _PAIR.findall(name)):
            return MULTIPLE
        scripted = {normalize(f"{c}-{s}") for c, s in _SCRIPTED.findall(name) if code(c)}
        scripted.discard(None)
        if len(scripted) == 1:
            return scripted.pop()
        for prefix, language in UNMARKED.items():
            if name == prefix or name.startswith(prefix + "_"):
                return language
        config = str(cfg.get("dataset_name") or "")
        language = self._suffix(name, config, _data_file_parts(cfg))
        if language:
            return language
        language = self._config(config, str(cfg.get("dataset_path") or ""))
        if language:
            return language
        named = {english_name(s) for s in re.split(r"[_\-]+", name.lower())} - {None}
        return normalize(named.pop()) if len(named) == 1 else None

    def _suffix(self, name: str, config: str, files: set[str]) -> str | None:
        """A code as the last segment, if its siblings, its dataset config or the folders of its
        data files (`gu/test/0000.parquet`) back it; two codes there (`mlqa_en_hi`: English
        context, Hindi question) make it `mul`."""
        prefix, _, last = name.rpartition("_")
        language = code(last) if prefix and last.islower() else None
        if language is None:
            return None
        said = is_major(last) and (config == last or last in files)
        if not said and self._backed(prefix) < _FAMILY_MIN:
            return None
        grand, _, before = prefix.rpartition("_")
        other = code(before) if grand and before.islower() else None
        if other and other != language:
            if sum(map(is_major, self._middles[grand, last])) >= _FAMILY_MIN:
                return MULTIPLE
        return language

    def _backed(self, prefix: str) -> int:
        """How many names `<prefix>_<code>` carry a major language code."""
        if prefix not in self._backing:
            self._backing[prefix] = sum(map(is_major, self._families.get(prefix, ())))
        return self._backing[prefix]

    def _config(self, config: str, dataset: str) -> str | None:
        if not config:
            return None
        if len(config) == 2 and config.islower():
            return code(config)
        if _SCRIPTED.fullmatch(config):
            return normalize(config)
        locale = _LOCALE.fullmatch(config)
        if locale:
            return code(locale.group(1).lower())
        if len(config) == 3 and config.islower():
            siblings = self._configs.get(dataset, set())
            if is_major(config) or sum(map(is_major, siblings)) >= _FAMILY_MIN:
                return code(config)
            return None
        if config.isalpha() and len(config) > 3:
            name = english_name(config.lower())
            return normalize(name) if name else None
        return None


def _data_file_parts(cfg: Mapping) -> set[str]:
    """The folder and file names (without suffixes) of a task's `dataset_kwargs.data_files`."""
    files = (
        (cfg.get("dataset_kwargs") or {}).get("data_files") if isinstance(cfg, Mapping) else None
    )
    paths = files.values() if isinstance(files, Mapping) else [files]
    flat = [p for v in paths for p in (v if isinstance(v, (list, tuple)) else [v])]
    return {part.split(".")[0] for p in flat if isinstance(p, str) for part in p.split("/")}


def _child_name(child) -> str | None:
    """A group member's name: a string, or the `task` of a member defined inline."""
    child = child.get("task") if isinstance(child, dict) else child
    return child if isinstance(child, str) else None


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]

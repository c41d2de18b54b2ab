"""Local JSONL data for lm-eval tasks, with paths relative to the task's YAML file.

lm-eval hands `dataset_kwargs.data_files` to `datasets.load_dataset`, which resolves relative
paths against the working directory. A task YAML that says

    custom_dataset: !function harness.suites.jsonl.load_local_jsonl
    dataset_kwargs:
      data_files: {test: data/en.jsonl}

gets its files from next to the YAML instead, from any working directory, after each line has
been checked to be a JSON object (so a broken line is one clear error, not a pyarrow trace).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import TaskError

LOADER = "harness.suites.jsonl.load_local_jsonl"


def load_local_jsonl(data_files: dict | str | list, config_source: str | None = None, **_meta):
    """`custom_dataset` entry point for lm-eval: a DatasetDict of the task's JSONL splits."""
    import datasets

    base = Path(config_source).parent if config_source and config_source != "inline" else Path()
    splits = resolve_data_files(data_files, base)
    for paths in splits.values():
        for path in paths:
            check_jsonl(path)
    return datasets.load_dataset(
        "json", data_files={k: [str(p) for p in v] for k, v in splits.items()}
    )


def resolve_data_files(data_files: dict | str | list, base: Path) -> dict[str, list[Path]]:
    """`data_files` as lm-eval YAML writes it, as absolute paths per split."""
    if not isinstance(data_files, dict):
        data_files = {"train": data_files}
    return {
        split: [p if p.is_absolute() else base / p for p in map(Path, _as_list(files))]
        for split, files in data_files.items()
    }


@dataclass(frozen=True)
class ItemProblem:
    """One thing wrong with a JSONL data file, at a line (None: the whole file)."""

    path: Path
    line: int | None
    message: str
    key: str | None = None
    """The item's key the problem is about, when there is one."""

    def __str__(self) -> str:
        return f"{self.path}{f' line {self.line}' if self.line else ''}: {self.message}"


MAX_SHOWN = 8
"""Problems listed in one error message; the rest are counted."""


def check_jsonl(path: Path, task: dict | None = None) -> int:
    """Check a JSONL data file (`check_items`); return its number of items, or raise
    `TaskError` listing the problems, each with its file and line."""
    problems, count = _items(path, task)
    if problems:
        shown = [str(p) for p in problems[:MAX_SHOWN]]
        if len(problems) > MAX_SHOWN:
            shown.append(f"... and {len(problems) - MAX_SHOWN} more in {path}")
        raise TaskError("\n".join(shown))
    return count


def check_items(path: Path, task: dict | None = None) -> list[ItemProblem]:
    """Every problem of a task's JSONL data file that lm-eval would only meet after the model
    loaded (as a `TypeError`, a Python-literal parse error, or a score silently wrong).

    Each line must be one JSON object, and each key one JSON type in every item (`datasets`
    makes one column of each). With `task`, the task's config as lm-eval's TaskManager indexes
    it (its YAML with includes merged), each item must also have what the task reads: the keys
    of `doc_to_text`, and for multiple choice a list of at least two strings under the key of
    `doc_to_choice` and, under the key of `doc_to_target`, the index of the right choice (or
    its text); for generation, the reference answer. Templates more complex than one
    `{{key}}`, and Python functions, are not checked."""
    return _items(path, task)[0]


def _items(path: Path, task: dict | None) -> tuple[list[ItemProblem], int]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [
            ItemProblem(path, None, "data file does not exist. Check the task's data_files.")
        ], 0
    except IsADirectoryError:
        return [ItemProblem(path, None, "a directory, not a data file. Check data_files.")], 0
    except UnicodeDecodeError as exc:
        return [ItemProblem(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start}).")], 0
    fields = _TaskFields.of(task or {})
    problems: list[ItemProblem] = []
    types: dict[str, tuple[str, int]] = {}
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(ItemProblem(path, number, (
                f"not valid JSON ({exc.msg} at column {exc.colno}). Each line must be one "
                "JSON object: fix or remove the line."
            )))  # fmt: skip
            continue
        if not isinstance(item, dict):
            problems.append(ItemProblem(path, number, (
                f"a JSON {_type(item)}, not an object. Each line must be one JSON object."
            )))  # fmt: skip
            continue
        count += 1
        found = fields.check(item)
        flagged = {key for key, _ in found}
        typed = {k: v for k, v in item.items() if k not in flagged}
        found += list(_mixed_types(typed, number, types))
        problems += [ItemProblem(path, number, message, key) for key, message in found]
    if count == 0 and not problems:
        problems.append(ItemProblem(path, None, "no items. Add at least one JSON object per line."))
    return problems, count


@dataclass(frozen=True)
class _TaskFields:
    """The keys of an item a task reads, from its `doc_to_*` settings."""

    output_type: str | None
    text: tuple[str, ...]
    """Keys `doc_to_text` prints (not those it only tests in `{% if %}`)."""
    choices: str | None
    target: str | None

    @classmethod
    def of(cls, task: dict) -> _TaskFields:
        text = task.get("doc_to_text")
        printed: tuple[str, ...] = ()
        if isinstance(text, str):
            tested = set(re.findall(r"\{%-?\s*(?:el)?if\s+(\w+)", text))
            # names a template binds itself (loop variables, `set`) and Jinja's own `loop`
            tested |= set(re.findall(r"\{%-?\s*(?:for|set)\s+(\w+)", text)) | {"loop"}
            names = re.findall(r"\{\{-?\s*(\w+)", text)
            printed = tuple(dict.fromkeys(n for n in names if n not in tested))
        return cls(
            output_type=task.get("output_type"),
            text=printed,
            choices=_key_of(task.get("doc_to_choice")),
            target=_key_of(task.get("doc_to_target")),
        )

    def check(self, item: dict) -> list[tuple[str, str]]:
        """(key, message) for each thing this item lacks."""
        out = [
            (key, f"no `{key}` (the task's doc_to_text prints it). Add it to the item.")
            for key in self.text
            if item.get(key) is None
        ]
        if self.output_type == "multiple_choice" and self.choices:
            out += self._choices(item)
        elif self.output_type == "generate_until" and self.target:
            if item.get(self.target) is None:
                out.append((self.target, (
                    f"no `{self.target}` (the reference answer the task's doc_to_target "
                    "reads). Add it to the item."
                )))  # fmt: skip
        return out

    def _choices(self, item: dict) -> list[tuple[str, str]]:
        key, choices = self.choices, item.get(self.choices or "")
        if choices is None:
            return [(key, (
                f"no `{key}` (the task's doc_to_choice reads it). Give the answer options as "
                f'a JSON list of strings: "{key}": ["...", "..."].'
            ))]  # fmt: skip
        if not isinstance(choices, list):
            return [(key, (
                f"`{key}` is a {_type(choices)}, not a list. Write the answer options as a "
                f'JSON list of strings: "{key}": ["...", "..."].'
            ))]  # fmt: skip
        out = []
        if len(choices) < 2:
            out.append((key, f"`{key}` has {len(choices)} option(s); give at least 2."))
        wrong = [i for i, c in enumerate(choices) if not isinstance(c, str)]
        if wrong:
            out.append((key, (
                f"`{key}` option {wrong[0]} is a {_type(choices[wrong[0]])}: write every "
                "option as a JSON string (numbers too: \"12\", not 12)."
            )))  # fmt: skip
        return out + self._answer(item, choices)

    def _answer(self, item: dict, choices: list) -> list[tuple[str, str]]:
        key = self.target
        if key is None:
            return []
        answer = item.get(key)
        valid = f"0 to {len(choices) - 1}, the index of the right option in `{self.choices}`"
        if answer is None:
            return [(key, f"no `{key}`. Give the index of the right option ({valid}).")]
        if isinstance(answer, str) and answer.isdigit():
            answer = int(answer)  # lm-eval reads a string of digits as the index
        if isinstance(answer, bool) or not isinstance(answer, (int, str)):
            return [(key, f"`{key}` is a {_type(answer)}; give a whole number ({valid}).")]
        if isinstance(answer, int) and not 0 <= answer < len(choices):
            return [(key, (
                f"`{key}` is {answer}, but there are {len(choices)} options: the item would be "
                f"scored wrong whatever the model answers. Give {valid}."
            ))]  # fmt: skip
        if isinstance(answer, str) and answer not in choices:
            return [(key, (
                f"`{key}` {answer!r} is not one of the options in `{self.choices}`: the item "
                f"would be scored wrong whatever the model answers. Give {valid}."
            ))]  # fmt: skip
        return []


def _key_of(setting) -> str | None:
    """The item key a `doc_to_*` setting reads: `key` or `{{key}}`; None for anything else."""
    if not isinstance(setting, str):
        return None
    found = re.fullmatch(r"\s*(?:\{\{\s*(\w+)\s*\}\}|(\w+))\s*", setting)
    return (found.group(1) or found.group(2)) if found else None


def _mixed_types(item: dict, number: int, types: dict[str, tuple[str, int]]):
    """(key, message) for a key whose JSON type differs from its first item's; once a key."""
    for key, value in item.items():
        if value is None:
            continue
        kind = _type(value)
        first = types.setdefault(key, (kind, number))
        if first[0] != kind and first[1] > 0:
            types[key] = (first[0], -first[1])
            yield (
                key,
                (
                    f"`{key}` is a {kind} here but a {first[0]} on line {first[1]} (maybe on "
                    "other lines too): every item must give a key the same JSON type (the data "
                    "loader makes one column of it)."
                ),
            )


def _type(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
            float: "number"}.get(type(value), type(value).__name__)  # fmt: skip


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]

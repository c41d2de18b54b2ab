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


def check_jsonl(path: Path) -> int:
    """Check every line of a JSONL file is a JSON object; return the number of items."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"{path}: data file does not exist. Check the task's data_files.") from None
    except UnicodeDecodeError as exc:
        raise TaskError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskError(
                f"{path} line {number}: not valid JSON ({exc.msg} at column {exc.colno}). "
                "Each line must be one JSON object: fix or remove the line."
            ) from None
        if not isinstance(item, dict):
            raise TaskError(
                f"{path} line {number}: a JSON {type(item).__name__}, not an object. "
                "Each line must be one JSON object."
            )
        count += 1
    if count == 0:
        raise TaskError(f"{path}: no items. Add at least one JSON object per line.")
    return count


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]

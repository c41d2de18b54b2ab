"""Task YAML files that lm-eval cannot read, said as a parser says them.

lm-eval's TaskManager skips a task file it cannot parse (with a log line), so a suite defined
in a file with a syntax error is simply absent, and harness used to call it an "unknown
suite". These functions name the file, the line and column, and the parser's own words, and
tell which broken file most likely defines a suite that was not found.
"""

from __future__ import annotations

import re
from pathlib import Path


def describe_yaml_error(exc: BaseException, path: Path | None = None) -> str:
    """`not valid YAML at line L, column C: <problem> (<context> at line K)` for a parser
    error (the file is named when the error is in another one, e.g. an `include`); the first
    line of the message for anything else."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        text = str(exc).strip().splitlines()
        return text[0] if text else type(exc).__name__
    where = ""
    named = mark.name and not str(mark.name).startswith("<")  # not "<unicode string>"
    if path is not None and named and Path(mark.name).name != Path(path).name:
        where = f" (in {mark.name}, which it includes)"
    described = (
        f"not valid YAML{where} at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    )
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        described += f" ({context} at line {context_mark.line + 1})"
    return described


def likely_definition(name: str, broken: list[tuple[Path, str]]) -> tuple[Path, str] | None:
    """The broken file (path, reason) that seems to define suite `name`: named after it, or
    holding `task: name` / `group: name`. lm-eval cannot tell, since it never parsed it."""
    pattern = re.compile(
        rf"^\s*(?:task|group|tag)\s*:\s*['\"]?{re.escape(name)}['\"]?\s*$", re.MULTILINE
    )
    for path, reason in broken:
        if path.stem == name:
            return path, reason
    for path, reason in broken:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if pattern.search(text):
            return path, reason
    return None

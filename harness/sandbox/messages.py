"""What crosses the boundary between the supervisor and a worker, typed.

The supervisor writes one `WorkerTask` (JSON) into the worker's scratch directory; the worker
answers with `WorkerMessage`s, one JSON object a line, on a pipe. The supervisor validates each
line and is the only one that writes the run directory, so a message that does not parse, or a
samples path that leaves `samples/<model>/`, is the worker's failure, never a file written.
"""

from __future__ import annotations

import json
import os
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkerTask(_Message):
    """Everything a worker needs to score one model; nothing it could write back to."""

    config: dict[str, Any]
    model_id: str
    source: dict[str, Any]
    entry: dict[str, Any]
    """The model's results entry so far (its identity, hashed by the supervisor)."""
    suites: dict[str, Any]
    preflight: dict[str, Any] | None = None
    root: str


class Say(_Message):
    type: Literal["say"] = "say"
    text: str


class Progress(_Message):
    """How far the worker has got (`harness.progress`), for the supervisor's one display."""

    type: Literal["progress"] = "progress"
    stage: Literal["suites", "requests", "bytes"]
    label: str = Field(max_length=200)
    done: int = Field(ge=0)
    total: int = Field(ge=0)


class Witness(_Message):
    """An attempt as the worker's in-process audit hook saw it (with its Python frames)."""

    type: Literal["witness"] = "witness"
    record: dict[str, Any]


class Entry(_Message):
    """The model's results entry as it stands now."""

    type: Literal["entry"] = "entry"
    entry: dict[str, Any]


class Samples(_Message):
    """One task's per-sample log, for the supervisor to write under the run directory."""

    type: Literal["samples"] = "samples"
    path: str
    rows: list[dict[str, Any]]

    @field_validator("path")
    @classmethod
    def _inside_samples(cls, value: str) -> str:
        parts = PurePosixPath(value).parts
        if (
            len(parts) != 3
            or parts[0] != "samples"
            or any(p in ("", ".", "..") or "\\" in p for p in parts)
            or not parts[2].endswith(".jsonl")
        ):
            raise ValueError(f"samples path {value!r} is not samples/<model>/<task>.jsonl")
        return value


class Failure(_Message):
    type: Literal["failure"] = "failure"
    where: str
    message: str


class Phases(_Message):
    type: Literal["phases"] = "phases"
    phases: dict[str, dict[str, float]]


class Done(_Message):
    type: Literal["done"] = "done"


WorkerMessage = Annotated[
    Say | Progress | Witness | Entry | Samples | Failure | Phases | Done,
    Field(discriminator="type"),
]


class Channel:
    """The worker's end of the pipe: one message, one line, one write."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: _Message) -> None:
        data = (message.model_dump_json() + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]


def read_messages(fd: int):
    """The supervisor's end: yield each valid message; raise ValueError on a malformed one."""
    from pydantic import TypeAdapter

    adapter = TypeAdapter(WorkerMessage)
    with os.fdopen(fd, "rb") as stream:
        for line in stream:
            if line.strip():
                yield adapter.validate_python(json.loads(line))

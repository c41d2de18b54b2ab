"""`harness attest RUN_DIR`: re-check a finished run against the files still on disk.

Recomputes the sha256 of every file the run recorded (each model's weights, config, tokenizer,
chat template and code; each suite's task definitions, task code and data) and says, file by
file, whether it still matches. A ministry signs a report about exact bytes; this is how anyone can
check, later, that the bytes on disk are the ones that were scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.digests import hash_files


@dataclass(frozen=True)
class FileCheck:
    """One recorded file compared with what is on disk now."""

    kind: str
    """What the file is for: weights, config, tokenizer, chat template, code, task definition,
    task code, data."""
    owner: str
    """The model id or suite name that read the file."""
    path: str
    """Its name (relative to the model's folder, or a task file's portable name), else its
    path."""
    recorded_sha256: str
    status: str
    """`match`, `changed` or `missing`."""
    current_sha256: str | None = None


def attest(run_dir: Path) -> list[FileCheck]:
    """Compare every file recorded in `run_dir/results.json` with the file on disk now."""
    results_file = run_dir / "results.json"
    from harness.record import load_record

    files = load_record(results_file).offline.files
    checks = []
    for kind, entries in (("weights", files.weights), ("data", files.data)):
        for entry in entries:
            path = Path(entry.real_path or entry.path)
            if not path.is_file():
                status, current = "missing", None
            else:
                current = hash_files([path], verify=True)[0].sha256
                status = "match" if current == entry.sha256 else "changed"
            owner = entry.model if kind == "weights" else entry.suite
            role = entry.role or kind
            checks.append(FileCheck(role, owner or "?", entry.name or str(path), entry.sha256 or "",
                                    status, current))  # fmt: skip
    return checks

"""Pins: `harness lock CONFIG` writes the sha256 of every file of the config's models and
suites to a lock file beside it (`demo.yaml` -> `demo.lock.json`), as a package manager does;
`harness run` then checks every file against it before any model loads, and refuses a
mismatch (exit 2) naming the file and both digests.

Files are named portably, so a lock written where the models were downloaded holds on the
air-gapped server they were carried to: a model's files relative to its folder, a task's files
relative to the task directory, lm-eval's package or the Hugging Face cache they are in. For a
model from the Hugging Face cache the lock also pins the snapshot's commit.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import BadInputError, PinMismatchError

LOCK_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LockedFile(_Strict):
    sha256: str
    size_bytes: int


class LockedModel(_Strict):
    source: str
    """Where the files were found, for people: a folder, a package or repo@commit."""
    repo: str | None = None
    commit: str | None = None
    """For a model from the Hugging Face cache: the snapshot's commit, pinned too."""
    digest: str
    """`harness.identity.identity_digest` of the files."""
    files: dict[str, LockedFile]
    """Path relative to the model's folder -> digest."""


class LockedSuite(_Strict):
    files: dict[str, LockedFile]
    """Portable name (see `portable_name`) -> digest: task definitions, code and data."""


class LockFile(_Strict):
    lock_version: Literal[1] = LOCK_VERSION
    config: str
    created: str
    harness_version: str | None = None
    models: dict[str, LockedModel]
    suites: dict[str, LockedSuite]


def lock_path(config_file: Path) -> Path:
    """The lock file of a config: beside it, `<name>.lock.json`."""
    return config_file.with_name(config_file.stem + ".lock.json")


def portable_name(path: Path, roots: list[tuple[str, Path]]) -> str:
    """`label/relative path` for the first root that holds `path`, else the absolute path."""
    absolute = Path(path).absolute()
    for label, root in roots:
        for candidate in (absolute, absolute.resolve()):
            try:
                relative = candidate.relative_to(root)
            except ValueError:
                continue
            return f"{label}/{relative.as_posix()}"
    return str(absolute)


def suite_roots(task_directories: list[Path], data_dir: Path | None) -> list[tuple[str, Path]]:
    """The places a suite's files are named relative to, most specific first."""
    import lm_eval
    from huggingface_hub import constants

    roots = [(f"tasks:{d.name}", d.resolve()) for d in task_directories]
    if data_dir is not None:
        roots.append(("data_dir", data_dir.resolve()))
    roots.append(("lm_eval", Path(lm_eval.__file__).resolve().parent))
    roots.append(("hf_hub", Path(constants.HF_HUB_CACHE).resolve()))
    try:
        from datasets import config as datasets_config

        roots.append(("hf_datasets", Path(datasets_config.HF_DATASETS_CACHE).resolve()))
    except ImportError:
        pass
    return roots


def build_lock(
    config_file: Path,
    models: dict[str, LockedModel],
    suites: dict[str, LockedSuite],
    harness_version: str | None,
) -> LockFile:
    return LockFile(
        config=config_file.name,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        harness_version=harness_version,
        models=models,
        suites=suites,
    )


def write_lock(path: Path, lock: LockFile) -> None:
    from harness.reports.files import write_text_atomic

    write_text_atomic(path, lock.model_dump_json(indent=2) + "\n")


def read_lock(path: Path) -> LockFile:
    """The lock file at `path`; `BadInputError` naming it when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not a readable lock file ({exc})") from None
    try:
        return LockFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInputError(
            f"{path}: not a harness lock file ({where}: {first['msg']}); write it again with "
            "`harness lock CONFIG`"
        ) from None


def check_model(lock: LockFile, lock_file: Path, model_id: str, found: LockedModel) -> None:
    """Raise `PinMismatchError` unless `found` (this machine's files) is what is pinned."""
    pinned = lock.models.get(model_id)
    if pinned is None:
        raise PinMismatchError(
            f"{lock_file}: model '{model_id}' is not pinned. Run `harness lock` again to pin "
            "the config's models as they are now."
        )
    if pinned.commit is not None and found.commit != pinned.commit:
        raise PinMismatchError(
            f"model '{model_id}': pinned to commit {pinned.commit} of {pinned.repo} "
            f"({lock_file}), but this machine has {found.commit or 'no commit'} "
            f"({found.source}). Copy the pinned snapshot here, or lock again."
        )
    _compare(f"model '{model_id}'", pinned.files, found.files, lock_file, found.source)


def check_suite(lock: LockFile, lock_file: Path, suite: str, found: LockedSuite) -> None:
    pinned = lock.suites.get(suite)
    if pinned is None:
        raise PinMismatchError(
            f"{lock_file}: suite '{suite}' is not pinned. Run `harness lock` again to pin the "
            "config's suites as they are now."
        )
    _compare(f"suite '{suite}'", pinned.files, found.files, lock_file, None)


def _compare(what, pinned: dict, found: dict, lock_file: Path, where: str | None) -> None:
    problems = []
    for name, expected in pinned.items():
        actual = found.get(name)
        if actual is None:
            problems.append(f"{name}: pinned (sha256 {expected.sha256}) but not found")
        elif actual.sha256 != expected.sha256:
            problems.append(f"{name}: expected sha256 {expected.sha256}, found {actual.sha256}")
    problems += [
        f"{name}: not pinned (sha256 {actual.sha256}); a file added since the lock"
        for name, actual in found.items()
        if name not in pinned
    ]
    if problems:
        shown = problems[:10] + (
            [f"... and {len(problems) - 10} more"] if len(problems) > 10 else []
        )
        raise PinMismatchError(
            f"{what} does not match its pins in {lock_file}"
            + (f" (files at {where})" if where else "")
            + ":\n  "
            + "\n  ".join(shown)
            + "\nNothing was loaded. Restore the pinned files, or if the change is intended, "
            "run `harness lock` again and review the diff of the lock file."
        )

"""Before anything loads: hash every file of every model and suite, check Hugging Face cache
blobs against their content address, and check everything against the lock file if there is
one. `harness lock` writes that lock file from the same digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.config import ModelSpec, RunConfig
from harness.errors import PinMismatchError
from harness.identity import describe_files, identity_digest, source_files
from harness.lock import (
    LockedFile,
    LockedModel,
    LockedSuite,
    check_model,
    check_suite,
    portable_name,
    read_lock,
    suite_roots,
)


def model_pins(spec: ModelSpec, source, on_bytes=None) -> LockedModel:
    """The digests of a resolved model's files (`PinMismatchError` for a damaged cache blob)."""
    from harness.runner import configured_source

    files = describe_files(source, source_files(source), on_bytes=on_bytes)
    return LockedModel(
        source=configured_source(spec),
        repo=source.repo,
        commit=source.commit,
        digest=identity_digest(files),
        files={
            f["name"]: LockedFile(sha256=f["sha256"], size_bytes=f["size_bytes"]) for f in files
        },
    )


def suite_pins(info, config: RunConfig) -> LockedSuite:
    """The digests of a suite's task definitions, task code and data, by portable name."""
    from harness.digests import hash_files
    from harness.suites.catalog import PROJECT_TASKS

    roots = suite_roots([PROJECT_TASKS, *config.task_paths], config.data_dir)
    paths = [path for path, _ in info.definition_files] + list(info.data_files)
    return LockedSuite(
        files={
            portable_name(Path(d.path), roots): LockedFile(sha256=d.sha256, size_bytes=d.size_bytes)
            for d in hash_files(paths)
        }
    )


def verify_inputs(config: RunConfig, suites, sources: dict, lock_file: Path | None, say,
                  show_progress: bool) -> dict | None:  # fmt: skip
    """Hash every input now; with `lock_file`, refuse any that differs from its pin.

    Returns the run's lock record (None without a lock file). The digests are remembered
    (`harness.digests`), so recording the files later does not read them again."""
    from harness.scoring import _byte_progress

    lock = read_lock(lock_file) if lock_file is not None else None
    for info in suites:
        pins = suite_pins(info, config)
        if lock is not None:
            check_suite(lock, lock_file, info.name, pins)
    specs = [spec for spec in config.models if spec.id in sources]
    files = {spec.id: source_files(sources[spec.id]) for spec in specs}
    total = sum(path.stat().st_size for listed in files.values() for path, _ in listed)
    say(f"checking {sum(len(f) for f in files.values())} model file(s), {total:,} bytes"
        + (f", against {lock_file}" if lock is not None else ""))  # fmt: skip
    with _byte_progress("sha256 of the model files", total, show_progress) as advance:
        for spec in specs:
            pins = model_pins(spec, sources[spec.id], on_bytes=advance)
            if lock is not None:
                _check_model(lock, lock_file, spec, pins)
    if lock is None:
        return None
    digest = hashlib.sha256(lock_file.read_bytes()).hexdigest()
    say(f"every file matches its pin in {lock_file}")
    return {"path": str(lock_file.absolute()), "sha256": digest, "verified": True}


def _check_model(lock, lock_file: Path, spec: ModelSpec, pins: LockedModel) -> None:
    try:
        check_model(lock, lock_file, spec.id, pins)
    except PinMismatchError as exc:
        if spec.stand_in_for:
            raise PinMismatchError(
                f"{exc}\nModel '{spec.id}' is a stand-in (--model-path) for "
                f"{spec.stand_in_for}, which the lock file pins. To score a stand-in anyway, "
                "run with --no-lock: the reports then mark it as a stand-in, unpinned."
            ) from None
        raise

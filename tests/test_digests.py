"""File digests are computed once per file as it is on disk, across runs for large files."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from harness import digests


def test_large_file_digest_is_kept_across_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"x" * digests.PERSISTENT_MIN_BYTES)
    [first] = digests.hash_files([weights])
    assert first.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    code = (
        "from harness.digests import known_sha256; "
        f"print(known_sha256(__import__('pathlib').Path({str(weights)!r})))"
    )
    env = {"HARNESS_CACHE": str(tmp_path / "cache"), "PATH": ""}
    seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert seen.stdout.strip() == first.sha256, seen.stderr
    weights.write_bytes(b"y" * digests.PERSISTENT_MIN_BYTES)  # any write changes the key
    seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert seen.stdout.strip() == "None"


def test_small_files_are_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    small = tmp_path / "items.jsonl"
    small.write_text("{}\n")
    digests.hash_files([small])
    store = tmp_path / "cache" / "digests.json"
    assert not store.exists() or str(small) not in store.read_text()


def test_verification_trusts_no_kept_digest(tmp_path, monkeypatch):
    """attest and signature verification read every byte: a digests.json written by any
    process of this user cannot make a changed file match."""
    import json

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"x" * digests.PERSISTENT_MIN_BYTES)
    digests.hash_files([weights])
    store = tmp_path / "cache" / "digests.json"
    kept = json.loads(store.read_text())
    for entry in kept:
        entry["sha256"] = "0" * 64  # a forged store
    store.write_text(json.dumps(kept))
    code = (
        "import pathlib; from harness.digests import hash_files; "
        f"p = pathlib.Path({str(weights)!r}); "
        "print(hash_files([p])[0].sha256, hash_files([p], verify=True)[0].sha256)"
    )
    env = {"HARNESS_CACHE": str(tmp_path / "cache"), "PATH": ""}
    seen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    cached, verified = seen.stdout.split()
    assert cached == "0" * 64, seen.stderr  # the run-time cache believes the store...
    assert verified == hashlib.sha256(weights.read_bytes()).hexdigest()  # ...verification not

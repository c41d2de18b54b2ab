"""GGUF weights dequantized once per machine, then loaded from safetensors.

transformers dequantizes a GGUF file on every load (for SmolLM2-135M on two CPU cores, about
20 s with its tokenizer, and twice the weights' size in memory at the peak). The first run that
loads a GGUF file converts it: the float tensors and the tokenizer, in Hugging Face layout, go
into one machine-wide cache (`cache_root()`: `$HARNESS_CACHE`, else `$XDG_CACHE_HOME/harness`,
else `~/.cache/harness`), in an entry named by the GGUF file's sha256, the dtype and the
converter's versions. Every later run, whatever its output directory, reads the entry
memory-mapped (about 2 s, peak memory near the weights' size). The tensors are exactly the ones
the GGUF load produces, so scores do not change.

An entry is derived data that later runs trust, so only a process that runs no evaluated code
makes one: `convert` (in a sandboxed run, its own sandbox that sees the GGUF file and a
staging directory only; a task's code or a model's shipped code never runs there). The trusted
side then hashes every file and writes `manifest.json` (`commit`); a scoring worker sees the
entry read-only. Before each run the entry is hashed again against its manifest: a copy that
changed is converted again, and the run's attestation names both the GGUF file and the copy.

transformers refuses `save_pretrained` on a GGUF-loaded model, so the tensors are written with
safetensors' `save_model` (which keeps tied weights tied) and the config without its GGUF
`quantization_config`. An entry is built in a staging directory and renamed into place under a
per-entry file lock: a crash leaves no half-written entry, and of two runs converting the same
file at once, the second waits and then reads the first one's entry.

    python -m harness.models.gguf_cache DIRECTORY GGUF_FILE DTYPE DESTINATION
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("harness")

CACHE_ENV = "HARNESS_CACHE"
"""The environment variable that moves the machine-wide cache."""

FORMAT = 2
"""The layout of an entry; part of its name, so a new layout never reads an old entry."""

_MANIFEST = "manifest.json"
_USED = "last-used"
_WEIGHTS = "model.safetensors"


def cache_root() -> Path:
    """harness's machine-wide cache: `$HARNESS_CACHE`, else `$XDG_CACHE_HOME/harness`, else
    `~/.cache/harness` (a relative XDG_CACHE_HOME is ignored, as the XDG spec says)."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "harness"


def gguf_root() -> Path:
    """Where converted GGUF copies live."""
    return cache_root() / "gguf"


def converter_versions() -> dict[str, str]:
    """What decides the converted tensors besides the GGUF file and the dtype: transformers
    (which maps GGUF tensors to its own) and gguf (which dequantizes). Read from the installed
    metadata, without importing either."""
    from importlib.metadata import version

    return {"format": str(FORMAT), "transformers": version("transformers"), "gguf": version("gguf")}


def not_cacheable(source) -> str | None:
    """Why this model's conversion must not be kept for later runs, or None when it may
    (`resolve_model_source` refuses shipped code the config did not trust)."""
    if source.remote_code is not None:
        return "its shipped code would run in the conversion"
    if source.alias:
        return "it is built by an alias architecture"
    return None


class ConvertedGGUF:
    """The cache entry of one GGUF file (by sha256) at one dtype."""

    def __init__(self, gguf_sha256: str, dtype: str, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else gguf_root()
        versions = converter_versions()
        self.name = (
            f"{gguf_sha256}-{dtype}-f{FORMAT}"
            f"-transformers{versions['transformers']}-gguf{versions['gguf']}"
        )
        self.entry = self.root / self.name
        """The entry's directory: `copy/`, `manifest.json`, `last-used`."""
        self.directory = self.entry / "copy"
        """What transformers loads: config, weights and tokenizer in Hugging Face layout."""
        self.gguf_sha256 = gguf_sha256
        self.dtype = dtype

    def ready(self) -> bool:
        """Whether a committed entry is there (not whether it is intact)."""
        return (self.entry / _MANIFEST).is_file()

    def _manifest(self) -> dict | None:
        try:
            manifest = json.loads((self.entry / _MANIFEST).read_text("utf-8"))
            manifest["files"][_WEIGHTS]["sha256"]  # noqa: B018  (the one entry always needed)
            return manifest
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def usable(self):
        """The copy's weights file (a `FileDigest`, its sha256 as the manifest records it) when
        every file of the manifest is there at its size, else None. No hashing: for a worker,
        which sees the entry read-only after the supervisor `verified` it."""
        from harness.digests import FileDigest

        manifest = self._manifest()
        if manifest is None:
            return None
        for name, recorded in manifest["files"].items():
            path = self.directory / name
            if not path.is_file() or path.stat().st_size != recorded["size_bytes"]:
                return None
        weights = self.directory / _WEIGHTS
        return FileDigest(
            str(weights), str(weights.resolve()), weights.stat().st_size,
            manifest["files"][_WEIGHTS]["sha256"],
        )  # fmt: skip

    def verified(self):
        """The copy's weights file (a `FileDigest`) when every file hashes as its manifest
        says and no file was added, else None (with a warning for an entry that changed)."""
        from harness.digests import hash_files

        manifest = self._manifest()
        if manifest is None:
            return None
        try:
            present = {p.relative_to(self.directory).as_posix(): p for p in _files(self.directory)}
            if any(p.is_symlink() for p in self.entry.rglob("*")):
                raise ValueError("it holds a link")
            if set(present) != set(manifest["files"]):
                raise ValueError("files were added or removed")
            for digest, name in zip(hash_files(present.values()), present, strict=True):
                if digest.sha256 != manifest["files"][name]["sha256"]:
                    raise ValueError(f"{name} changed")
                if name == _WEIGHTS:
                    weights = digest
        except (OSError, ValueError) as exc:
            log.warning("GGUF copy %s not as written (%s); converting again", self.entry, exc)
            return None
        return weights

    def touch(self) -> None:
        """Mark the entry used now (`harness cache clean` removes the least recently used)."""
        try:
            (self.entry / _USED).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"), "utf-8")
        except OSError:
            pass

    def ensure(self, convert: Callable[[Path], None]):
        """The verified copy, converting first when there is none: `convert(destination)`
        writes a copy into `destination`. Returns its weights' `FileDigest`, or None when it
        could not be made (a full disk, a failed conversion): the run then loads the GGUF file
        itself, which costs time, not results."""
        from filelock import FileLock

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.root / f"{self.name}.lock")):
                kept = self.verified()
                if kept is None:
                    self._discard()  # a failed conversion must not leave an altered entry
                    staging = Path(tempfile.mkdtemp(prefix=f".staging-{self.name}-", dir=self.root))
                    try:
                        convert(staging / "copy")
                        kept = self.commit(staging)
                    finally:
                        shutil.rmtree(staging, ignore_errors=True)
                self.touch()
                return kept
        except (OSError, ConversionFailed) as exc:
            log.warning("could not keep the converted GGUF weights in %s: %s", self.entry, exc)
            return None

    def commit(self, staging: Path):
        """Hash what the converter wrote in `staging/copy`, record it in the manifest and move
        the entry into place (under `ensure`'s lock). The converter is not trusted with the
        manifest: a link or anything but plain files is refused."""
        from harness.digests import hash_files

        copy = staging / "copy"
        if copy.is_symlink() or not copy.is_dir():
            raise ConversionFailed("the converter left no copy directory")
        if any(p.is_symlink() or not (p.is_file() or p.is_dir()) for p in copy.rglob("*")):
            raise ConversionFailed("the converter left a link or a special file")
        files = _files(copy)
        if copy / _WEIGHTS not in files:
            raise ConversionFailed(f"the converter wrote no {_WEIGHTS}")
        digests = hash_files(files)
        manifest = {
            "gguf_sha256": self.gguf_sha256,
            "dtype": self.dtype,
            "converter": converter_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "size_bytes": sum(d.size_bytes for d in digests),
            "files": {
                p.relative_to(copy).as_posix(): {"size_bytes": d.size_bytes, "sha256": d.sha256}
                for p, d in zip(files, digests, strict=True)
            },
        }
        (staging / _MANIFEST).write_text(json.dumps(manifest, indent=2), "utf-8")
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide a shared cache from its other users
        self._discard()
        os.replace(staging, self.entry)
        [weights] = [d for p, d in zip(files, digests, strict=True) if p == copy / _WEIGHTS]
        return weights

    def _discard(self) -> None:
        """Remove the entry (renamed away first, so no reader sees half of it)."""
        if self.entry.exists():
            old = self.root / f".trash-{self.name}-{os.getpid()}"
            os.replace(self.entry, old)
            shutil.rmtree(old, ignore_errors=True)


class ConversionFailed(Exception):
    """The converter did not produce a copy (its own words are in run.log)."""


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def convert(directory: Path, gguf_file: str, dtype: str, destination: Path) -> None:
    """Dequantize `directory/gguf_file` at `dtype` on the CPU and write it to `destination`
    in Hugging Face layout. Only transformers' GGUF reader runs: no code shipped with a model."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    common = {"local_files_only": True, "gguf_file": gguf_file}
    tokenizer = AutoTokenizer.from_pretrained(directory, **common)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=getattr(torch, dtype), **common)
    destination.mkdir(parents=True)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (destination / "config.json").write_text(json.dumps(config, indent=2), "utf-8")
    model.generation_config.save_pretrained(destination)
    save_model(model, str(destination / _WEIGHTS))
    tokenizer.save_pretrained(destination)


def convert_here(source) -> Callable[[Path, str], None]:
    """The converter of an unsandboxed run: in this process (see docs/paths-and-cache.md)."""
    return lambda destination, dtype: convert(
        source.directory, source.gguf_file, dtype, destination
    )


def converter_command(source, dtype: str, destination: Path) -> list[str]:
    """The command that converts in a child process (the supervisor runs it in a sandbox)."""
    return [
        sys.executable, "-m", "harness.models.gguf_cache",
        str(source.directory), source.gguf_file, dtype, str(destination),
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    directory, gguf_file, dtype, destination = argv
    from harness.offline.settings import apply_offline_env

    apply_offline_env()
    convert(Path(directory), gguf_file, dtype, Path(destination))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

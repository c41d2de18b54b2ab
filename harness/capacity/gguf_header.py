"""A GGUF file's architecture from its header alone, in milliseconds, for the preflight.

transformers reads a GGUF config (`AutoConfig.from_pretrained(..., gguf_file=...)`) through the
`gguf` package's reader, which turns every metadata value into numpy views, the tokenizer's
vocabulary and merges included (about 100,000 strings for SmolLM2): 5.5 s for a 98 MB file, on
every `harness run`. The preflight needs a dozen numbers. This reader walks the header with
`struct` (no numpy, no torch), keeps scalars and small arrays, keeps only the length of long
arrays (the vocabulary's length is the vocabulary size), reads the tensor names, and maps the
keys with transformers' own table (`GGUF_CONFIG_MAPPING`) and the same rules its legacy loader
applies (llama files named Mistral, MoE renames, `tie_word_embeddings` from a missing
`output.weight`). Architectures that loader special-cases further (T5, StableLM, Gemma 3/4,
LFM2, gpt-oss, MiniMax, the ones transformers rebuilds itself) are left to transformers:
`config_from_gguf` returns None for them. tests/capacity/test_gguf_header.py checks the result
against transformers' config for a real file.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9
_KEPT_ARRAY = 4096
"""Arrays up to this many elements are read (per-layer head counts); longer ones (vocabulary,
merges, scores) only counted."""
_SPECIAL = ("t5", "stablelm", "gemma3", "gemma4", "lfm2", "gpt-oss", "gpt_oss", "minimax", "qwen35")


class ArrayLength(int):
    """A long GGUF array, read as its length only."""


def read_header(path: Path) -> tuple[dict, list[str]]:
    """(metadata, tensor names) of a GGUF v2/v3 file; ValueError if it is not one."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as blob:
        if blob[:4] != b"GGUF":
            raise ValueError(f"{path} does not start with the GGUF magic bytes")
        version, tensors, count = struct.unpack_from("<IQQ", blob, 4)
        if version not in (2, 3):
            raise ValueError(f"{path} is GGUF version {version}; versions 2 and 3 are read")
        pos, metadata = 24, {}
        for _ in range(count):
            key, pos = _string(blob, pos)
            (kind,) = struct.unpack_from("<I", blob, pos)
            metadata[key], pos = _value(blob, pos + 4, kind)
        names = []
        for _ in range(tensors):
            name, pos = _string(blob, pos)
            (dims,) = struct.unpack_from("<I", blob, pos)
            pos += 4 + 8 * dims + 12  # dimensions, ggml type, offset
            names.append(name)
    return metadata, names


def _string(blob, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", blob, pos)
    pos += 8
    return blob[pos : pos + length].decode("utf-8", errors="replace"), pos + length


def _value(blob, pos: int, kind: int):
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack_from(fmt, blob, pos)[0], pos + struct.calcsize(fmt)
    if kind == _STRING:
        return _string(blob, pos)
    if kind != _ARRAY:
        raise ValueError(f"unknown GGUF value type {kind}")
    item, length = struct.unpack_from("<IQ", blob, pos)
    pos += 12
    if item in _SCALARS:
        width = struct.calcsize(_SCALARS[item])
        if length > _KEPT_ARRAY:
            return ArrayLength(length), pos + width * length
        values = struct.unpack_from(f"<{length}{_SCALARS[item][1]}", blob, pos)
        return list(values), pos + width * length
    if item == _STRING and length > _KEPT_ARRAY:  # the vocabulary: step over each string
        size = struct.Struct("<Q").unpack_from
        for _ in range(length):
            pos += 8 + size(blob, pos)[0]
        return ArrayLength(length), pos
    values = []
    for _ in range(length):
        value, pos = _value(blob, pos, item)
        if length <= _KEPT_ARRAY:
            values.append(value)
    return (values if length <= _KEPT_ARRAY else ArrayLength(length)), pos


def config_from_gguf(path: Path) -> dict | None:
    """The transformers config keys of a GGUF file's architecture, or None for an architecture
    whose config transformers builds with rules of its own (ask transformers then)."""
    from transformers.integrations.ggml import GGUF_CONFIG_DEFAULTS_MAPPING, GGUF_CONFIG_MAPPING

    metadata, tensor_names = read_header(path)
    architecture = str(metadata["general.architecture"])
    if any(special in architecture for special in _SPECIAL):
        return None
    name = str(metadata.get("general.name", "")).lower()
    renamed = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe"}.get(architecture, architecture)
    if "llama" in architecture and "mistral" in name:
        renamed = "mistral"
    mapping = GGUF_CONFIG_MAPPING.get(renamed)
    if mapping is None:
        return None
    config: dict = dict(GGUF_CONFIG_DEFAULTS_MAPPING.get(renamed) or {})
    config["model_type"] = renamed
    prefix = architecture + "."
    for key, value in metadata.items():
        if not key.startswith(prefix):
            continue
        target = mapping.get(key[len(prefix) :])
        if target not in (None, -1):
            config[target] = int(value) if isinstance(value, ArrayLength) else value
    tokens = metadata.get("tokenizer.ggml.tokens")
    if "vocab_size" not in config and tokens is not None:
        config["vocab_size"] = len(tokens) if isinstance(tokens, list) else int(tokens)
    config["tie_word_embeddings"] = "output.weight" not in tensor_names
    return config


def gguf_config(directory: Path, gguf_file: str) -> dict:
    """The config of `directory/gguf_file` as a dict, from the header, or transformers' reader
    for the architectures it special-cases; kept in harness's cache under the file's sha256
    when that is known already (`harness.digests.known_sha256`, as after the pins check), so a
    later run reads neither."""
    from importlib.metadata import version

    from harness.digests import known_sha256

    path = directory / gguf_file
    digest = known_sha256(path)
    kept = None
    if digest is not None:
        from harness.models.gguf_cache import cache_root

        kept = (
            cache_root() / "gguf-configs" / f"{digest}-transformers-{version('transformers')}.json"
        )
        try:
            return json.loads(kept.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    try:
        config = config_from_gguf(path)
    except (OSError, ValueError, KeyError, struct.error):
        config = None  # transformers reads it, or says what is wrong with it
    if config is None:
        from transformers import AutoConfig

        found = AutoConfig.from_pretrained(directory, gguf_file=gguf_file, local_files_only=True)
        config = found.to_dict()
    if kept is not None:
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            partial = kept.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(config, default=str), encoding="utf-8")
            os.replace(partial, kept)
        except OSError:
            pass  # a read-only cache: read the header again next time
    return config


_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE",
}  # fmt: skip
"""llama.cpp's `llama_ftype` (the `general.file_type` key): the quantization a file was made
with, as llama.cpp's quantize tool names it."""


def gguf_layout(path: Path) -> tuple[str, int]:
    """(quantization name, bytes of tensor data) of a GGUF file: what llama.cpp maps into
    memory as it is (`backend: llamacpp`), unlike transformers, which dequantizes."""
    try:
        metadata, _ = read_header(path)
        with (
            open(path, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as blob,
        ):
            _, tensors, count = struct.unpack_from("<IQQ", blob, 4)
            pos = 24
            for _ in range(count):  # the metadata again, to find where the tensor infos end
                _, pos = _string(blob, pos)
                (kind,) = struct.unpack_from("<I", blob, pos)
                _, pos = _value(blob, pos + 4, kind)
            for _ in range(tensors):
                _, pos = _string(blob, pos)
                (dims,) = struct.unpack_from("<I", blob, pos)
                pos += 4 + 8 * dims + 12
            size = len(blob)
    except struct.error as exc:
        raise ValueError(f"{path}: the GGUF header is cut short ({exc})") from None
    alignment = int(metadata.get("general.alignment") or 32)
    start = pos + (-pos % alignment)
    file_type = metadata.get("general.file_type")
    name = _FILE_TYPES.get(file_type, f"file type {file_type}") if file_type is not None else "?"
    return name, max(size - start, 0)

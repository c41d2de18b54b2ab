"""Think-aware stopping for engines that generate text piece by piece (llama.cpp, a serving
engine's stream), with the same rules as the transformers path (`harness.generation`):

- a task's stop sequences apply to the answer only, never inside the thinking;
- thinking gets `think_budget` tokens on top of the answer's own limit (`max_gen_toks`),
  within the context window; the answer is held to its limit from its first token;
- the thinking is removed and the answer after it is cut at the first stop sequence;
- a model that does not think gets lm-eval's answer: the text cut at the first stop sequence.

`AnswerWatcher` is fed each piece of text as the engine produces it and says when to stop;
`AnswerWatcher.finish` gives the `Generation` that is scored and recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ThinkTags:
    """The markers around a reasoning model's thinking."""

    start: str = "<think>"
    end: str = "</think>"


@dataclass
class Generation:
    """One generated answer as the model wrote it, and what was scored."""

    raw: str
    answer: str
    tokens: int
    thought: bool
    hit_token_limit: bool

    def to_dict(self) -> dict:
        return asdict(self)


def split_answer(raw: str, stops: list[str], tags: ThinkTags | None, opened: bool) -> str:
    """The scored answer in a raw generation: after the thinking, up to the first stop sequence.

    `opened` says the prompt itself ended inside a think block (a chat template that starts it).
    A generation whose thinking never closes has no answer."""
    text = raw
    if tags is not None and (opened or raw.lstrip().startswith(tags.start)):
        if tags.end not in raw:
            return ""
        text = raw.rsplit(tags.end, 1)[1].lstrip()
    return _cut(text, stops)


def _cut(text: str, stops: list[str]) -> str:
    for stop in stops:
        if stop:
            text = text.split(stop, 1)[0]
    return text


class AnswerWatcher:
    """Watches one generation as it is produced.

    `answer_limit`: the task's token limit for the answer. `total_limit`: the most tokens the
    engine may generate in all (the answer's limit plus the thinking budget, within the
    context window). `opened`: the prompt itself ended inside a think block."""

    def __init__(
        self,
        stops: list[str],
        tags: ThinkTags | None,
        *,
        opened: bool,
        answer_limit: int,
        total_limit: int,
    ) -> None:
        self.stops = [s for s in stops if s]
        self.tags = tags
        self.opened = opened and tags is not None
        self.answer_limit = answer_limit
        self.total_limit = max(total_limit, 0)
        self.text = ""
        self.tokens = 0
        self.thinking: bool | None = True if self.opened else (None if tags else False)
        self.answer_at: int | None = None if self.opened or tags else 0
        """Index in `text` where the answer begins (after the thinking's end tag)."""
        self.answer_tokens = 0
        self.done = False
        self.stopped = False
        """Stopped by a stop sequence in the answer."""
        self.cut = False
        """Stopped because the answer (or the whole generation) reached its token limit."""

    def feed(self, piece: str, tokens: int = 1) -> bool:
        """Take the next piece of generated text (`tokens` tokens); True once generation
        should stop."""
        if self.done:
            return True
        self.text += piece
        self.tokens += tokens
        self._decide()
        if self.answer_at is not None and not self.done:
            answer = self.text[self.answer_at :]
            if self.thinking:
                answer = answer.lstrip()
            if answer:  # whitespace before the answer is not counted (it is stripped)
                self.answer_tokens += tokens
            if any(stop in answer for stop in self.stops):
                self.done = self.stopped = True
            elif self.answer_tokens >= self.answer_limit:
                self.done = self.cut = True
        elif self.answer_at is None and self.thinking is None and not self.done:
            # Until it is known whether the model thinks, the answer's limit counts from the
            # first token, as lm-eval counts.
            if self.tokens >= self.answer_limit:
                self.done = self.cut = True
        if not self.done and self.tokens >= self.total_limit:
            self.done = self.cut = True
        return self.done

    def _decide(self) -> None:
        if self.thinking is None:
            stripped = self.text.lstrip()
            if stripped.startswith(self.tags.start):
                self.thinking = True
            elif self.tags.start.startswith(stripped):
                if any(stop in self.text for stop in self.stops):
                    self.done = self.stopped = True
                return
            else:
                self.thinking, self.answer_at = False, 0
                return
        if self.thinking and self.answer_at is None:
            start = self.text.find(self.tags.start) + len(self.tags.start) if not self.opened else 0
            end = self.text.find(self.tags.end, max(start, 0))
            if end >= 0:
                self.answer_at = end + len(self.tags.end)

    @property
    def thought(self) -> bool:
        return self.opened or bool(self.thinking)

    def finish(self, *, ended: bool, plain: str | None = None) -> Generation:
        """The generation as it will be scored. `ended`: the engine stopped by itself (an
        end-of-sequence token). `plain`: the same text with special tokens dropped, for the
        answer of a model that did not think (lm-eval decodes without them)."""
        raw = self.text
        if self.thought:
            answer = split_answer(raw, self.stops, self.tags, self.opened)
        else:
            answer = _cut(raw if plain is None else plain, self.stops)
        return Generation(
            raw=raw,
            answer=answer,
            tokens=self.tokens,
            thought=self.thought,
            hit_token_limit=self.cut or (not ended and not self.stopped and not self.done),
        )


def prompt_opens_thinking(prompt: str, tags: ThinkTags | None) -> bool:
    """Whether a prompt ends inside a think block (a chat template that opens it)."""
    return tags is not None and prompt.rstrip().endswith(tags.start)


def record_generation(lm, request, generation: Generation, seconds: float = 0.0) -> None:
    """Keep one answered generation request on `lm` (llama.cpp, server or vLLM), as
    `ReasoningAwareHFLM` keeps its own: the `work` counters, the item's `generations` (for the
    per-sample logs) and lm-eval's request cache."""
    lm.work["generation_seconds"] += seconds
    lm.work["generated_tokens"] += generation.tokens
    lm.generations[(request.task_name, request.doc_id)].append(generation)
    lm.cache_hook.add_partial("generate_until", request.args, generation.answer)

"""`backend: llamacpp`: a GGUF file scored as it is, quantized, by llama.cpp in this process
(llama-cpp-python's bindings), inside the sandboxed worker.

Loglikelihoods: requests are tokenized as lm-eval tokenizes them (`TemplateLM._encode_pair`),
grouped by the context lm-eval would feed (`shared_prefix.group_by_context`), and each context
is evaluated once: the continuations of its choices run one after another on top of its
key/value cache, which is cut back to the context's length between them
(`llama_memory_seq_rm`). Contexts are visited in token order, so one that starts like the last
(a few-shot preamble, a shared passage) reuses the cache of that prefix too. Logits are asked
of llama.cpp only where a continuation token is predicted, never for a whole context (the
`Llama` class with `logits_all=True` keeps n_ctx x vocabulary floats: 0.8 GB for SmolLM2).

Generation is token by token, through llama.cpp's sampler chain (greedy, or the request's
temperature / top_p / top_k with a seed derived from `generation.seed`), with the thinking
budget and the stop sequences of `harness.thinking.AnswerWatcher`, as on the other engines.

llama.cpp's log goes to Python's logging (run.log), never to the console.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import ModelSpec
from harness.errors import ModelLoadError

log = logging.getLogger("harness.llamacpp")

DEFAULT_CONTEXT = 4096
"""n_ctx when the config sets no `generation.max_length` (llama.cpp allocates the key/value
cache for the whole window up front; the GGUF's training context may be 128k tokens)."""
BATCH_TOKENS = 512
"""Tokens llama.cpp evaluates per call (its n_batch and n_ubatch)."""

_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
"""ggml's log levels (debug, info, warn, error) to Python's; info is the load's inventory of
keys and tensors (thousands of lines), kept out of run.log unless harness logs at DEBUG."""
_recent: list[str] = []
"""The last lines llama.cpp logged, for a load error's message."""
_callback = None


def route_logs() -> None:
    """Send llama.cpp's log to the `llama_cpp` logger (run.log), once per process."""
    global _callback
    if _callback is not None:
        return
    from llama_cpp import llama_cpp as lib

    engine_log = logging.getLogger("llama_cpp")
    last = [logging.DEBUG]

    @lib.llama_log_callback
    def forward(level: int, text: bytes, _user) -> None:
        line = text.decode("utf-8", errors="replace").rstrip("\n")
        python_level = last[0] if level == 5 else _LEVELS.get(level, logging.INFO)
        last[0] = python_level
        if line:
            _recent.append(line)
            del _recent[:-20]
            engine_log.log(python_level, "%s", line)

    _callback = forward  # kept: llama.cpp calls it for the life of the process
    lib.llama_log_set(forward, ctypes.c_void_p(0))


def llama_cpp_version() -> str | None:
    """The installed llama-cpp-python's version, None if it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:
        return None


def context_length(spec: ModelSpec, trained: int | None) -> int:
    """n_ctx: the config's `generation.max_length`, else the GGUF's training context capped
    at `DEFAULT_CONTEXT`."""
    if spec.generation.max_length:
        return spec.generation.max_length
    return min(trained or DEFAULT_CONTEXT, DEFAULT_CONTEXT)


def thread_count(spec: ModelSpec) -> int:
    """The config's `threads`, else the cores this process may run on."""
    return spec.threads or len(os.sched_getaffinity(0))


@dataclass
class LlamaCppEngine:
    """A loaded GGUF model: llama.cpp's model, one context, one batch."""

    model: Any
    """`llama_cpp._internals.LlamaModel`."""
    context: Any
    """`llama_cpp._internals.LlamaContext`."""
    batch: Any
    """`llama_cpp._internals.LlamaBatch` of `BATCH_TOKENS` tokens."""
    n_ctx: int
    n_vocab: int
    threads: int
    metadata: dict[str, str]
    path: Path

    def close(self) -> None:
        for part in (self.batch, self.context, self.model):
            part.close()


def open_engine(spec: ModelSpec, source, *, vocab_only: bool = False) -> LlamaCppEngine:
    """Load `source`'s GGUF file with llama.cpp (memory-mapped, on the CPU); ModelLoadError
    with llama.cpp's own last words when it cannot."""
    try:
        import llama_cpp._internals as internals
        from llama_cpp import llama_cpp as lib
    except ImportError:
        from harness.models.engines import llamacpp_missing

        raise ModelLoadError(llamacpp_missing(f"model '{spec.id}'")) from None
    route_logs()
    path = Path(source.directory) / source.gguf_file
    params = lib.llama_model_default_params()
    params.n_gpu_layers = 0
    params.vocab_only = vocab_only
    _recent.clear()
    try:
        # verbose=True only stops the bindings from pointing fds 1 and 2 at /dev/null during
        # the load; the log itself goes through `route_logs`.
        model = internals.LlamaModel(path_model=str(path), params=params, verbose=True)
    except (ValueError, OSError) as exc:
        said = "; ".join(line.strip() for line in _recent[-3:] if line.strip())
        raise ModelLoadError(
            f"model '{spec.id}': llama.cpp could not load {path} ({exc}"
            + (f"; llama.cpp: {said}" if said else "")
            + "). The GGUF file may be truncated or corrupt, or of an architecture this "
            f"llama-cpp-python ({llama_cpp_version()}) does not know: compare its sha256 with "
            "the source and copy it again."
        ) from None
    metadata = model.metadata()
    n_ctx = context_length(spec, model.n_ctx_train())
    threads = thread_count(spec)
    context = batch = None
    if not vocab_only:
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = cparams.n_ubatch = min(BATCH_TOKENS, n_ctx)
        cparams.n_seq_max = 1
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        try:
            context = internals.LlamaContext(model=model, params=cparams, verbose=False)
        except ValueError as exc:
            model.close()
            raise ModelLoadError(
                f"model '{spec.id}': llama.cpp could not make a context of {n_ctx} tokens for "
                f"{path} ({exc}). Lower generation.max_length."
            ) from None
        batch = internals.LlamaBatch(n_tokens=min(BATCH_TOKENS, n_ctx), embd=0, n_seq_max=1)
        log.info(
            "llama.cpp (llama-cpp-python %s) loaded %s: %s, n_ctx %d, %d thread(s); %s",
            llama_cpp_version(), path, model.desc(), n_ctx, threads,
            lib.llama_print_system_info().decode("utf-8", errors="replace").strip(),
        )  # fmt: skip
    return LlamaCppEngine(model, context, batch, n_ctx, model.n_vocab(), threads, metadata, path)


class LlamaCppTokenizer:
    """llama.cpp's tokenizer with the parts of a transformers tokenizer harness uses: encoding
    (`__call__`, `encode`), decoding, the special tokens, and the chat template from the GGUF
    metadata (`tokenizer.chat_template`) rendered as transformers renders it."""

    def __init__(self, model, metadata: dict[str, str], name: str) -> None:
        self._model = model
        self.name_or_path = name
        self.chat_template = metadata.get("tokenizer.chat_template") or None
        self.vocab_size = model.n_vocab()
        self.bos_token_id = _token_or_none(model.token_bos())
        self.eos_token_id = _token_or_none(model.token_eos())
        unknown = metadata.get("tokenizer.ggml.unknown_token_id")
        self.unk_token_id = int(unknown) if unknown not in (None, "") else None
        self.add_bos = bool(model.add_bos_token())
        self.bos_token = self.piece(self.bos_token_id) if self.bos_token_id is not None else None
        self.eos_token = self.piece(self.eos_token_id) if self.eos_token_id is not None else None

    def __len__(self) -> int:
        return self.vocab_size

    def piece(self, token: int, special: bool = True) -> str:
        return self.piece_bytes(token, special).decode("utf-8", errors="replace")

    def piece_bytes(self, token: int, special: bool = True) -> bytes:
        """The bytes of one token (part of a UTF-8 character, for byte-level vocabularies)."""
        from llama_cpp import llama_cpp as lib

        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            written = lib.llama_token_to_piece(self._model.vocab, token, buffer, size, 0, special)
            if written >= 0:
                return buffer.raw[:written]
            size = -written

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids; special tokens written in the text (`<|im_start|>`) are parsed as
        transformers parses them; BOS is added when the GGUF asks for it."""
        if not text:
            return [self.bos_token_id] if add_special_tokens and self.add_bos else []
        bos = add_special_tokens and self.add_bos
        return self._model.tokenize(text.encode("utf-8"), add_bos=bos, special=True)

    def __call__(self, text: str, add_special_tokens: bool = True, **_) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text, add_special_tokens=add_special_tokens)}

    def decode(self, ids, skip_special_tokens: bool = False, **_) -> str:
        if isinstance(ids, int):
            ids = [ids]
        raw = self._model.detokenize(list(ids), special=not skip_special_tokens)
        return raw.decode("utf-8", errors="replace")

    def is_end(self, token: int) -> bool:
        """An end-of-generation token (end of sequence, end of turn)."""
        from llama_cpp import llama_cpp as lib

        return bool(lib.llama_vocab_is_eog(self._model.vocab, token))

    def apply_chat_template(
        self,
        conversation: list[dict],
        tokenize: bool = False,
        add_generation_prompt: bool = False,
        continue_final_message: bool = False,
        **extra,
    ):
        """The conversation through the GGUF's chat template (transformers' rendering:
        a sandboxed jinja2 environment, blocks trimmed, `raise_exception`, `tojson`)."""
        if not self.chat_template:
            raise ValueError("this GGUF file has no tokenizer.chat_template")
        text = _template(self.chat_template).render(
            messages=conversation,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
            **extra,
        )
        if continue_final_message:
            text = _continue_final(text, conversation[-1]["content"])
        return self.encode(text, add_special_tokens=False) if tokenize else text


def _token_or_none(token: int) -> int | None:
    return token if token is not None and token >= 0 else None


def _continue_final(text: str, final: str) -> str:
    """The render cut after the last message's content, as transformers'
    `continue_final_message` cuts it (the assistant's turn left open)."""
    where = text.rindex(final.strip())
    if text[where : where + len(final.lstrip())] == final:
        return text[: where + len(final.lstrip())]
    return text[: where + len(final.strip())]


_TEMPLATES: dict[str, Any] = {}


def _template(source: str):
    if source not in _TEMPLATES:
        import json
        from datetime import datetime

        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            from jinja2.exceptions import TemplateError

            raise TemplateError(message)

        def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(
                value,
                ensure_ascii=ensure_ascii,
                indent=indent,
                separators=separators,
                sort_keys=sort_keys,
            )

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        _TEMPLATES[source] = env.from_string(source)
    return _TEMPLATES[source]


def load_llamacpp(spec: ModelSpec, source):
    """Load `source`'s GGUF file for `backend: llamacpp`: a `LoadedModel` whose `model` is the
    `LlamaCppEngine` and whose `tokenizer` is its `LlamaCppTokenizer`."""
    from harness.models.load import LoadedModel, planned_placement

    started = time.perf_counter()
    engine = open_engine(spec, source)
    tokenizer = LlamaCppTokenizer(engine.model, engine.metadata, str(engine.path))
    if spec.chat_template and not tokenizer.chat_template:
        engine.close()
        raise ModelLoadError(
            f"model '{spec.id}': `chat_template: true`, but {engine.path} has no "
            "tokenizer.chat_template in its metadata. Set `chat_template: false` for a base "
            "model, or use a GGUF file that carries its template."
        )
    _, quantization = planned_placement(spec, source)
    return LoadedModel(
        model=engine,
        tokenizer=tokenizer,
        device=f"cpu (llama.cpp, {engine.threads} thread{'s' if engine.threads > 1 else ''})",
        dtype=quantization,
        load_seconds=time.perf_counter() - started,
        parameters=engine.model.n_params(),
    )


def load_llamacpp_tokenizer(spec: ModelSpec, source) -> LlamaCppTokenizer:
    """The tokenizer alone (the vocabulary, no weights), for a model whose every suite came
    from the cache."""
    engine = open_engine(spec, source, vocab_only=True)
    return LlamaCppTokenizer(engine.model, engine.metadata, str(engine.path))

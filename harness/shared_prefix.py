"""Loglikelihood scoring that computes each shared context once.

A multiple-choice item asks lm-eval for the loglikelihood of every choice after the same
context: four requests that repeat the same passage and question. lm-eval runs the whole context
through the model for each choice (it reuses work only for choices of a single token). Here each
distinct context runs once, its key/value cache is kept, and the continuations of all its
choices run on top of that cache, batched together. The numbers are the same computation:

- the scored tokens and the truncation are lm-eval's (context and continuation cut from the left
  to the model's window, the last token not fed), so a request is grouped by the context lm-eval
  would actually feed;
- contexts are batched longest first and padded on the right, as lm-eval does, so no context
  token sees padding; a batch holds as many contexts as fit in the token budget of lm-eval's own
  batch (batch size x the longest context), so short contexts go many at a time;
- the continuations run with the padded cache positions masked out and their own position ids;
- logits are computed only where a continuation token is predicted, not for every context
  token, which saves the largest matrix product of a small model.

Only models whose key/value cache is plain per-layer full attention take this path (checked
after the first context pass); others (sliding windows, linear attention) are scored by
lm-eval's own code. `harness.generation.ReasoningAwareHFLM` also checks the first group of
each model against lm-eval's code before trusting this one.

A resumed suite (`SharedPrefixLoglikelihood.resume_loglikelihood`) gets the same numbers, bit
for bit: a float's last bits depend on the shape of the batch it was computed in (the kernels a
matrix product picks, the width a row is padded to), so the batches are composed from the whole
request list, as an uninterrupted run composes them, and every batch that holds a request not
yet answered is computed again in full; batches answered entirely are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

Request = tuple[tuple[str, str], list[int], list[int]]
"""lm-eval's tokenized loglikelihood request:
((context, continuation), context token ids, continuation token ids)."""


class UnsupportedCache(Exception):
    """The model's key/value cache is not one this scorer can reuse across rows."""


@dataclass
class Group:
    """Requests that feed the model the same context tokens."""

    prefix: tuple[int, ...]
    members: list[int] = field(default_factory=list)
    """Indices of the requests, in the order given."""


def group_by_context(requests: Sequence[Request], max_length: int) -> list[Group]:
    """Group requests by the context lm-eval would feed, longest context first.

    lm-eval feeds `(context + continuation)[-(max_length + 1):][:-1]`; the tokens before the
    continuation in that window are the context it actually uses."""
    groups: dict[tuple[int, ...], Group] = {}
    for index, (_, context, continuation) in enumerate(requests):
        if not context or not continuation or len(continuation) > max_length:
            raise ValueError("every request needs a context and a continuation within the window")
        window = (list(context) + list(continuation))[-(max_length + 1) :]
        prefix = tuple(window[: len(window) - len(continuation)])
        groups.setdefault(prefix, Group(prefix)).members.append(index)
    return sorted(groups.values(), key=lambda g: (-len(g.prefix), g.prefix))


def shares_contexts(groups: list[Group], requests: Sequence[Request]) -> bool:
    """Whether grouping saves work: some context is scored with more than one continuation."""
    return len(groups) < len(requests)


def batches(groups: list[Group], budget: int, max_groups: int) -> Iterator[list[Group]]:
    """Consecutive groups (longest first) whose padded contexts fit `budget` tokens.

    Where a batch ends depends on its own groups only, not on those after it."""
    batch: list[Group] = []
    for group in groups:
        longest = len(batch[0].prefix) if batch else len(group.prefix)
        if batch and (longest * (len(batch) + 1) > budget or len(batch) >= max_groups):
            yield batch
            batch = []
        batch.append(group)
    if batch:
        yield batch


class SharedPrefixScorer:
    """Scores lm-eval loglikelihood requests on a causal HF model, one pass per distinct context.

    `forward_context` and `forward_continuation` are the two model calls; they exist as methods
    so the arithmetic around them stays readable."""

    def __init__(self, model, *, max_length: int, batch_size: int, softmax_dtype=None) -> None:
        self.model = model
        self.max_length = max_length
        self.batch_size = batch_size
        self.softmax_dtype = softmax_dtype
        self.device = next(model.parameters()).device

    def score(
        self,
        requests: Sequence[Request],
        groups: list[Group] | None = None,
        on_scored: Callable[[int, tuple[float, bool]], None] | None = None,
        known: Sequence[bool] | None = None,
    ) -> list[tuple[float, bool] | None]:
        """(sum of continuation logprobs, whether greedy decoding gives the continuation) per
        request, in request order. `on_scored(index, answer)` is called as each batch ends.

        A batch whose requests are all `known` (answered already) is not computed: its
        entries stay None. The batches are the same with or without `known`."""
        groups = groups if groups is not None else group_by_context(requests, self.max_length)
        longest = max(len(g.prefix) for g in groups)
        budget = self.batch_size * longest
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        for batch in batches(groups, budget, max_groups=8 * self.batch_size):
            if known is not None and all(known[i] for g in batch for i in g.members):
                continue
            for index, answer in self._score_batch(requests, batch, budget):
                answers[index] = answer
                if on_scored:
                    on_scored(index, answer)
        return answers  # type: ignore[return-value]

    def _score_batch(self, requests, batch: list[Group], budget: int):
        import torch

        lengths = [len(g.prefix) for g in batch]
        width = max(lengths)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        for row, group in enumerate(batch):
            ids[row, : len(group.prefix)] = torch.tensor(group.prefix)
        last_logits, cache = self.forward_context(ids.to(self.device), lengths)

        rows = [(g_row, index) for g_row, group in enumerate(batch) for index in group.members]
        longest_continuation = max(len(requests[index][2]) for _, index in rows)
        per_chunk = max(1, budget // (width + longest_continuation))
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            yield from self._score_rows(requests, chunk, last_logits, cache, lengths, width)

    def _score_rows(self, requests, chunk, last_logits, cache, lengths, width):
        import torch
        import torch.nn.functional as F

        continuations = [list(requests[index][2]) for _, index in chunk]
        group_rows = torch.tensor([g_row for g_row, _ in chunk], device=self.device)
        steps = max(len(c) for c in continuations) - 1
        first = last_logits.index_select(0, group_rows)  # [rows, vocab]: predicts token 0
        if steps > 0:
            feed = torch.zeros((len(chunk), steps), dtype=torch.long)
            for row, tokens in enumerate(continuations):
                feed[row, : len(tokens) - 1] = torch.tensor(tokens[:-1])
            starts = torch.tensor([lengths[g_row] for g_row, _ in chunk])
            rest = self.forward_continuation(
                feed.to(self.device), cache, group_rows, starts.to(self.device), width
            )  # [rows, steps, vocab]: predicts tokens 1..steps
            logits = torch.cat([first.unsqueeze(1), rest], dim=1)
        else:
            logits = first.unsqueeze(1)
        logprobs = F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)
        for row, ((_, index), tokens) in enumerate(zip(chunk, continuations, strict=True)):
            target = torch.tensor(tokens, device=self.device)
            scored = logprobs[row, : len(tokens)]
            greedy = bool((scored.argmax(dim=-1) == target).all())
            total = float(scored.gather(1, target.unsqueeze(1)).sum())
            yield index, (total, greedy)

    def forward_context(self, ids, lengths: list[int]):
        """Run the right-padded contexts; return the logits at each context's last token
        ([batch, vocab]) and the key/value cache of the whole padded batch."""
        import torch
        from transformers import DynamicCache

        keep = torch.tensor([[n - 1] for n in lengths], device=ids.device)
        with torch.no_grad():
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=keep)
        cache = out.past_key_values
        if not isinstance(cache, DynamicCache) or any(
            type(layer).__name__ != "DynamicLayer" for layer in cache.layers
        ):
            raise UnsupportedCache(f"{type(cache).__name__} with layers other than full attention")
        logits = out.logits
        if logits.shape[1] != 1:  # a model that ignores logits_to_keep: pick the positions here
            rows = torch.arange(len(lengths))
            logits = logits[rows, keep.squeeze(1).to(logits.device)].unsqueeze(1)
        return logits[:, 0], cache

    def forward_continuation(self, feed, cache, group_rows, starts, width: int):
        """Run continuation tokens on top of their contexts' cache rows: padded cache positions
        are masked, positions continue from each context's own length."""
        import torch
        from transformers import DynamicCache

        rows_cache = DynamicCache(
            [
                (layer.keys.index_select(0, group_rows), layer.values.index_select(0, group_rows))
                for layer in cache.layers
            ]
        )
        steps = feed.shape[1]
        past = torch.arange(width, device=feed.device).unsqueeze(0) < starts.unsqueeze(1)
        mask = torch.cat([past, torch.ones_like(feed, dtype=torch.bool)], dim=1).long()
        positions = starts.unsqueeze(1) + torch.arange(steps, device=feed.device).unsqueeze(0)
        with torch.no_grad():
            out = self.model(
                input_ids=feed,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=rows_cache,
                use_cache=True,
            )
        return out.logits


_TOLERANCE = {"float32": 1e-4, "float64": 1e-8}
"""Relative difference from lm-eval's own scores accepted by the check on a model's first
group; half-precision types get `_HALF_TOLERANCE` (their rounding depends on the batch shape,
as lm-eval's own scores do)."""
_HALF_TOLERANCE = 2e-2


class _Numbered(tuple):
    """A request that knows its index in the list it came from."""

    number: int


def lm_eval_batches(
    requests: Sequence[Request], batch_size: int, by_context: bool
) -> list[list[int]]:
    """The batches lm-eval's `HFLM._loglikelihood_tokens` makes of these requests, as indices:
    its `Collator` order (longest context + continuation first), `batch_size` rows at a time;
    with `by_context` (lm-eval's `logits_cache`, for causal models) a row stands for every
    request with the same context and continuation but for its last token. lm-eval makes the
    same batches again of the requests of any of these batches taken together."""
    from lm_eval.models.utils import Collator

    rows = []
    for index, request in enumerate(requests):
        row = _Numbered(request)
        row.number = index
        rows.append(row)
    collator = Collator(
        rows,
        sort_fn=lambda r: (-len(r[1] + r[2]), tuple(r[1] + r[2])),
        group_by="contexts" if by_context else None,
        group_fn=lambda r: r[-2] + r[-1][:-1],
    )  # lm-eval's own `_collate` and `_lookup_one_token_cont`
    sharing: dict[tuple[int, ...], list[int]] = {}
    for row in rows:
        sharing.setdefault(tuple(row[1] + row[2][:-1]), []).append(row.number)
    planned = []
    for chunk in collator.get_batched(n=batch_size):
        if by_context:
            planned.append(sorted(i for r in chunk for i in sharing[tuple(r[1] + r[2][:-1])]))
        else:
            planned.append(sorted(r.number for r in chunk))
    return planned


class SharedPrefixLoglikelihood:
    """For a subclass of lm-eval's `HFLM`: loglikelihood requests scored by `SharedPrefixScorer`.

    The first time a model has requests that share a context, one group of them is scored both
    ways, lm-eval's and this one; this path is used only if every loglikelihood agrees within
    the tolerance of the model's dtype and, in float32, every greedy flag matches. Otherwise, and
    for models whose cache cannot be reused, lm-eval's own code scores everything.
    `prefix_sharing` says which way was taken and why."""

    share_prefix: bool = True
    prefix_sharing: dict | None = None
    work: dict[str, float]
    """Counters the subclass creates (`ReasoningAwareHFLM.work`)."""
    _answered: list | None = None
    """During `resume_loglikelihood`: the answers already known, per request (None if not)."""

    def resume_loglikelihood(self, requests, answered: Sequence) -> list:
        """lm-eval's `loglikelihood` of a whole request list of which some are answered already
        (`answered`: the answer per request, None where there is none), as lm-eval's request
        cache serves them after a kill. Batches are composed from the whole list, as in an
        uninterrupted run; those that hold a request not answered are computed in full (the
        answered requests in them too, so their neighbours get the numbers of an uninterrupted
        run, bit for bit), the others not. Returns an answer per request: computed where its
        batch was, else the one given."""
        if len(answered) != len(requests):
            raise ValueError("one answer (or None) per request")
        self._answered = list(answered)
        try:
            return self.loglikelihood(requests)
        finally:
            self._answered = None

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list:
        # lm-eval's own switch for its "Tokenizing inputs" bar (the evaluator never passes it):
        # harness's display shows the requests instead (`harness.progress`).
        return super().loglikelihood(requests, disable_tqdm=True)  # type: ignore[misc]

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        started = time.perf_counter()
        answered, self._answered = self._answered, None  # for this list alone
        if answered is not None and len(answered) != len(requests):
            answered = None
        computed = [len(requests)]
        try:
            answers = self._score_requests(requests, disable_tqdm, override_bs, answered, computed)
            if answered is None:
                return answers
            return [a if a is not None else b for a, b in zip(answers, answered, strict=True)]
        finally:
            self.work["loglikelihood_requests"] += computed[0]
            self.work["loglikelihood_seconds"] += time.perf_counter() - started

    def _score_requests(self, requests, disable_tqdm: bool, override_bs, answered, computed):
        """Answers per request; None for a request answered already whose batch was not
        computed. `computed[0]` is set to how many requests were."""
        plain = self.backend != "causal" or not isinstance(self.batch_size, int)
        if plain or not self.share_prefix:
            return self._lm_eval_scores(requests, disable_tqdm, override_bs, answered, computed)
        groups = group_by_context(requests, self.max_length)
        if not shares_contexts(groups, requests):
            return self._lm_eval_scores(requests, disable_tqdm, override_bs, answered, computed)
        scorer = SharedPrefixScorer(
            self.model,
            max_length=self.max_length,
            batch_size=self.batch_size,
            softmax_dtype=self.softmax_dtype,
        )
        if self.prefix_sharing is None:
            self.prefix_sharing = self._check(scorer, requests, groups)
        if not self.prefix_sharing["used"]:
            return self._lm_eval_scores(requests, disable_tqdm, override_bs, answered, computed)
        from harness import progress

        known = None if answered is None else [a is not None for a in answered]
        bar = progress.requests("loglikelihood", len(requests))  # to harness's display
        computed[0] = 0

        def scored(index: int, answer: tuple[float, bool]) -> None:
            self.cache_hook.add_partial("loglikelihood", requests[index][0], answer)
            computed[0] += 1
            bar.update(1)

        try:
            return scorer.score(requests, groups, scored, known)
        finally:
            bar.close()

    def _lm_eval_scores(self, requests, disable_tqdm: bool, override_bs, answered, computed):
        """lm-eval's own scoring; with answers known, only of the requests in lm-eval's batches
        that hold one not answered (so lm-eval batches them as in an uninterrupted run)."""
        from harness import progress

        def own(subset, override_bs):  # lm-eval's bar off: harness's display counts them
            with progress.requests("loglikelihood", len(subset)) as bar:
                done = super(SharedPrefixLoglikelihood, self)._loglikelihood_tokens(  # type: ignore[misc]
                    subset, disable_tqdm=True, override_bs=override_bs
                )
                bar.update(len(subset))
            return done

        if answered is None:
            return own(requests, override_bs=override_bs)
        if isinstance(self.batch_size, int):
            by_context = self.backend == "causal" and bool(getattr(self, "logits_cache", True))
            planned = lm_eval_batches(requests, self.batch_size, by_context)
            todo = sorted(
                i for batch in planned if any(answered[j] is None for j in batch) for i in batch
            )
        else:  # batch sizes lm-eval chooses itself: no plan to keep
            todo = [i for i, a in enumerate(answered) if a is None]
        computed[0] = len(todo)
        answers: list = [None] * len(requests)
        if todo:
            subset = [requests[i] for i in todo]
            done = own(subset, override_bs=override_bs)
            for i, answer in zip(todo, done, strict=True):
                answers[i] = answer
        return answers

    def _check(self, scorer: SharedPrefixScorer, requests, groups: list[Group]) -> dict:
        import logging

        log = logging.getLogger("harness")
        shared = [g for g in groups if len(g.members) > 1]
        probe = min(shared, key=lambda g: (len(g.prefix), -len(g.members)))
        sample = [requests[i] for i in probe.members]
        try:
            ours = scorer.score(sample)
        except UnsupportedCache as exc:
            log.info("context sharing off: %s; lm-eval's scoring is used", exc)
            return {"used": False, "reason": f"cache not reusable: {exc}"}
        from lm_eval.api.model import CacheHook

        hook, self.cache_hook = self.cache_hook, CacheHook(None)  # not answers to keep
        try:
            theirs = super()._loglikelihood_tokens(sample, disable_tqdm=True)  # type: ignore[misc]
        finally:
            self.cache_hook = hook
        dtype = str(self.model.dtype).removeprefix("torch.")
        tolerance = _TOLERANCE.get(dtype, _HALF_TOLERANCE)
        pairs = list(zip(ours, theirs, strict=True))
        worst = max(abs(a[0] - b[0]) / max(abs(b[0]), 1e-6) for a, b in pairs)
        greedy_same = all(a[1] == b[1] for a, b in pairs)
        used = worst <= tolerance and (greedy_same or dtype not in _TOLERANCE)
        result = {
            "used": used,
            "checked_requests": len(sample),
            "max_relative_difference": float(f"{worst:.3g}"),
            "tolerance": tolerance,
        }
        if not used:
            result["reason"] = "differs from lm-eval's scores on the check"
            log.warning(
                "context sharing off: on %d requests it differs from lm-eval's scores by up to "
                "%.3g (relative; tolerance %.3g); lm-eval's scoring is used",
                len(sample), worst, tolerance,
            )  # fmt: skip
        return result

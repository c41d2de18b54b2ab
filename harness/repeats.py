"""Sampled generation with k samples per item: what lm-eval is asked, how each sample is scored,
and how the samples sum up (per-item mean, task mean ± stderr over items, pass@k).

lm-eval's `repeats` sends each generation request k times, but then keeps only the first
answer (a task without its own filters gets `take_first`), so k-1 samples would be generated
and thrown away. `sample_each` makes a task score every sample: its filters run on each answer
alone, its metrics are computed per answer, and what lm-eval aggregates is the item's mean over
its k answers. lm-eval's own score for the task is then the mean over items of those per-item
means, and its standard error the spread of the per-item means over items (k samples make
each item's value steadier; they are not k times the items). Each answer and its metrics stay
with the item, for the per-sample logs (`harness.evaluation.sample_records`).

pass@k is the unbiased estimator of Chen et al. (2021, "Evaluating Large Language Models
Trained on Code"): with n samples of which c are correct, 1 - C(n-c, k) / C(n, k), averaged
over items. It is reported where the metric is exact match (an answer is right or wrong).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from harness.config import GenerationLimits


class SampledAnswers(list):
    """An item's k answers after the task's filters, in the order they were generated, and
    `metrics`: each answer's metric values (filled in when the item is scored)."""

    metrics: list[dict[str, Any]]

    def __init__(self, answers: Iterable[Any]) -> None:
        super().__init__(answers)
        self.metrics = []


def sampling_kwargs(limits: GenerationLimits) -> dict[str, Any]:
    """The sampling settings every engine receives in each generation request's gen_kwargs
    (lm-eval's names): nothing when the config leaves each task its own decoding, greedy for
    temperature 0, else `do_sample` with the configured temperature, top_p and top_k."""
    if limits.temperature is None:
        return {}
    if not limits.samples:
        return {"do_sample": False, "temperature": 0.0}
    kwargs: dict[str, Any] = {"do_sample": True, "temperature": limits.temperature}
    if limits.top_p is not None:
        kwargs["top_p"] = limits.top_p
    if limits.top_k is not None:
        kwargs["top_k"] = limits.top_k
    return kwargs


def lm_eval_seeds(seed: int) -> dict[str, int]:
    """`simple_evaluate`'s seed arguments, all from the config's `generation.seed`."""
    return {
        "random_seed": seed,
        "numpy_random_seed": seed,
        "torch_random_seed": seed,
        "fewshot_random_seed": seed,
    }


def batch_seed(seed: int, contexts: Sequence[str], settings: dict, draw: int) -> int:
    """The torch seed of one sampled batch: a digest of the run's seed, the batch's prompts and
    settings, and `draw` (how many times this same batch was sampled before in this process).

    Seeding each batch from what it holds, not from the sampler's state after the batches
    before it, makes a batch's answers independent of which batches ran first: a resumed run
    (which generates its sampled batches again, in the same order) and a run of one suite alone
    write the same answers as the full run. `draw` tells apart the copies of a prompt that
    lm-eval's repeats put in batches of their own (batch size below k)."""
    text = json.dumps([seed, sorted(settings.items()), list(contexts), draw], default=str)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def start_draws(owner: Any) -> None:
    """Start counting `owner`'s draws afresh: each engine calls it at the start of every
    `generate_until` (lm-eval's generation requests of one suite, all at once), so what a suite
    samples does not depend on the suites the same engine sampled before."""
    owner.__dict__["_draws"] = defaultdict(int)


def draw_seed(owner: Any, contexts: Sequence[str], settings: dict, seed: int) -> int:
    """The seed of the next sampled draw of `contexts` (a batch's prompts, or one request's)
    with `settings`: `batch_seed` of the run's `seed`, the prompts, the settings and how many
    times `owner` (the engine's LM object) drew the same since its last `start_draws`.

    Every engine seeds through this one derivation: torch per batch on the hf path, the
    engine per request on llama.cpp, vLLM and a server. So the k samples of an item differ,
    and a seeded run, resumed or run one suite at a time, samples the same."""
    key = (tuple(contexts), repr(sorted(settings.items())))
    draws = owner.__dict__.setdefault("_draws", defaultdict(int))
    drawn = batch_seed(seed, contexts, settings, draws[key])
    draws[key] += 1
    return drawn


def request_seed(owner: Any, prompt: str, settings: dict, seed: int) -> int:
    """`draw_seed` for one request, cut to 31 bits: for the engines that take a seed per
    request (llama.cpp's sampler takes a 32-bit seed, some servers a signed one)."""
    return draw_seed(owner, [prompt], settings, seed) % 2**31


def sample_each(tasks: Iterable, k: int) -> list[str]:
    """Ask each generation task of `tasks` (lm-eval task objects, leaves) for `k` samples per
    item, each scored on its own; return the names of the tasks changed.

    A task whose config already asks for several samples (its own `repeats`, combined by its
    filters, as in majority-vote tasks) is left as its authors wrote it. Checked against
    lm-eval 0.4.13: it reads `task._filters` (a list of `FilterEnsemble`) and calls
    `task.process_results(doc, [answer])` per item; tests/test_repeats.py fails if either
    changes."""
    changed = []
    for task in tasks:
        if task.get_config("output_type") != "generate_until":
            continue
        if (task.get_config("repeats") or 1) > 1:
            continue
        task.set_config("repeats", k)
        task._filters = [_EachSample(ensemble) for ensemble in task._filters]
        task.process_results = _scored_each(task.process_results)
        changed.append(task.get_config("task"))
    return changed


class _EachSample:
    """A task's filter pipeline run on each answer of an item alone (lm-eval's runs on the k
    answers together and ends by taking the first), keeping all k: `SampledAnswers`."""

    def __init__(self, ensemble) -> None:
        self.ensemble = ensemble
        self.name = ensemble.name

    def apply(self, instances) -> None:
        alone = [
            [
                SimpleNamespace(resps=[answer], doc=inst.doc, filtered_resps={})
                for answer in inst.resps
            ]
            for inst in instances
        ]
        self.ensemble.apply([one for each in alone for one in each])
        for inst, each in zip(instances, alone, strict=True):
            inst.filtered_resps[self.name] = SampledAnswers(
                one.filtered_resps[self.name] for one in each
            )


def _scored_each(process_results):
    """The task's `process_results` applied to each answer of an item; returns the item's mean
    of each numeric metric (a corpus metric's per-item pair is the first answer's, as lm-eval
    keeps it without repeats) and keeps each answer's values on the `SampledAnswers`."""

    def scored(doc, results):
        if len(results) != 1 or not isinstance(results[0], SampledAnswers):
            return process_results(doc, results)
        answers = results[0]
        each = [process_results(doc, [answer]) for answer in answers]
        answers.metrics = [
            {name: float(value) for name, value in values.items() if _is_number(value)}
            for values in each
        ]
        return {
            name: (
                sum(float(values[name]) for values in each) / len(each)
                if all(_is_number(values.get(name)) for values in each)
                else first
            )
            for name, first in each[0].items()
        }

    return scored


def _is_number(value) -> bool:
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            value = value.item()
        except (ValueError, TypeError):
            return False
    return isinstance(value, (bool, int, float)) and math.isfinite(float(value))


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k for one item with `n` samples of which `c` are correct:
    the chance that k of the n, drawn without replacement, hold at least one correct answer,
    1 - C(n-c, k) / C(n, k) (Chen et al. 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def summarize(
    per_sample: Sequence[Sequence[float]], metric: str, k: int | None = None
) -> dict[str, Any]:
    """The repeats summary of a task from each item's per-sample values of `metric` (lm-eval's
    key, `exact_match,none`, or its bare name): k, items, the mean over items of the per-item
    means, its standard error over items (sample standard deviation / sqrt(items), lm-eval's
    formula), and, for exact match, pass@1 and pass@k."""
    name = metric.split(",")[0]
    if not per_sample:
        raise ValueError("no items to summarize")
    counts = {len(values) for values in per_sample}
    if len(counts) != 1:
        raise ValueError(f"items have different numbers of samples: {sorted(counts)}")
    k = k or counts.pop()
    means = [sum(values) / len(values) for values in per_sample]
    items = len(means)
    mean = sum(means) / items
    stderr = (
        math.sqrt(sum((m - mean) ** 2 for m in means) / (items - 1) / items) if items > 1 else None
    )
    summary: dict[str, Any] = {
        "k": k,
        "metric": name,
        "items": items,
        "mean": mean,
        "stderr": stderr,
        "pass_at_k": {},
    }
    if name == "exact_match":
        correct = [sum(1 for v in values if v == 1) for values in per_sample]
        summary["pass_at_k"] = {
            j: sum(pass_at_k(k, c, j) for c in correct) / items for j in sorted({1, k})
        }
    return summary


def task_summary(rows: list[dict], metric: str) -> dict[str, Any] | None:
    """The repeats summary of one task from its per-sample log rows (`sample_records`), on the
    filter of `metric` (`exact_match,none`); None when the task was not sampled k times."""
    name, _, filt = metric.partition(",")
    sampled = [r for r in rows if "sample_metrics" in r and r.get("filter", filt) == filt]
    if not sampled:
        return None
    try:
        per_sample = [[m[name] for m in r["sample_metrics"]] for r in sampled]
    except KeyError:
        return None  # a corpus metric: no value per answer
    return summarize(per_sample, metric)

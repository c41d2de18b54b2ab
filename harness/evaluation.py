"""Score a loaded model on one suite through lm-eval, and read what lm-eval returned.

Scores are lm-eval's own: `simple_evaluate` runs on the model object harness loaded, and its
metrics and standard errors are copied into the results unchanged.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from harness.config import ModelSpec
from harness.models.load import LoadedModel


def make_lm(loaded: LoadedModel, spec: ModelSpec, generation_store=None):
    """Wrap a loaded model for lm-eval, passing the tokenizer object (not a name to look up).

    Loglikelihoods are computed once per shared context and checked against lm-eval's
    (`harness.shared_prefix`); generation is think-aware (`harness.generation`). A model that
    vLLM runs (`harness.models.engines.start_vllm`) is lm-eval's `VLLM` already."""
    if spec.backend == "vllm":
        return loaded.model
    if spec.backend == "llamacpp":
        from harness.models.llamacpp_lm import make_llamacpp_lm

        return make_llamacpp_lm(loaded, spec)
    if spec.backend == "server":
        from harness.models.server_lm import make_server_lm

        return make_server_lm(loaded, spec)
    from harness.generation import ReasoningAwareHFLM, ThinkTags

    limits = spec.generation
    tags = ThinkTags(limits.think_start, limits.think_end) if limits.think_start else None
    return ReasoningAwareHFLM(
        think_tags=tags,
        think_budget=limits.think_budget,
        generation_store=generation_store,
        pretrained=loaded.model,
        tokenizer=loaded.tokenizer,
        batch_size=spec.batch_size,
        max_length=spec.generation.max_length,
        device=loaded.device,
        trust_remote_code=spec.trust_remote_code,
    )


def build_suite(task_manager, suite: str) -> list:
    """lm-eval's task objects for one suite, their data read: the data-load phase, apart from
    scoring. `evaluate_suite` takes them as `simple_evaluate` would have built them."""
    loaded = task_manager.load([suite])
    if suite in loaded["groups"]:
        return [loaded["groups"][suite]]
    if suite in loaded["tasks"]:
        return [loaded["tasks"][suite]]
    return list(loaded["tasks"].values())  # a tag: the tasks it names


def evaluate_suite(
    lm,
    suite: str | list,
    task_manager,
    *,
    spec: ModelSpec,
    limit: int | None = None,
    num_fewshot: int | None = None,
    use_cache: str | None = None,
) -> dict[str, Any]:
    """Run lm-eval's `simple_evaluate` for one suite (its name, or what `build_suite` built);
    return its raw output.

    Settings whose defaults changed between lm-eval releases are given explicitly. `use_cache`
    is lm-eval's request cache: a path prefix that must be this model's alone; lm-eval opens it
    as `ResumingRequestCache` here. The model's sampling settings go to every generation task,
    its seed to lm-eval's seeds, and `repeats` asks each for k answers (`harness.repeats`).
    """
    import lm_eval.api.model
    import lm_eval.evaluator
    from lm_eval import simple_evaluate

    from harness.repeats import lm_eval_seeds, sample_each, sampling_kwargs

    limits = spec.generation
    if limits.repeats > 1:  # k answers per item, each scored (lm-eval's repeats keep the first)
        suite = build_suite(task_manager, suite) if isinstance(suite, str) else suite
        sample_each(task_manager.load(suite)["tasks"].values(), limits.repeats)
    lm.sampling_seed = limits.seed  # ReasoningAwareHFLM seeds each sampled batch from it
    gen_kwargs = sampling_kwargs(limits)
    if limits.max_new_tokens:
        gen_kwargs["max_gen_toks"] = limits.max_new_tokens
    lm_eval.evaluator.add_env_info = _environment_once
    lm_eval.evaluator.get_git_commit_hash = _git_hash_quietly
    caching = lm_eval.api.model.CachingLM
    lm_eval.api.model.CachingLM = _resuming_request_cache()  # what simple_evaluate wraps lm in
    try:
        return simple_evaluate(
            model=lm,
            tasks=[suite] if isinstance(suite, str) else suite,
            task_manager=task_manager,
            num_fewshot=num_fewshot,
            limit=limit,
            log_samples=True,
            apply_chat_template=spec.chat_template,
            fewshot_as_multiturn=False,
            gen_kwargs=gen_kwargs or None,
            **lm_eval_seeds(limits.seed),
            use_cache=use_cache,
            cache_requests=False,
            check_integrity=False,
            write_out=False,
            confirm_run_unsafe_code=False,
        )
    finally:
        lm_eval.api.model.CachingLM = caching


@functools.cache
def _resuming_request_cache():
    """`ResumingRequestCache`, a subclass of lm-eval's `CachingLM` (made once, when lm-eval
    is first needed)."""
    from lm_eval.api.model import CachingLM, eval_logger, hash_args

    class ResumingRequestCache(CachingLM):
        """lm-eval's request cache (`use_cache`), which gives a resumed run the numbers of an
        uninterrupted one, bit for bit.

        lm-eval's own hands the model only the requests it has no answer for, and the model
        batches those anew: after a kill, requests share batches with others than they did
        in an uninterrupted run, and a float's last bits depend on the batch it is computed in
        (the kernels a matrix product picks for its shape, the width a row is padded to). Here
        the model composes its batches from the whole request list, as an uninterrupted run
        does, and computes again, in full, every batch that holds a request not answered:
        loglikelihoods through `SharedPrefixLoglikelihood.resume_loglikelihood`, generations by
        sending the model only whole batches of `generation_batches`. Other requests and models
        (lm-eval's vLLM) are served as lm-eval serves them."""

        def __getattr__(self, attr: str) -> Any:
            if attr == "loglikelihood" and hasattr(self.lm, "resume_loglikelihood"):
                return lambda requests: self._resume(attr, requests)
            if attr == "generate_until" and _generates_in_batches(self.lm):
                return lambda requests: self._resume(attr, requests)
            return super().__getattr__(attr)

        def _resume(self, attr: str, requests: list) -> list:
            eval_logger.info(
                f"Loading '{attr}' responses from cache '{self.cache_db}' where possible..."
            )
            keys = [hash_args(attr, request.args) for request in requests]
            answers = [
                None if _sampled(attr, request) else self.dbdict.get(key)
                for request, key in zip(requests, keys, strict=True)
            ]
            remaining = [i for i, answer in enumerate(answers) if answer is None]
            eval_logger.info(
                f"Cached requests: {len(requests) - len(remaining)}, "
                f"Requests remaining: {len(remaining)}"
            )
            if not remaining:
                return answers
            if attr == "loglikelihood":
                found = self.lm.resume_loglikelihood(requests, answers)
            else:
                todo = sorted(
                    i
                    for batch in generation_batches(self.lm, requests)
                    if any(answers[j] is None for j in batch)
                    for i in batch
                )
                found = list(answers)
                made = self.lm.generate_until([requests[i] for i in todo])
                for i, answer in zip(todo, made, strict=True):
                    found[i] = answer
            for i in remaining:
                self.dbdict[keys[i]] = found[i]
            self.dbdict.commit()
            return found

    return ResumingRequestCache


def _sampled(attr: str, request) -> bool:
    """A sampled generation, which lm-eval's request cache never serves."""
    return attr == "generate_until" and bool(request.args[1].get("do_sample", False))


def _generates_in_batches(lm) -> bool:
    from harness.generation import ReasoningAwareHFLM

    return isinstance(lm, ReasoningAwareHFLM) and isinstance(lm.batch_size, int)


def generation_batches(lm, requests: list) -> list[list[int]]:
    """The batches, as indices, that `ReasoningAwareHFLM.generate_until` makes of these
    generation requests: per generation setting, prompts longest first (in tokens, then by
    text), `batch_size` at a time. It makes the same batches again of the requests of any of
    these batches taken together. (Keep in step with `generate_until`: tests/test_resume.py
    checks the two agree.)"""
    settings: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        settings.setdefault(repr(sorted(request.args[1].items())), []).append(index)
    planned = []
    for indices in settings.values():
        contexts = {i: requests[i].args[0] for i in indices}
        order = sorted(indices, key=lambda i: (-len(lm.tok_encode(contexts[i])), contexts[i]))
        planned += [order[n : n + lm.batch_size] for n in range(0, len(order), lm.batch_size)]
    return planned


def _git_hash_quietly() -> str | None:
    """lm-eval's `get_git_commit_hash` (checked against lm-eval 0.4.13): the commit of the
    working directory's repository, which lm-eval records in every result, the same value.

    lm-eval runs `git describe` with git's stderr on the console, so outside a repository every
    suite printed `fatal: not a git repository`; here git's words go to the log (run.log)."""
    import logging
    import os
    import subprocess

    from lm_eval.loggers.utils import get_commit_from_path

    try:
        done = subprocess.run(
            ["git", "describe", "--always"], capture_output=True, text=True, check=False
        )
    except OSError:  # git not installed
        return get_commit_from_path(os.getcwd())
    if done.returncode == 0:
        return done.stdout.strip()
    logging.getLogger("harness").info("git describe (for lm-eval): %s", done.stderr.strip())
    return get_commit_from_path(os.getcwd())


_ENVIRONMENT: dict[str, Any] = {}


def _environment_once(storage: dict[str, Any]) -> None:
    """lm-eval's `add_env_info`, computed once per process and then repeated.

    lm-eval describes the environment in every result it returns, with torch's `collect_env`
    (0.3 to 1.4 s, with subprocesses, on each call). harness calls `simple_evaluate` once per
    suite; the environment does not change between suites, so later calls reuse the first
    description: the same keys and values, without the cost."""
    from lm_eval.loggers.utils import add_env_info

    if not _ENVIRONMENT:
        described: dict[str, Any] = {}
        add_env_info(described)
        _ENVIRONMENT.update(described)
    storage.update(_ENVIRONMENT)


def task_metrics(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per task and group: lm-eval's metric entries (`acc,none`, `acc_stderr,none`, ...) as given,
    plus the sample counts."""
    counts = raw.get("n-samples", {})
    out: dict[str, dict[str, Any]] = {}
    for section in ("results", "groups"):
        for name, entries in (raw.get(section) or {}).items():
            metrics = {k: _plain(v) for k, v in entries.items() if "," in k}
            out.setdefault(name, {"metrics": {}, "n_samples": None})["metrics"].update(metrics)
            out[name]["alias"] = entries.get("alias", name)
            if name in counts:
                out[name]["n_samples"] = counts[name]
    return out


def primary_metric(metrics: dict[str, Any]) -> tuple[str, float | None, float | None]:
    """The metric a report leads with: acc, then exact_match, then the first numeric one."""
    names = [k for k in metrics if "_stderr," not in k]
    for preferred in ("acc,", "exact_match,", "chrf,"):
        chosen = next((k for k in names if k.startswith(preferred)), None)
        if chosen:
            break
    else:
        chosen = next((k for k in names if isinstance(metrics[k], (int, float))), None)
    if chosen is None:
        return "", None, None
    metric, _, filt = chosen.partition(",")
    stderr = metrics.get(f"{metric}_stderr,{filt}")
    return chosen, _number(metrics[chosen]), _number(stderr)


def sample_records(
    task: str,
    samples: list[dict[str, Any]],
    output_type: str,
    generations_for=None,
) -> list[dict]:
    """Per-item log lines: prompt, choices or target, the model's answer, and correctness.

    For generation, `generations_for(task, doc_id, arguments)` (`ReasoningAwareHFLM`'s) adds
    what the model wrote before its thinking was removed and whether the answer ran into the
    token limit. An item sampled k times (`harness.repeats`) has its k `answers`, each one's
    `sample_metrics` and `sample_correct`, and in `metrics` their means."""
    records = []
    for sample in samples:
        arguments = sample.get("arguments") or []
        prompt = _argument(arguments, 0, 0)
        record: dict[str, Any] = {"task": task, "doc_id": sample.get("doc_id"), "prompt": prompt}
        if output_type == "multiple_choice":
            choices = [_argument(arguments, i, 1) for i in range(len(arguments))]
            logliks = [_loglik(r) for r in sample.get("filtered_resps") or []]
            answer = max(range(len(logliks)), key=logliks.__getitem__) if logliks else None
            record.update(
                choices=[c.removeprefix(" ") if isinstance(c, str) else c for c in choices],
                target=_plain(sample.get("target")),
                answer=answer,
                loglikelihoods=logliks,
            )
        elif sampled := _sampled_answers(sample):
            # k answers (`harness.repeats`): each with its metrics; `metrics` holds their means
            record.update(
                target=_plain(sample.get("target")),
                filter=sample.get("filter"),
                answers=_plain(list(sampled)),
                sample_metrics=sampled.metrics,
                sample_correct=[_correct(m) for m in sampled.metrics],
            )
        else:
            responses = sample.get("filtered_resps") or sample.get("resps") or []
            record.update(target=_plain(sample.get("target")), answer=_plain(_first(responses)))
        if output_type != "multiple_choice":
            made = generations_for(task, sample.get("doc_id"), arguments) if generations_for else []
            if made:
                record.update(
                    thought=any(g.thought for g in made),
                    hit_token_limit=any(g.hit_token_limit for g in made),
                    generated_tokens=[g.tokens for g in made],
                )
                if len(made) > 1:  # k answers: each one's flags too
                    record.update(
                        sample_thought=[g.thought for g in made],
                        sample_hit_token_limit=[g.hit_token_limit for g in made],
                    )
                if record["thought"]:
                    record["raw_output"] = [g.raw for g in made]
        metric_values = {
            k: _plain(v)
            for k, v in sample.items()
            if k in SAMPLE_METRICS and isinstance(_plain(v), (int, float, bool))
        }
        record["metrics"] = metric_values
        correct = None if "answers" in record else _correct(metric_values)
        record["correct"] = correct  # an item of k answers: `sample_correct`, one per answer
        records.append(record)
    return records


def _sampled_answers(sample: dict[str, Any]):
    """An item's k answers with their metrics (`harness.repeats.SampledAnswers`), or None."""
    from harness.repeats import SampledAnswers

    found = sample.get("filtered_resps") or []
    return found[0] if len(found) == 1 and isinstance(found[0], SampledAnswers) else None


def _correct(metric_values: dict[str, Any]) -> bool | None:
    correct = metric_values.get("acc", metric_values.get("exact_match"))
    return bool(correct) if correct is not None else None


SAMPLE_METRICS = ("acc", "acc_norm", "exact_match", "f1", "bleu")
"""Per-item metric values copied into the per-sample logs (corpus metrics such as chrF have no
per-item value)."""


def generation_summary(records: list[dict]) -> dict[str, int] | None:
    """How many answers of a generation task thought, and how many hit the token limit; an
    item sampled k times counts k answers."""
    made = [r for r in records if "hit_token_limit" in r]
    if not made:
        return None
    thought = [f for r in made for f in r.get("sample_thought", [r["thought"]])]
    cut = [f for r in made for f in r.get("sample_hit_token_limit", [r["hit_token_limit"]])]
    return {"answers": len(cut), "hit_token_limit": sum(cut), "thought": sum(thought)}


def output_types(raw: dict[str, Any]) -> dict[str, str]:
    """Task name -> lm-eval output_type, from the task configs in the raw output."""
    return {
        name: str(cfg.get("output_type", "")) for name, cfg in (raw.get("configs") or {}).items()
    }


def _argument(arguments: list, i: int, j: int):
    try:
        return arguments[i][j]
    except (IndexError, KeyError, TypeError):
        return None


def _loglik(response) -> float:
    value = response[0] if isinstance(response, (list, tuple)) else response
    return float(value)


def _first(values):
    while isinstance(values, (list, tuple)) and values:
        values = values[0]
    return values


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def _plain(value):
    """lm-eval results hold numpy scalars and tuples; JSON wants plain Python."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value

"""Scoring one model of a run: fingerprint its weights, reuse what its identity already scored,
load it if anything is left, score each suite through lm-eval, and keep the per-sample logs."""

from __future__ import annotations

import gc
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.config import ModelSpec
from harness.errors import HarnessError
from harness.identity import (
    chat_template_digest,
    describe_files,
    identity_digest,
    lm_eval_task_hash,
    source_files,
)
from harness.suites.context_fit import overlong_items
from harness.work import suite_work, throughput, work_done

log = logging.getLogger("harness")


class ModelScoring:
    """One model's part of a run (`harness.job.Job`): it writes into the job's results."""

    def __init__(self, job) -> None:
        self.config = job.config
        self.task_manager = job.task_manager
        self.say = job.say
        self.show_progress = job.show_progress
        self.data = job.data
        self.root = job.root
        self.fail = job.fail
        self.save = job.save
        self.write_samples = job.write_samples
        self.phases = job.phases
        self.peaks: dict[str, int] = {}
        """The highest memory peaks of this model's phases (`harness.phases`)."""
        self.scored_items: list[tuple[str, dict]] = []
        self.fingerprints: dict[str, str] = {}

    def run_model(self, spec: ModelSpec, source) -> None:
        """Fingerprint, load and score one model on every suite in this process (the weaker,
        unsandboxed mode; the sandboxed run splits these between supervisor and worker)."""
        from harness.models.gguf_cache import convert_here

        entry = self.fingerprint(spec, source)
        self.prepare_gguf(spec, source, entry, convert_here(source))
        self.score(spec, source, entry)

    def fingerprint(self, spec: ModelSpec, source) -> dict:
        """The model's entry in the results: where it is, and the sha256 of its weights."""
        entry: dict[str, Any] = {"status": "running", "suites": {}}
        self.data["models"][spec.id] = entry
        entry["identity"] = {
            "kind": source.kind,
            "location": source.describe(),
            "directory": str(source.directory),
            "gguf_file": source.gguf_file,
            "repo": source.repo,
            "revision": source.revision,
            "commit": source.commit,
            "remote_code": source.remote_code,
            "alias": source.alias,
        }
        if spec.stand_in_for:
            entry["stand_in"] = {"configured": spec.stand_in_for, "scored": source.describe()}
        files = source_files(source)
        total = sum(path.stat().st_size for path, _ in files)
        self.say(f"{spec.id}: sha256 of {len(files)} file(s), {total:,} bytes")
        started = time.perf_counter()
        with (
            self.phases.phase("model_load", self.peaks),
            _byte_progress(f"{spec.id}: hashing", total, self.show_progress) as advance,
        ):
            identity_files = describe_files(source, files, on_bytes=advance)
        entry["identity"]["weight_files"] = [
            {k: v for k, v in f.items() if k not in ("name", "role")}
            for f in identity_files
            if f["role"] == "weights"
        ]
        entry["identity"]["other_files"] = [f for f in identity_files if f["role"] != "weights"]
        entry["identity"]["digest"] = identity_digest(identity_files)
        entry["hash_seconds"] = round(time.perf_counter() - started, 3)
        self.save()
        return entry

    def score(self, spec: ModelSpec, source, entry: dict) -> None:
        """Load the model (unless the cache has every suite) and score it on every suite;
        failures are recorded in `entry`.

        With the cache on, suites this model identity already finished are taken from it, and
        the model is loaded only if one is left."""
        from harness.evaluation import make_lm
        from harness.models import load_model
        from harness.models.load import load_tokenizer, planned_placement

        self.data["models"][spec.id] = entry
        lm = loaded = tokenizer = None
        self.scored_items: list[tuple[str, dict]] = []
        try:
            device, dtype = planned_placement(spec, source)
            cache = self.open_cache(spec, entry, device, dtype)
            cached = self.cached_suites(cache)
            if len(cached) < len(self.config.suites):
                converted = (
                    None
                    if spec.backend in ("server", "llamacpp")
                    else self.converted_gguf(source, entry, dtype)
                )
                where = "its converted copy" if converted and converted.ready() else None
                self.say(f"{spec.id}: loading {where or source.describe()}")
                with self.phases.phase("model_load", self.peaks):
                    if spec.backend == "vllm":
                        from harness.models.engines import start_vllm

                        plan = self.data.get("preflight", {}).get("models", {}).get(spec.id)
                        loaded = start_vllm(spec, source, plan)
                    elif spec.backend == "server":
                        from harness.models.server import start_server

                        loaded = start_server(spec, source)
                        entry["server"] = loaded.model.describe()
                    elif spec.backend == "llamacpp":
                        from harness.models.llamacpp import load_llamacpp

                        loaded = load_llamacpp(spec, source)
                    else:
                        loaded = load_model(spec, source, converted)
                tokenizer = loaded.tokenizer
                lm = make_lm(loaded, spec, cache.generations if cache else None)
                facts = {
                    "dtype": loaded.dtype,
                    "device": loaded.device,
                    "parameters": loaded.parameters,
                    "context_window": lm.max_length,
                }
                entry.update(**facts, load_seconds=round(loaded.load_seconds, 3))
                entry["converted_from"] = loaded.converted_from
                if cache:
                    cache.store_model_facts(facts)
            else:
                self.say(f"{spec.id}: every suite is in the cache; loading the tokenizer only")
                if spec.backend == "llamacpp":
                    from harness.models.llamacpp import load_llamacpp_tokenizer

                    tokenizer = load_llamacpp_tokenizer(spec, source)
                else:
                    tokenizer = load_tokenizer(spec, source)
                entry.update(**(cache.load_model_facts() or {}), load_seconds=None)
        except HarnessError as exc:
            entry.update(status="failed", error=str(exc))
            self.fail(spec.id, str(exc))
            self.save()
            return
        self.save()
        try:
            from harness import progress

            count = len(self.config.suites)
            for index, suite in enumerate(self.config.suites):
                progress.report("suites", suite, index, count)
                if suite in cached:
                    self.say(f"{spec.id}: {suite} from the cache")
                    entry["suites"][suite] = self.reuse_suite(spec, suite, cached[suite])
                else:
                    self.say(f"{spec.id}: scoring {suite}")
                    entry["suites"][suite] = self.run_suite(lm, suite, spec, cache)
                self.save()
                progress.report("suites", suite, index + 1, count)
            entry["tokenizer"] = self.tokenizer_fitness(tokenizer, entry.get("context_window"))
            entry["chat_template_sha256"] = chat_template_digest(tokenizer)
            entry["throughput"] = throughput(entry, self.peaks, lm)
        except KeyboardInterrupt:
            entry["status"] = "interrupted"
            self.save()
            raise
        else:
            failed = any(s["status"] == "failed" for s in entry["suites"].values())
            entry["status"] = "failed" if failed else "ok"
            self.save()  # a worker's last word on its model; the supervisor keeps it
        finally:
            if loaded is not None and spec.backend == "server":
                loaded.model.stop()  # the serving engine, started by `start_server`
            del lm, loaded, tokenizer
            gc.collect()
            _free_accelerator_memory()

    def worker_cache_dirs(self, spec: ModelSpec, source, entry: dict) -> list[Path]:
        """The directories a sandboxed worker may write besides its scratch: this model
        identity's result cache, nothing shared with other models (the GGUF cache entry it
        reads is bound read-only: `prepare_gguf`)."""
        from harness.models.load import planned_placement

        device, dtype = planned_placement(spec, source)
        cache = self.open_cache(spec, dict(entry), device, dtype)
        return [] if cache is None else [cache.directory]

    def converted_gguf(self, source, entry: dict, dtype: str):
        """The machine-wide cache entry of a GGUF model's dequantized weights, or None (not a
        GGUF file, or one whose conversion runs shipped code: `gguf_cache.not_cacheable`)."""
        from harness.models.gguf_cache import ConvertedGGUF, not_cacheable

        if not source.gguf_file or not_cacheable(source):
            return None
        [gguf] = entry["identity"]["weight_files"]
        return ConvertedGGUF(gguf["sha256"], dtype)

    def prepare_gguf(self, spec: ModelSpec, source, entry: dict, convert):
        """Before a GGUF model loads: verify its converted copy in the machine-wide cache, or
        make it with `convert(destination, dtype)` (the supervisor's sandboxed converter, or
        `gguf_cache.convert_here`). Nothing is done when the result cache has every suite
        (the model will not load). Returns the entry, or None to load the GGUF file itself."""
        from harness.models.load import planned_placement

        if spec.backend == "llamacpp":
            return None  # llama.cpp reads the GGUF file as it is
        device, dtype = planned_placement(spec)
        converted = self.converted_gguf(source, entry, dtype)
        if converted is None or spec.backend == "server":  # the engine reads the file itself
            return None
        cache = self.open_cache(spec, dict(entry), device, dtype)
        if len(self.cached_suites(cache)) == len(self.config.suites):
            return None
        if not converted.ready():
            self.say(f"{spec.id}: converting the GGUF file once, into {converted.root}")
        with self.phases.phase("model_load", self.peaks):
            kept = converted.ensure(lambda destination: convert(destination, dtype))
        return converted if kept is not None else None

    def open_cache(self, spec: ModelSpec, entry: dict, device: str, dtype: str):
        """This model identity's cache, or None with the cache off."""
        from harness.cache import ModelCache, model_identity

        if not self.config.cache:
            return None
        identity = entry["identity"]
        files = identity["weight_files"] + identity.get("other_files", [])
        cache = ModelCache.open(self.root / ".cache", model_identity(spec, files, device, dtype))
        entry["cache"] = {"key": cache.key, "reused": []}
        return cache

    def cached_suites(self, cache) -> dict[str, dict]:
        """Suite -> its cached results, for the suites this identity already finished."""
        from harness.cache import suite_fingerprint

        self.fingerprints = {
            suite: suite_fingerprint(
                self.config, suite, self.data["suites"].get(suite, {}), self.task_manager.task_index
            )
            for suite in self.config.suites
        }
        if cache is None:
            return {}
        found = {s: cache.load_suite(s, fp) for s, fp in self.fingerprints.items()}
        return {suite: kept for suite, kept in found.items() if kept is not None}

    def reuse_suite(self, spec: ModelSpec, suite: str, kept: dict) -> dict:
        """A suite's results and per-sample logs as the cache kept them."""
        languages = self.data["suites"].get(suite, {}).get("languages", {})
        for task, rows in kept["samples"].items():
            relative = Path("samples") / spec.id / f"{task}.jsonl"
            self.write_samples(relative, rows)
            self.scored_items += [(languages.get(task, "und"), row) for row in rows]
        self.data["models"][spec.id]["cache"]["reused"].append(suite)
        return kept["entry"]

    def tokenizer_fitness(self, tokenizer, window: int | None) -> dict:
        """Tokenizer cost per language on the items just scored (never fails the run)."""
        from harness.suites.fitness import group_by_language, tokenizer_fitness

        try:
            return tokenizer_fitness(tokenizer, group_by_language(self.scored_items), window)
        except Exception as exc:  # a measurement, not a score: record why it is missing
            log.warning("tokenizer fitness failed\n%s", traceback.format_exc())
            return {"error": f"{type(exc).__name__}: {exc}"}

    def run_suite(self, lm, suite: str, spec: ModelSpec, cache=None) -> dict:
        """Score one suite through lm-eval, write its per-sample logs, and keep both in the
        cache when it finished."""
        from harness.evaluation import (
            build_suite,
            evaluate_suite,
            generation_summary,
            output_types,
            primary_metric,
            sample_records,
            task_metrics,
        )
        from harness.repeats import task_summary

        started = time.perf_counter()
        if hasattr(lm, "generations"):  # lm-eval's vLLM model keeps no record of its own
            lm.generations.clear()
        before = work_done(lm)
        try:
            with self.phases.phase("data_load", self.peaks):
                built = build_suite(self.task_manager, suite)
            data_seconds = time.perf_counter() - started
            with self.phases.phase("scoring", self.peaks):
                raw = evaluate_suite(
                    lm,
                    built,
                    self.task_manager,
                    spec=spec,
                    limit=self.config.limit,
                    num_fewshot=self.config.num_fewshot,
                    use_cache=cache.requests if cache else None,
                )
        except HarnessError as exc:
            message = str(exc)
        except Exception as exc:  # a task that crashes must not take the other suites with it
            message = f"{type(exc).__name__}: {exc}"
            log.warning("suite %s failed for %s\n%s", suite, spec.id, traceback.format_exc())
        else:
            tasks = task_metrics(raw)
            types = output_types(raw)
            languages = self.data["suites"].get(suite, {}).get("languages", {})
            kept: dict[str, list[dict]] = {}
            for task, samples in (raw.get("samples") or {}).items():
                relative = Path("samples") / spec.id / f"{task}.jsonl"
                made = getattr(lm, "generations_for", None)
                rows = sample_records(task, samples, types.get(task, ""), made)
                for warning in overlong_items(task, samples, lm, types.get(task, "")):
                    self.say(f"warning: {spec.id}: {warning}")
                self.write_samples(relative, rows)
                self.scored_items += [(languages.get(task, "und"), row) for row in rows]
                tasks.setdefault(task, {})["samples_file"] = str(relative)
                if digest := lm_eval_task_hash(samples):
                    tasks[task]["task_hash"] = digest
                if summary := generation_summary(rows):
                    tasks[task]["generation"] = summary
                if repeats := task_summary(rows, primary_metric(tasks[task].get("metrics", {}))[0]):
                    tasks[task]["repeats"] = repeats  # k answers per item: mean, stderr, pass@k
                kept[task] = rows
            result = {
                "status": "ok",
                "seconds": round(time.perf_counter() - started, 3),
                "data_seconds": round(data_seconds, 3),
                "work": suite_work(tasks, types, before, work_done(lm)),
                "tasks": tasks,
                "lm_eval": {
                    "versions": raw.get("versions"),
                    "n_shot": raw.get("n-shot"),
                    "higher_is_better": raw.get("higher_is_better"),
                },
            }
            if cache is not None:
                cache.store_suite(suite, self.fingerprints[suite], result, kept)
            return result
        self.fail(f"{spec.id} / {suite}", message)
        seconds = round(time.perf_counter() - started, 3)
        return {"status": "failed", "error": message, "seconds": seconds}


@contextmanager
def _byte_progress(label: str, total: int, show: bool) -> Iterator[Callable[[int], None] | None]:
    """Bytes hashed, as `harness.progress` events (the display draws them, not this)."""
    if not show:
        yield None
        return
    from harness import progress

    with progress.Counter("bytes", label, total) as counter:
        yield counter.update


def _free_accelerator_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()

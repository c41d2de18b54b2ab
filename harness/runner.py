"""`run(config)`: the whole job. Go offline, check every input, then per model: fingerprint the
weights, load once, score each suite through lm-eval, and write results as they come in.

results.json is rewritten (atomically) after every suite, so a crash or Ctrl-C keeps what was
already scored; report.md is rendered from it at the end, whatever the end was.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.config import ModelSpec, RunConfig
from harness.digests import hash_files
from harness.errors import ConfigError, HarnessError, ModelNotFoundError
from harness.offline.policy import go_offline
from harness.reports.files import write_json_atomic, write_jsonl_atomic, write_text_atomic

log = logging.getLogger("harness")


@dataclass
class RunResult:
    """What a run produced: its directory and the results.json document."""

    run_dir: Path
    data: dict[str, Any]
    failures: list[str] = field(default_factory=list)

    @property
    def attempts(self) -> list[dict]:
        return self.data["offline"]["attempts"]

    @property
    def gates_failed(self) -> bool:
        return not (self.data.get("gates") or {}).get("passed", True)

    @property
    def exit_code(self) -> int:
        """3 for a network attempt under a strict policy, else 4 for a failed gate, else 1 for
        a failure, else 0."""
        if self.attempts and self.data["offline"]["policy"]["mode"] != "audit":
            return 3
        if self.gates_failed:
            return 4
        return 1 if self.failures else 0


def select(config: RunConfig, models: list[str] = (), suites: list[str] = ()) -> RunConfig:
    """Narrow a config to the given model ids and suite names (CLI `--model`, `--suite`)."""
    update: dict[str, Any] = {}
    if models:
        known = {m.id for m in config.models}
        unknown = [m for m in models if m not in known]
        if unknown:
            raise ConfigError(
                f"--model {', '.join(unknown)}: not in the config; its models are: "
                f"{', '.join(sorted(known))}"
            )
        update["models"] = [m for m in config.models if m.id in models]
    if suites:
        update["suites"] = list(dict.fromkeys(suites))
    return config.model_copy(update=update)


def substitute_paths(config: RunConfig, pairs: list[str] = ()) -> RunConfig:
    """Load some models from local paths instead (CLI `--model-path ID=PATH`): how a config
    naming models by repo id runs on a machine that has other copies of them, or stand-ins."""
    specs = {m.id: m for m in config.models}
    replaced: dict[str, ModelSpec] = {}
    for pair in pairs:
        model_id, sep, path = pair.partition("=")
        if not sep or not path:
            raise ConfigError(f"--model-path {pair}: expected ID=PATH (a directory or .gguf file)")
        if model_id not in specs:
            raise ConfigError(
                f"--model-path {pair}: no model '{model_id}' in the config; its models are: "
                f"{', '.join(sorted(specs))}"
            )
        replaced[model_id] = specs[model_id].model_copy(
            update={
                "path": Path(path).expanduser().resolve(),
                "repo": None,
                "revision": None,
                "package": None,
                "gguf_file": None,
            }
        )
    return config.model_copy(update={"models": [replaced.get(m.id, m) for m in config.models]})


def run(
    config: RunConfig,
    *,
    config_file: Path | None = None,
    output_dir: Path | None = None,
    say: Callable[[str], None] = log.info,
    show_progress: bool = False,
    preflight: bool = True,
) -> RunResult:
    """Score every model of `config` on every suite; write and return the results.

    `say` receives one line per step; `show_progress` draws a bar while weights are hashed
    (lm-eval and transformers draw their own).

    The process goes offline first (`go_offline`); its audit hook and seccomp filter stay for
    the life of the process. Mode `isolate` needs a process started in a network namespace,
    which `harness run --isolate` does by re-executing itself.

    Bad input (unknown suite, no model of the config on this machine, broken data, a model the
    memory preflight says cannot load, unless `preflight` is off) raises a `BadInputError`
    before any model loads. A model whose files are absent is skipped with its reason; a model
    or suite that fails while running is recorded; the run goes on with the others.
    `RunResult.exit_code` is 3 after a network attempt under a strict policy, else 1 after a
    failure, else 0.
    """
    from harness.suites import SuiteCatalog
    from harness.suites.sources import redirect_to_local_copies

    guard, offline = go_offline(config.offline)
    root = output_dir or config.output_dir
    baseline = _baseline(config, root, say)
    say("checking suites and models")
    catalog = SuiteCatalog(config.task_paths, config.data_dir)
    suites = catalog.check(config.suites)
    sources, absent = _resolve_all(config)
    for reason in absent.values():
        say(f"skipped: {reason}")
    present = config.model_copy(update={"models": [m for m in config.models if m.id in sources]})
    plans = _preflight(present, sources, say, enforce=preflight)

    job = _Job(config, guard, catalog.manager_for(config.suites), say, show_progress)
    job.baseline = baseline
    job.start(root, config_file, suites, offline)
    job.data["preflight"] = plans
    try:
        with redirect_to_local_copies(config.data_dir):
            for spec in config.models:
                if spec.id in absent:
                    job.skip_model(spec, absent[spec.id])
                else:
                    job.run_model(spec, sources[spec.id])
        job.data["status"] = "failed" if job.result.failures else "complete"
    except KeyboardInterrupt:
        job.data["status"] = "interrupted"
        raise
    finally:
        job.finish()
    return job.result


def _baseline(config: RunConfig, root: Path, say) -> dict | None:
    """The baseline run's results for `max_drop` gates, read before anything else happens."""
    if config.baseline is None:
        return None
    from harness.gates import load_baseline

    data = load_baseline(config.baseline, root, config.name, current=None)
    if data is None:
        say(f"baseline: no earlier complete run of '{config.name}' under {root}")
    else:
        say(f"baseline: {data['run']['directory']}")
    return data


def _resolve_all(config: RunConfig) -> tuple[dict, dict[str, str]]:
    """Model id -> source for the models on this machine, and id -> reason for the others.

    Absent models are skipped so that a config naming several candidates runs the ones present;
    when none is present there is nothing to run, and that is bad input.
    """
    from harness.models import resolve_model_source

    sources, absent = {}, {}
    for spec in config.models:
        try:
            sources[spec.id] = resolve_model_source(spec)
        except ModelNotFoundError as exc:
            absent[spec.id] = str(exc)
    if not sources:
        raise ModelNotFoundError("\n".join(absent.values()))
    return sources, absent


def _preflight(config: RunConfig, sources: dict, say, *, enforce: bool) -> dict:
    """Plan every model's memory from its config; refuse the run if one cannot fit."""
    from harness.capacity.hardware import detect_hardware
    from harness.capacity.preflight import check_fits, plan_models

    say("preflight: memory needed per model")
    hardware = detect_hardware()
    plans = plan_models(config, hardware, sources=sources)
    if enforce:
        check_fits(plans)
    for plan in plans:
        if plan.verdict != "fits":
            say(plan.explain())
    return {
        "enforced": enforce,
        "hardware": hardware.to_dict(),
        "models": {plan.model: plan.to_dict() for plan in plans},
    }


class _Job:
    """One run in progress: its results document, and the writing of it after every step."""

    def __init__(
        self, config: RunConfig, guard, task_manager, say: Callable[[str], None], show_progress
    ) -> None:
        self.config = config
        self.task_manager = task_manager
        self.say = say
        self.show_progress = show_progress
        self.guard = guard
        self.first_record = len(self.guard.records)
        self.clock = time.perf_counter()
        self.data: dict[str, Any] = {}
        self.result: RunResult
        self.baseline: dict | None = None
        self.root: Path

    def start(self, root: Path, config_file: Path | None, suites, offline: dict) -> None:
        from harness.environment import hardware, package_versions

        started = datetime.now(timezone.utc)
        self.root = root
        self.run_dir = _new_run_dir(root, self.config.name, started)
        self.data.update(
            {
                "harness_version": package_versions().get("harness"),
                "status": "running",
                "run": {
                    "name": self.config.name,
                    "started": started.isoformat(timespec="seconds"),
                    "finished": None,
                    "wall_seconds": None,
                    "config_file": str(config_file) if config_file else None,
                    "command": sys.argv,
                    "directory": str(self.run_dir),
                },
                "config": self.config.model_dump(mode="json"),
                "config_hash": self.config.config_hash(),
                "suites": {
                    info.name: {
                        "kind": info.kind,
                        "source": info.source,
                        "tasks": info.tasks,
                        "languages": info.languages,
                        "items": info.items,
                        "data_files": [w.to_dict() for w in hash_files(info.data_files)],
                    }
                    for info in suites
                },
                "models": {},
                "environment": {"packages": package_versions(), "hardware": hardware()},
                "offline": offline,
            }
        )
        self.result = RunResult(run_dir=self.run_dir, data=self.data)
        self.log_handler = _log_to(self.run_dir / "run.log")
        self.save()

    def save(self) -> None:
        """Rewrite results.json with everything known now, attempts included."""
        records = [r.to_dict() for r in self.guard.records[self.first_record :]]
        self.data["offline"]["attempts"] = records + self.guard.child_records()
        self.data["offline"]["files"] = attested_files(self.data)
        write_json_atomic(self.run_dir / "results.json", self.data)

    def finish(self) -> None:
        """Close the record, whatever the end was, and render report.md from it."""
        from harness.environment import hardware
        from harness.reports.html import render_html
        from harness.reports.junit import render_junit
        from harness.reports.markdown import render_report

        run = self.data["run"]
        run["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        run["wall_seconds"] = round(time.perf_counter() - self.clock, 3)
        self.data["environment"]["hardware"] = hardware()  # now that torch knows the GPUs
        self.judge()
        interrupted = self.data["status"] == "interrupted"
        self.data["exit_code"] = 130 if interrupted else self.result.exit_code
        self.save()
        if self.guard.sink is not None:
            self.guard.sink.unlink(missing_ok=True)  # its records are in results.json now
        write_text_atomic(self.run_dir / "report.md", render_report(self.data))
        write_text_atomic(self.run_dir / "report.html", render_html(self.data))
        write_text_atomic(self.run_dir / "junit.xml", render_junit(self.data))
        from harness.history import record_run

        record_run(self.root, self.data)
        logging.getLogger().removeHandler(self.log_handler)
        self.log_handler.close()

    def judge(self) -> None:
        """Judge the config's gates on what was scored (an interrupted run included)."""
        from harness.gates import judge_gates, summary

        if not self.config.gates:
            return
        checks = judge_gates(self.config, self.data, self.baseline)
        self.data["gates"] = {
            "baseline": (self.baseline or {}).get("run", {}).get("directory"),
            "noise_z": self.config.noise_z,
            **summary(checks),
            "checks": [c.to_dict() for c in checks],
        }

    def fail(self, where: str, message: str) -> None:
        self.result.failures.append(f"{where}: {message}")

    def skip_model(self, spec: ModelSpec, reason: str) -> None:
        """Record a model whose files are not on this machine; it counts as not run."""
        self.data["models"][spec.id] = {"status": "skipped", "error": reason, "suites": {}}
        self.fail(spec.id, f"skipped: {reason}")
        self.save()

    def run_model(self, spec: ModelSpec, source) -> None:
        """Fingerprint, load and score one model on every suite; failures are recorded.

        With the cache on, suites this model identity already finished are taken from it, and
        the model is loaded only if one is left."""
        from harness.evaluation import make_lm
        from harness.models import load_model
        from harness.models.load import load_tokenizer, planned_placement

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
        total = sum(p.stat().st_size for p in source.weight_files)
        self.say(f"{spec.id}: sha256 of {len(source.weight_files)} weight file(s), {total:,} bytes")
        started = time.perf_counter()
        with _byte_progress(f"{spec.id}: hashing", total, self.show_progress) as advance:
            weights = hash_files(source.weight_files, on_bytes=advance)
        entry["identity"]["weight_files"] = [w.to_dict() for w in weights]
        entry["hash_seconds"] = round(time.perf_counter() - started, 3)
        self.save()

        lm = loaded = tokenizer = None
        self.scored_items: list[tuple[str, dict]] = []
        try:
            device, dtype = planned_placement(spec)
            cache = self.open_cache(spec, entry, device, dtype)
            cached = self.cached_suites(cache)
            if len(cached) < len(self.config.suites):
                self.say(f"{spec.id}: loading {source.describe()}")
                loaded = load_model(spec, source)
                tokenizer = loaded.tokenizer
                lm = make_lm(loaded, spec, cache.generations if cache else None)
                facts = {
                    "dtype": loaded.dtype,
                    "device": loaded.device,
                    "parameters": loaded.parameters,
                    "context_window": lm.max_length,
                }
                entry.update(**facts, load_seconds=round(loaded.load_seconds, 3))
                if cache:
                    cache.store_model_facts(facts)
            else:
                self.say(f"{spec.id}: every suite is in the cache; loading the tokenizer only")
                tokenizer = load_tokenizer(spec, source)
                entry.update(**(cache.load_model_facts() or {}), load_seconds=None)
        except HarnessError as exc:
            entry.update(status="failed", error=str(exc))
            self.fail(spec.id, str(exc))
            self.save()
            return
        self.save()
        try:
            for suite in self.config.suites:
                if suite in cached:
                    self.say(f"{spec.id}: {suite} from the cache")
                    entry["suites"][suite] = self.reuse_suite(spec, suite, cached[suite])
                else:
                    self.say(f"{spec.id}: scoring {suite}")
                    entry["suites"][suite] = self.run_suite(lm, suite, spec, cache)
                self.save()
            entry["tokenizer"] = self.tokenizer_fitness(tokenizer, entry.get("context_window"))
            self.save()
        except KeyboardInterrupt:
            entry["status"] = "interrupted"
            raise
        else:
            failed = any(s["status"] == "failed" for s in entry["suites"].values())
            entry["status"] = "failed" if failed else "ok"
        finally:
            del lm, loaded, tokenizer
            gc.collect()
            _free_accelerator_memory()

    def open_cache(self, spec: ModelSpec, entry: dict, device: str, dtype: str):
        """This model identity's cache, or None with the cache off."""
        from harness.cache import ModelCache, model_identity

        if not self.config.cache:
            return None
        weights = entry["identity"]["weight_files"]
        cache = ModelCache.open(self.root / ".cache", model_identity(spec, weights, device, dtype))
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
            write_jsonl_atomic(self.run_dir / relative, rows)
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
            evaluate_suite,
            generation_summary,
            output_types,
            sample_records,
            task_metrics,
        )

        started = time.perf_counter()
        lm.generations.clear()
        try:
            raw = evaluate_suite(
                lm,
                suite,
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
                rows = sample_records(task, samples, types.get(task, ""), lm.generations_for)
                write_jsonl_atomic(self.run_dir / relative, rows)
                self.scored_items += [(languages.get(task, "und"), row) for row in rows]
                tasks.setdefault(task, {})["samples_file"] = str(relative)
                if summary := generation_summary(rows):
                    tasks[task]["generation"] = summary
                kept[task] = rows
            result = {
                "status": "ok",
                "seconds": round(time.perf_counter() - started, 3),
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
    if not show:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def attested_files(data: dict) -> dict[str, list[dict]]:
    """Every weight and data file the run read, with size and sha256, from its results."""
    weights = [
        {"model": model_id, **weight}
        for model_id, model in data["models"].items()
        for weight in model.get("identity", {}).get("weight_files", [])
    ]
    files = [
        {"suite": name, **item}
        for name, suite in data["suites"].items()
        for item in suite.get("data_files", [])
    ]
    return {"weights": weights, "data": files}


def _new_run_dir(root: Path, name: str, started: datetime) -> Path:
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = root / name / stamp
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = root / name / f"{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def _free_accelerator_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.config import ModelSpec, RunConfig
from harness.errors import ConfigError, HarnessError
from harness.offline import (
    apply_offline_env,
    imported_too_early,
    install_guard,
    offline_env_in_force,
)
from harness.reports.files import write_json_atomic, write_jsonl_atomic, write_text_atomic

GUARD_SCOPE = (
    "Python-level name resolution and connections made by this process (audit events "
    "socket.getaddrinfo, socket.gethostbyname*, socket.connect, socket.sendto, socket.sendmsg, "
    "http.client.connect, urllib.Request); native code and child processes are not covered"
)

log = logging.getLogger("harness")


@dataclass
class RunResult:
    """What a run produced: its directory and the results.json document."""

    run_dir: Path
    data: dict[str, Any]
    failures: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
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


def prepare_offline(config: RunConfig) -> dict[str, Any]:
    """Set the offline variables and install the guard; return the attestation's first facts.

    Call before anything imports huggingface_hub, datasets, transformers or lm-eval.
    """
    early = imported_too_early()
    if config.network.set_offline_env:
        apply_offline_env()
    guard = install_guard(allow_loopback=config.network.allow_loopback)
    return {
        "set_offline_env": config.network.set_offline_env,
        "imported_before_env": early,
        "env": offline_env_in_force(),
        "guard": {
            "installed": True,
            "kind": "python-audit-hook",
            "allow_loopback": guard.allow_loopback,
            "self_test": guard.self_test(),
            "scope": GUARD_SCOPE,
        },
        "attempts": [],
    }


def run(
    config: RunConfig,
    *,
    config_file: Path | None = None,
    output_dir: Path | None = None,
    say: Callable[[str], None] = log.info,
) -> RunResult:
    """Score every model of `config` on every suite; write and return the results.

    Bad input (unknown suite, missing model, broken data) raises a `BadInputError` before any
    model loads. A model or suite that fails while running is recorded and the run goes on;
    `RunResult.exit_code` is then 1.
    """
    from harness.environment import hardware, package_versions
    from harness.models import hash_weight_files, resolve_model_source
    from harness.suites import SuiteCatalog

    offline = prepare_offline(config)
    guard = install_guard(allow_loopback=config.network.allow_loopback)
    first_record = len(guard.records)
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()

    say("checking suites")
    catalog = SuiteCatalog(config.task_paths)
    suite_infos = {info.name: info for info in catalog.check(config.suites)}
    manager = catalog.manager_for(config.suites)
    sources = {spec.id: resolve_model_source(spec) for spec in config.models}

    run_dir = _new_run_dir(output_dir or config.output_dir, config.name, started)
    data: dict[str, Any] = {
        "harness_version": package_versions().get("harness"),
        "status": "running",
        "run": {
            "name": config.name,
            "started": started.isoformat(timespec="seconds"),
            "finished": None,
            "wall_seconds": None,
            "config_file": str(config_file) if config_file else None,
            "command": sys.argv,
            "directory": str(run_dir),
        },
        "config": config.model_dump(mode="json"),
        "config_hash": config.config_hash(),
        "suites": {
            name: {
                "kind": info.kind,
                "source": info.source,
                "tasks": info.tasks,
                "languages": info.languages,
                "items": info.items,
                "data_files": [str(p) for p in info.data_files],
            }
            for name, info in suite_infos.items()
        },
        "models": {},
        "environment": {"packages": package_versions(), "hardware": hardware()},
        "offline": offline,
    }
    result = RunResult(run_dir=run_dir, data=data)
    log_handler = _log_to(run_dir / "run.log")

    def save() -> None:
        data["offline"]["attempts"] = [r.to_dict() for r in guard.records[first_record:]]
        write_json_atomic(run_dir / "results.json", data)

    save()
    try:
        for spec in config.models:
            _run_model(
                spec, sources[spec.id], config, manager, data, result, save, say, hash_weight_files
            )
        data["status"] = "failed" if result.failures else "complete"
    except KeyboardInterrupt:
        data["status"] = "interrupted"
        raise
    finally:
        data["run"]["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        data["run"]["wall_seconds"] = round(time.perf_counter() - clock, 3)
        data["environment"]["hardware"] = hardware()  # now that torch knows the GPUs
        data["exit_code"] = 130 if data["status"] == "interrupted" else result.exit_code
        save()
        from harness.reports.markdown import render_report

        write_text_atomic(run_dir / "report.md", render_report(data))
        logging.getLogger().removeHandler(log_handler)
        log_handler.close()
    return result


def _run_model(spec: ModelSpec, source, config, manager, data, result, save, say, hash_files):
    from harness.evaluation import make_lm
    from harness.models import load_model

    entry: dict[str, Any] = data["models"].setdefault(spec.id, {"status": "running", "suites": {}})
    entry["identity"] = {
        "kind": source.kind,
        "location": source.describe(),
        "directory": str(source.directory),
        "gguf_file": source.gguf_file,
        "repo": source.repo,
        "revision": source.revision,
        "commit": source.commit,
    }
    say(f"{spec.id}: hashing {len(source.weight_files)} weight file(s)")
    started = time.perf_counter()
    entry["identity"]["weight_files"] = [w.to_dict() for w in hash_files(source.weight_files)]
    entry["hash_seconds"] = round(time.perf_counter() - started, 3)
    save()

    say(f"{spec.id}: loading {source.describe()}")
    try:
        loaded = load_model(spec, source)
        lm = make_lm(loaded, spec)
    except HarnessError as exc:
        entry.update(status="failed", error=str(exc))
        result.failures.append(f"{spec.id}: {exc}")
        save()
        say(f"{spec.id}: FAILED to load: {exc}")
        return
    entry.update(
        dtype=loaded.dtype,
        device=loaded.device,
        parameters=loaded.parameters,
        load_seconds=round(loaded.load_seconds, 3),
    )
    save()
    try:
        for suite in config.suites:
            say(f"{spec.id}: scoring {suite}")
            entry["suites"][suite] = _run_suite(lm, suite, spec, config, manager, result)
            save()
    finally:
        entry["status"] = (
            "failed" if any(s["status"] == "failed" for s in entry["suites"].values()) else "ok"
        )
        del lm, loaded
        gc.collect()
        _free_accelerator_memory()


def _run_suite(lm, suite: str, spec: ModelSpec, config: RunConfig, manager, result) -> dict:
    from harness.evaluation import evaluate_suite, output_types, sample_records, task_metrics

    started = time.perf_counter()
    try:
        raw = evaluate_suite(
            lm, suite, manager, spec=spec, limit=config.limit, num_fewshot=config.num_fewshot
        )
    except HarnessError as exc:
        message = str(exc)
    except Exception as exc:  # a task that crashes must not take the other suites with it
        message = f"{type(exc).__name__}: {exc}"
        log.error("suite %s failed for %s\n%s", suite, spec.id, traceback.format_exc())
    else:
        tasks = task_metrics(raw)
        types = output_types(raw)
        for task, samples in (raw.get("samples") or {}).items():
            relative = Path("samples") / spec.id / f"{task}.jsonl"
            write_jsonl_atomic(
                result.run_dir / relative, sample_records(task, samples, types.get(task, ""))
            )
            tasks.setdefault(task, {})["samples_file"] = str(relative)
        return {
            "status": "ok",
            "seconds": round(time.perf_counter() - started, 3),
            "tasks": tasks,
            "lm_eval": {
                "versions": raw.get("versions"),
                "n_shot": raw.get("n-shot"),
                "higher_is_better": raw.get("higher_is_better"),
            },
        }
    result.failures.append(f"{spec.id} / {suite}: {message}")
    return {
        "status": "failed",
        "error": message,
        "seconds": round(time.perf_counter() - started, 3),
    }


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

"""`run(config)`: the whole job. Go offline, check every input, then per model: fingerprint the
weights, load once, score each suite through lm-eval, and write results as they come in.

results.json is rewritten (atomically) after every suite, so a crash or Ctrl-C keeps what was
already scored; the reports are rendered from it at the end, whatever the end was. The run in
progress is `harness.job.Job`; one model's scoring is `harness.scoring.ModelScoring`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.config import ModelSpec, RunConfig
from harness.errors import BadInputError, ConfigError, ModelNotFoundError
from harness.job import GuardEvidence, Job, RunResult
from harness.offline.policy import go_offline
from harness.output import check_output_root, is_disk_error, write_failure
from harness.record import RunRecord

__all__ = ["RunResult", "run", "select", "substitute_paths"]

log = logging.getLogger("harness")


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
    narrowed = config.model_copy(update=update)
    left_out = {
        "models": [m.id for m in config.models if m.id not in {n.id for n in narrowed.models}],
        "suites": [s for s in config.suites if s not in narrowed.suites],
    }
    narrowed._left_out = {k: v for k, v in left_out.items() if v}
    return narrowed


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
        spec = specs[model_id]
        replaced[model_id] = spec.model_copy(
            update={
                "path": Path(path).expanduser().resolve(),
                "repo": None,
                "revision": None,
                "package": None,
                "gguf_file": None,
                "stand_in_for": spec.stand_in_for or configured_source(spec),
            }
        )
    return config.model_copy(update={"models": [replaced.get(m.id, m) for m in config.models]})


def configured_source(spec: ModelSpec) -> str:
    """What a model spec names, for people: `repo org/name@revision`, a package, or a path."""
    if spec.repo:
        return f"repo {spec.repo}" + (f"@{spec.revision}" if spec.revision else "")
    if spec.package:
        return f"package {spec.package}" + (f" ({spec.gguf_file})" if spec.gguf_file else "")
    return f"path {spec.path}" + (f" ({spec.gguf_file})" if spec.gguf_file else "")


def run(
    config: RunConfig | str | Path,
    *,
    config_file: Path | None = None,
    output_dir: Path | None = None,
    say: Callable[[str], None] = log.info,
    show_progress: bool = False,
    preflight: bool = True,
    started_at: float | None = None,
    lock_file: Path | None = None,
    use_lock: bool = True,
) -> RunResult:
    """Score every model of `config` (a `RunConfig`, or the path of a config file) on every
    suite; write and return the results.

    Before anything loads, every file of every model and suite is hashed. With a lock file
    (`lock_file`, or `<config>.lock.json` beside `config_file`; `use_lock=False` ignores it)
    each must match its pin, or `PinMismatchError` (exit 2) names the file and both digests.

    `say` receives one line per step; `show_progress` draws a bar while weights are hashed
    (lm-eval and transformers draw their own).

    The process goes offline first (`go_offline`); its audit hook and seccomp filter stay for
    the life of the process. Mode `isolate` needs a process started in a network namespace,
    which `harness run --isolate` does by re-executing itself.

    Bad input (unknown suite, no model of the config on this machine, broken data, an engine
    that is not installed (vLLM), a model the memory preflight says cannot load, unless
    `preflight` is off) raises a `BadInputError`
    before any model loads. A model whose files are absent is skipped with its reason; a model
    or suite that fails while running is recorded; the run goes on with the others.
    `RunResult.exit_code` is 3 after a network attempt under a strict policy, else 1 after a
    failure, else 0.

    `started_at` (a `time.perf_counter()` value) is when the work began, for the start-up phase
    in results.json; the command line passes its process's start. Default: this call.
    """
    started_at = time.perf_counter() if started_at is None else started_at
    if not isinstance(config, RunConfig):  # a config file's path
        from harness.config import load_config

        config_file = Path(config) if config_file is None else config_file
        config = load_config(Path(config))
    config_file = Path(config_file) if config_file is not None else None
    output_dir = Path(output_dir) if output_dir is not None else None
    lock = _lock_to_use(config_file, lock_file, use_lock)
    with _offline(config.offline) as (evidence, offline):
        return _run(config, evidence, offline, config_file, output_dir, say, show_progress,
                    preflight, started_at, lock)  # fmt: skip


@contextmanager
def _offline(policy):
    """(evidence, offline facts) for the run. Sandboxed: the evidence is the supervisor's,
    and this process only sets the offline variables for the run's duration. Unsandboxed
    (`offline.sandbox: false`): this process goes offline for good (`go_offline`)."""
    if not policy.sandbox:
        guard, offline = go_offline(policy)
        offline["sandbox"] = {
            "enforced": False,
            "reason": "offline.sandbox is false: the evaluated code ran inside harness's own "
            "process, guarded only from inside it",
        }
        evidence = GuardEvidence(guard)
        try:
            yield evidence, offline
        finally:
            evidence.close()
        return
    from harness.offline.settings import OFFLINE_ENV, refuse_online_settings
    from harness.sandbox import Evidence, sandbox_facts

    if policy.set_env:
        refuse_online_settings()
    saved = dict(os.environ)  # libraries set variables on import too (HF_XET_*): undo them all
    os.environ.update(OFFLINE_ENV)
    try:
        yield Evidence(), sandbox_facts(policy)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _lock_to_use(config_file: Path | None, lock_file: Path | None, use_lock: bool):
    from harness.lock import lock_path

    if not use_lock:
        return None
    if lock_file is not None:
        lock_file = Path(lock_file)
        if not lock_file.is_file():
            raise BadInputError(
                f"lock file {lock_file} does not exist; write it with `harness lock CONFIG`"
            )
        return lock_file
    beside = lock_path(config_file) if config_file is not None else None
    return beside if beside is not None and beside.is_file() else None


def _run(config, evidence, offline, config_file, output_dir, say, show_progress, preflight,
         started_at, lock_file) -> RunResult:  # fmt: skip
    from harness.models.engines import check_engines
    from harness.suites import SuiteCatalog
    from harness.suites.sources import redirect_to_local_copies

    root = output_dir or config.output_dir
    check_output_root(root, config.name)
    # lm-eval's request cache (sqlitedict) logs a failed write of its writer thread at ERROR
    # with a page of stack, then raises the error where harness records it: keep the page off.
    logging.getLogger("sqlitedict").setLevel(logging.CRITICAL)
    baseline = _baseline(config, root, say)
    say("checking suites and models")
    catalog = SuiteCatalog(config.task_paths, config.data_dir)
    suites = catalog.check(config.suites)
    sources, absent = _resolve_all(config)
    for reason in absent.values():
        say(f"skipped: {reason}")
    present = config.model_copy(update={"models": [m for m in config.models if m.id in sources]})
    check_engines(present.models, sources, config_file)
    hardware = _check_devices(present, say)
    from harness.pins import verify_inputs

    pinned = verify_inputs(config, suites, sources, lock_file, say, show_progress)
    plans = _preflight(present, sources, hardware, say, enforce=preflight, suites=suites)

    job = Job(config, evidence, catalog.manager_for(config.suites), say, show_progress)
    job.baseline = baseline
    job.start(root, config_file, suites, offline)
    job.data["lock"] = pinned
    job.phases.add("startup", time.perf_counter() - started_at)
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
    except OSError as exc:  # a write outside Job's own (the result cache): the disk is full
        if not is_disk_error(exc):
            raise
        job.write_error = job.write_error or exc
        raise write_failure(exc, exc.filename, job.kept()) from None
    finally:
        job.finish()
    return job.result


def _baseline(config: RunConfig, root: Path, say) -> RunRecord | None:
    """The baseline run's results for `max_drop` gates, read before anything else happens."""
    if config.baseline is None:
        return None
    from harness.gates import load_baseline

    data = load_baseline(config.baseline, root, config.name, current=None)
    if data is None:
        say(f"baseline: no earlier complete run of '{config.name}' under {root}")
    else:
        say(f"baseline: {data.run.directory}")
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


def _check_devices(config: RunConfig, say):
    """This machine's hardware, once each model's device is known to exist on it (a
    `BadInputError` otherwise, before a run directory is made); warnings are said."""
    from importlib.metadata import version  # torch's, without importing torch (start-up)

    from harness.capacity.hardware import detect_hardware
    from harness.models.devices import check_devices

    hardware = detect_hardware()
    for warning in check_devices(config.models, len(hardware.gpus), version("torch")):
        log.warning(warning)
        say(f"warning: {warning}")
    return hardware


def _preflight(
    config: RunConfig, sources: dict, hardware, say, *, enforce: bool, suites=None
) -> dict:
    """Plan every model's memory from its config (and the length of its requests from the
    suites' data); refuse the run if one cannot fit."""
    from harness.capacity.preflight import check_fits, plan_models

    say("preflight: memory needed per model")
    plans = plan_models(config, hardware, sources=sources, suites=suites)
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

"""The supervisor's side of a sandboxed model: lay out what the worker may see, start it,
watch it from outside, and turn its messages into the run's results.

The supervisor hashes the inputs before the worker starts and keeps its own copy of the
model's identity: what the worker reports about itself never replaces it.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError

from harness.digests import hash_files
from harness.models.gguf_cache import cache_root, gguf_root
from harness.sandbox.bwrap import (
    Layout,
    Sandboxed,
    SandboxUnavailable,
    gpu_devices,
    python_paths,
)
from harness.sandbox.converter import convert_in_sandbox
from harness.sandbox.evidence import Evidence
from harness.sandbox.filter import NotifyListener
from harness.sandbox.loopback import LoopbackWatch
from harness.sandbox.messages import (
    Done,
    Entry,
    Failure,
    Phases,
    Progress,
    Samples,
    Say,
    Witness,
    WorkerTask,
    read_messages,
)
from harness.sandbox.netcapture import RESOLVER, Capture

WORKER_ENV_DROP = ("HARNESS_EGRESS_LOG", "HARNESS_ISOLATED", "PYTHONSTARTUP")


def start_observed(
    command: list[str], layout: Layout, scratch: Path, evidence: Evidence, model: str,
    keep_fds: tuple[int, ...] = (),
) -> tuple[Sandboxed, NotifyListener, Capture | None]:  # fmt: skip
    """Start `command` in the sandbox with the filter's listener and the capture device
    serving `evidence`, and let it run."""
    resolv = scratch / ".resolv.conf"
    resolv.write_text(f"nameserver {RESOLVER}\noptions timeout:1 attempts:1\n", encoding="utf-8")
    layout.files.setdefault("/etc/resolv.conf", resolv)
    sandboxed = Sandboxed(command, layout, worker_env(scratch), scratch, keep_fds)
    listener = NotifyListener(
        sandboxed.filter_fd, lambda call, what: evidence.refused(model, call.pid, what)
    ).start()
    capture = None
    if sandboxed.capture_fd is not None:
        capture = Capture(
            sandboxed.capture_fd, sandboxed.pid, lambda flow: evidence.flow(model, flow)
        ).start()
    evidence.capture_layer(sandboxed.capture_problem)
    sandboxed.release()
    return sandboxed, listener, capture


def worker_env(scratch: Path) -> dict[str, str]:
    """The worker's environment: the supervisor's, offline, with every cache in scratch."""
    import harness
    from harness.offline.settings import OFFLINE_ENV

    env = {k: v for k, v in os.environ.items() if k not in WORKER_ENV_DROP}
    env.update(OFFLINE_ENV)
    # The worker imports the very harness the supervisor runs (its package directory is bound).
    # Installed from a wheel, harness is in the environment's site-packages, which the worker's
    # Python reads anyway; from a checkout, the checkout goes first on the worker's path.
    home = str(Path(harness.__file__).resolve().parents[1])
    if home not in {str(Path(p).resolve()) for p in site.getsitepackages()}:
        env["PYTHONPATH"] = os.pathsep.join([home, *filter(None, [env.get("PYTHONPATH")])])
    env.update(
        HOME=str(scratch),
        TMPDIR=str(scratch / "tmp"),
        XDG_CACHE_HOME=str(scratch / "cache"),
        HF_MODULES_CACHE=str(scratch / "cache" / "hf-modules"),
        HF_HUB_CACHE=str(hub_cache()),
        HARNESS_CACHE=str(cache_root()),  # XDG_CACHE_HOME moved; the GGUF entries did not
        HF_DATASETS_CACHE=str(scratch / "datasets"),
        TRITON_CACHE_DIR=str(scratch / "cache" / "triton"),
        TORCHINDUCTOR_CACHE_DIR=str(scratch / "cache" / "inductor"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    (scratch / "tmp").mkdir(exist_ok=True)
    from harness.sandbox.loopback import RELAY_SOCKET

    if (scratch / RELAY_SOCKET).exists():  # an `endpoint`'s relay (`_endpoint_relay`)
        env["HARNESS_ENDPOINT_SOCKET"] = str(scratch / RELAY_SOCKET)
    return env


def model_paths(source) -> list[Path]:
    """The files of one model the worker may read."""
    paths = [source.directory]
    if source.kind == "hf-cache":
        paths.append(source.directory.parents[1])  # the repo: blobs/ and snapshots/
    return paths


def hub_cache() -> Path:
    """The Hugging Face hub cache this process uses (the worker is told the same path)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def datasets_cache() -> Path:
    """The `datasets` cache this process uses."""
    from datasets import config

    return Path(config.HF_DATASETS_CACHE)


def data_view(job, scratch: Path) -> tuple[list[Path], dict[str, Path]]:
    """What the worker may read of the tasks and data: (paths bound where they are, mapped
    destination -> source). Task directories and `data_dir` are bound; of the hub cache only
    the repos the suites read; a dataset found in the `datasets` cache appears, read-only,
    inside the worker's own (writable) `datasets` cache in scratch, where `datasets` looks for
    it and puts its lock files."""
    from harness.suites import SuiteCatalog

    paths = [Path(d) for d in SuiteCatalog(job.config.task_paths, None).directories]
    if job.config.data_dir is not None:
        paths.append(job.config.data_dir)
    mapped: dict[str, Path] = {}
    hub, cached = hub_cache().resolve(), datasets_cache().resolve()
    for suite in job.data["suites"].values():
        for item in suite.get("data_files", []):
            path = Path(item["path"])
            real = path.resolve()
            if real.is_relative_to(cached):
                top = cached / real.relative_to(cached).parts[0]
                mapped[str(scratch / "datasets" / top.name)] = top
            elif path.absolute().is_relative_to(hub) or real.is_relative_to(hub):
                inside = path if path.absolute().is_relative_to(hub) else real
                paths.append(hub / inside.absolute().relative_to(hub).parts[0])
            else:
                paths.append(path)
    return paths, mapped


def score_in_sandbox(job, scoring, spec, source, entry: dict) -> None:
    """Score one model in a sandboxed worker; its results land in `job` as they come."""
    scratch = Path(tempfile.mkdtemp(prefix=f"harness-worker-{spec.id}-"))
    # The supervisor's facts about the model, never the worker's word.
    owned = {key: entry[key] for key in SUPERVISOR_FIELDS if key in entry}
    data, mapped = data_view(job, scratch)
    # A GGUF model's converted copy: made by its own sandboxed converter, read-only here.
    converted = scoring.prepare_gguf(
        spec, source, entry,
        lambda destination, dtype: convert_in_sandbox(job, spec, source, destination, dtype),
    )  # fmt: skip
    gguf_view = [converted.entry] if converted is not None else []
    inputs = [*python_paths(), *model_paths(source), *data, *gguf_view]
    layout = Layout(
        read_only=[Path("/usr"), Path("/etc"), *inputs],
        writable=[scratch, *scoring.worker_cache_dirs(spec, source, entry)],
        devices=gpu_devices(),
        files=mapped,
    )
    task = WorkerTask(
        # Decisions are the supervisor's: without them the config also stays valid when
        # `--model` left out the primary model its gates name.
        config=job.config.model_copy(
            update={"gates": [], "primary": None, "baseline": None}
        ).model_dump(mode="json"),
        model_id=spec.id,
        source={
            **{k: v for k, v in vars(source).items() if k not in ("directory", "weight_files")},
            "directory": str(source.directory),
            "weight_files": [str(p) for p in source.weight_files],
        },
        entry=entry,
        suites=job.data["suites"],
        preflight=job.data.get("preflight", {}).get("models", {}).get(spec.id),
        root=str(Path(job.root).absolute()),  # the worker's working directory is scratch
    )
    task_file = scratch / ".task.json"
    task_file.write_text(task.model_dump_json(), encoding="utf-8")
    read_end, write_end = os.pipe()
    sandboxed = listener = capture = watch = relay = None
    done = False
    reasons: list[str] = []  # what the worker said went wrong with the model itself
    try:
        try:
            if spec.backend == "server" and spec.endpoint:
                relay = _endpoint_relay(spec, scratch)
            sandboxed, listener, capture = start_observed(
                [sys.executable, "-m", "harness.worker", str(task_file), str(write_end)],
                layout, scratch, job.evidence, spec.id, keep_fds=(write_end,),
            )  # fmt: skip
        except SandboxUnavailable as exc:
            # This model's sandbox did not start (the self-test's did): its failure, not the
            # run's; the other models still run.
            entry.update(status="failed", error=f"its sandbox did not start: {exc}")
            job.fail(spec.id, entry["error"])
            job.save()
            return
        watch = LoopbackWatch(sandboxed.pid, spec.id).start()
        os.close(write_end)
        write_end = None
        try:
            for message in read_messages(read_end):
                done = _apply(job, spec, owned, message) or done
                if isinstance(message, Failure) and message.where == spec.id:
                    reasons.append(message.message)
        except ValueError as exc:
            job.fail(spec.id, f"the worker sent a malformed message ({exc}); stopped")
            sandboxed.popen.kill()
        code = sandboxed.popen.wait()
    except KeyboardInterrupt:
        if sandboxed is not None:
            sandboxed.popen.kill()
        entry = job.data["models"].get(spec.id, entry)
        entry["status"] = "interrupted"
        raise
    finally:
        if write_end is not None:
            os.close(write_end)
        time.sleep(0.1)  # the last packets and calls of a dying worker
        for watcher in (listener, capture):
            if watcher is not None:
                watcher.stop()
        job.evidence.child_witnesses(spec.id, scratch)
        if watch is not None:
            job.data["offline"].setdefault("loopback", []).extend(watch.stop())
        if relay is not None:
            job.data["offline"].setdefault("relayed", []).append(relay.close())
        shutil.rmtree(scratch, ignore_errors=True)
    entry = job.data["models"][spec.id]
    if not done:
        how = _death(code)
        message = f"the worker stopped before finishing ({how}); see run.log"
        if entry.get("status") in (None, "running"):
            entry.update(status="failed", error="; ".join([*reasons, message]))
        job.fail(spec.id, message)
    job.save()


def _endpoint_relay(spec, scratch: Path):
    """The relay to a model's `endpoint`, its socket in the worker's scratch
    (`harness.sandbox.loopback.EndpointRelay`); the worker is told where by `worker_env`."""
    from harness.sandbox.loopback import RELAY_SOCKET, EndpointRelay, endpoint_address

    host, port, _ = endpoint_address(spec.endpoint)
    return EndpointRelay(scratch / RELAY_SOCKET, host, port, spec.id)


def _death(code: int) -> str:
    """How the worker ended, from bubblewrap's exit code (128 + N for a signal N)."""
    signal_number = -code if code < 0 else code - 128 if code > 128 else None
    if signal_number is None:
        return f"exit code {code}"
    try:
        import signal

        return f"killed by signal {signal_number} ({signal.Signals(signal_number).name})"
    except ValueError:
        return f"killed by signal {signal_number}"


SUPERVISOR_FIELDS = ("identity", "stand_in", "hash_seconds")
"""Fields of a model's entry only the supervisor writes: a worker's values are replaced."""


def _apply(job, spec, owned: dict, message) -> bool:
    """Take one worker message into the run; True for the last one."""
    if isinstance(message, Say):
        from harness.sandbox.bwrap import clean_line

        job.say(clean_line(message.text.encode()))
    elif isinstance(message, Progress):
        from harness import progress
        from harness.sandbox.bwrap import clean_line

        label = clean_line(message.label.encode())
        progress.report(message.stage, label, message.done, message.total)
    elif isinstance(message, Witness):
        job.evidence.witness(spec.id, message.record)
    elif isinstance(message, Entry):
        from harness.record import ModelRecord

        try:
            entry = ModelRecord.model_validate(message.entry).model_dump(exclude_unset=True)
        except ValidationError as exc:
            raise ValueError(f"a results entry that does not match the schema: {exc}") from None
        for key in SUPERVISOR_FIELDS:
            entry.pop(key, None)
        entry.update(owned)
        if entry.get("converted_from"):
            entry["converted_from"] = _rehash(entry["converted_from"], job.root)
        job.data["models"][spec.id] = entry
        job.save()
    elif isinstance(message, Samples):
        if Path(message.path).parts[1] != spec.id:
            raise ValueError(f"samples for another model: {message.path}")
        job.write_samples(Path(message.path), message.rows)
    elif isinstance(message, Failure):
        job.fail(message.where, message.message)
    elif isinstance(message, Phases):
        job.phases.merge(message.phases)
    elif isinstance(message, Done):
        return True
    return False


def _rehash(converted: dict, root: Path) -> dict:
    """The converted GGUF copy the worker says it read, as the supervisor hashes it (free when
    `prepare_gguf` just verified it). Only a file under the machine-wide GGUF cache is read:
    the path is the worker's word."""
    path = Path(str(converted.get("path", "")))
    holder = gguf_root().resolve()
    if path.is_symlink() or not path.resolve().is_relative_to(holder) or not path.is_file():
        return {**converted, "sha256": None, "note": "not a converted copy under the cache"}
    [digest] = hash_files([path])
    return {**converted, **digest.to_dict()}


def bwrap_version() -> str | None:
    try:
        done = subprocess.run(["bwrap", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None

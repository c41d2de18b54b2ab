"""The worker: the only process that imports a model's code, its tokenizer and the tasks'
code, and loads weights. It runs inside the sandbox (`harness.sandbox`), scores one model as
its `WorkerTask` says, and reports in typed messages over a pipe; it writes nothing of the
run's outputs itself.

    python -m harness.worker TASK_FILE MESSAGE_FD
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from harness.sandbox.messages import (
    Channel,
    Done,
    Entry,
    Failure,
    Phases,
    Progress,
    Samples,
    Say,
    Witness,
    WorkerTask,
)


class WorkerJob:
    """What `harness.scoring.ModelScoring` needs of a run, with every write turned into a
    message to the supervisor."""

    def __init__(self, task: WorkerTask, channel: Channel) -> None:
        from harness.config import RunConfig
        from harness.phases import PhaseClock
        from harness.suites import SuiteCatalog

        self.channel = channel
        self.config = RunConfig.model_validate(task.config)
        self.model_id = task.model_id
        self.catalog = SuiteCatalog(self.config.task_paths, self.config.data_dir)
        self.task_manager = self.catalog.manager_for(self.config.suites)
        self.show_progress = True  # progress events go to the supervisor (`main`)
        self.data = {
            "models": {task.model_id: task.entry},
            "suites": task.suites,
            "preflight": {"models": {task.model_id: task.preflight}} if task.preflight else {},
        }
        self.root = Path(task.root)
        self.phases = PhaseClock()

    def say(self, text: str) -> None:
        self.channel.send(Say(text=text))

    def save(self) -> None:
        self.channel.send(Entry(entry=self.data["models"][self.model_id]))

    def write_samples(self, relative: Path, rows: list[dict]) -> None:
        self.channel.send(Samples(path=relative.as_posix(), rows=rows))

    def fail(self, where: str, message: str) -> None:
        self.channel.send(Failure(where=where, message=message))


def main(argv: list[str]) -> int:
    task_file, fd = argv
    channel = Channel(int(fd))
    task = WorkerTask.model_validate_json(Path(task_file).read_text(encoding="utf-8"))
    _log_to_stderr()
    _progress_to(channel)
    _witness(channel, allow_loopback=task.config.get("offline", {}).get("allow_loopback", True))

    from harness.models.resolve import ModelSource
    from harness.scoring import ModelScoring
    from harness.suites.sources import redirect_to_local_copies

    job = None
    try:
        job = WorkerJob(task, channel)
        spec = next(m for m in job.config.models if m.id == task.model_id)
        fields = dict(task.source)
        fields["directory"] = Path(fields["directory"])
        fields["weight_files"] = [Path(p) for p in fields["weight_files"]]
        with redirect_to_local_copies(job.config.data_dir):
            ModelScoring(job).score(spec, ModelSource(**fields), task.entry)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # recorded as this model's failure by the supervisor
        channel.send(Failure(where=task.model_id, message=f"{type(exc).__name__}: {exc}"))
        traceback.print_exc()
        return 1
    finally:
        if job is not None:
            channel.send(Phases(phases=job.phases.to_dict()))
    channel.send(Done())
    return 0


def _log_to_stderr() -> None:
    """Library logs at INFO on stderr, which the supervisor writes into run.log."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("lm-eval", "lm_eval", "datasets", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.INFO)


def _progress_to(channel: Channel) -> None:
    """Progress to the supervisor's display, as messages; the libraries' own bars off (their
    output would only reach run.log, one line per redraw)."""
    from harness import progress

    progress.quiet_third_party_bars()
    progress.set_sink(
        lambda stage, label, done, total: channel.send(
            Progress(stage=stage, label=label[:200], done=done, total=total)
        )
    )


def _witness(channel: Channel, *, allow_loopback: bool) -> None:
    """The offline variables, and the audit hook as a witness: it records what Python code
    tries (with the frames) and lets the call reach the sandbox, which stops it."""
    import os
    import tempfile

    from harness.offline.guard import guard_children, install_guard
    from harness.offline.settings import apply_offline_env

    apply_offline_env()
    sink = Path(tempfile.mkstemp(prefix="egress-", suffix=".jsonl", dir=os.getcwd())[1])
    guard = install_guard(allow_loopback=allow_loopback, sink=sink)
    guard.block = False
    guard.on_record = lambda record: channel.send(Witness(record=record.to_dict()))
    guard_children(guard)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

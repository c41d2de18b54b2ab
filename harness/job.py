"""A run in progress: its results document, written after every step, and closed (gates,
reports, index) whatever the end was. `RunResult` is what `harness.run` returns."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.config import ModelSpec, RunConfig
from harness.digests import hash_files
from harness.errors import OutputError
from harness.output import is_disk_error, write_failure
from harness.phases import PhaseClock
from harness.record import SCHEMA_VERSION, RunRecord, check_record
from harness.reports.files import write_json_atomic, write_jsonl_atomic, write_text_atomic


@dataclass(repr=False)
class RunResult:
    """What a run produced: its directory and the results.json document."""

    run_dir: Path
    data: dict[str, Any]
    failures: list[str] = field(default_factory=list)

    @property
    def record(self) -> RunRecord:
        """results.json as its typed record."""
        return RunRecord.model_validate(self.data)

    def __repr__(self) -> str:
        return (
            f"RunResult(run_dir={str(self.run_dir)!r}, status={self.data.get('status')!r}, "
            f"exit_code={self.exit_code}, failures={len(self.failures)})"
        )

    @property
    def attempts(self) -> list[dict]:
        return self.data["offline"]["attempts"]

    @property
    def gates_failed(self) -> bool:
        """A gate failed (or could not tell). Gates not judged (a partial run) fail nothing:
        the reports say NOT JUDGED instead."""
        gates = self.data.get("gates") or {}
        return gates.get("judged", True) and not gates.get("passed", True)

    @property
    def exit_code(self) -> int:
        """3 for a network attempt under a strict policy, else 4 for a failed gate, else 1 for
        a failure, else 0."""
        if self.attempts and self.data["offline"]["policy"]["mode"] != "audit":
            return 3
        if self.gates_failed:
            return 4
        return 1 if self.failures else 0


class GuardEvidence:
    """The evidence of an unsandboxed run: what this process's own guard recorded."""

    def __init__(self, guard) -> None:
        self.guard = guard
        self.first = len(guard.records)

    def attempts(self) -> list[dict]:
        records = [r.to_dict() for r in self.guard.records[self.first :]]
        return records + self.guard.child_records()

    def close(self) -> None:
        if self.guard.sink is not None:
            self.guard.sink.unlink(missing_ok=True)  # its records are in results.json now


class Job:
    """One run in progress: its results document, and the writing of it after every step."""

    def __init__(
        self, config: RunConfig, evidence, task_manager, say: Callable[[str], None], show_progress
    ) -> None:
        self.config = config
        self.task_manager = task_manager
        self.say = say
        self.show_progress = show_progress
        self.evidence = evidence
        self.clock = time.perf_counter()
        self.phases = PhaseClock()
        self.data: dict[str, Any] = {}
        self.result: RunResult
        self.baseline: RunRecord | None = None
        self.root: Path
        self.write_error: OSError | None = None
        """The disk refused a write (`harness.output`): nothing more is written."""
        self.saved_at: str | None = None
        self.saved_status: str | None = None

    def start(self, root: Path, config_file: Path | None, suites, offline: dict) -> None:
        from harness.environment import hardware, package_versions

        started = datetime.now(timezone.utc)
        self.root = root
        try:
            self.run_dir = _new_run_dir(root, self.config.name, started)
        except OSError as exc:
            raise OutputError(
                f"cannot make a run directory under {root / self.config.name}: "
                f"{exc.strerror or exc}. Nothing was run. Give another --output."
            ) from None
        self.data.update(
            {
                "schema_version": SCHEMA_VERSION,
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
                        "definition_files": definition_files(info, self.config),
                    }
                    for info in suites
                },
                "models": {},
                "environment": {"packages": package_versions(), "hardware": hardware()},
                "offline": offline,
            }
        )
        self.result = RunResult(run_dir=self.run_dir, data=self.data)
        try:
            self.log_handler = _log_to(self.run_dir / "run.log")
            self.save()
        except (OSError, OutputError) as exc:
            # Nothing ran yet: a run directory holding half a start is noise, not a result.
            shutil.rmtree(self.run_dir, ignore_errors=True)
            cause = self.write_error or exc
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else cause
            raise OutputError(
                f"cannot write the results of a new run in {self.run_dir}: {reason}. Nothing "
                "was run, and that run directory was removed. Free some space, or give another "
                "--output."
            ) from None

    def save(self) -> RunRecord:
        """Rewrite results.json with everything known now, attempts included; its record."""
        self.data["offline"]["attempts"] = self.evidence.attempts()
        self.data["offline"]["files"] = attested_files(self.data)
        self.data["run"]["phases"] = self.phases.to_dict()
        record = check_record(self.data)
        self._write(self.run_dir / "results.json", write_json_atomic, self.data)
        self.saved_at = datetime.now(timezone.utc).strftime("%H:%M:%S UTC")
        self.saved_status = self.data.get("status")
        return record

    def _write(self, path: Path, writer, content) -> None:
        """Write one result file; a disk that refuses it stops the run (`OutputError`) with
        what the last results.json holds. The write is atomic, so that one stays whole."""
        if self.write_error is not None:
            raise write_failure(self.write_error, path, self.kept())
        try:
            writer(path, content)
        except OSError as exc:
            if not is_disk_error(exc):
                raise
            self.write_error = exc
            raise write_failure(exc, exc.filename or path, self.kept()) from None

    def kept(self) -> str:
        """What results.json in the run directory holds now, for a message."""
        if self.saved_at is None:
            return f"Nothing was saved in {self.run_dir}."
        scored = [
            f"{model_id}: {', '.join(done)}"
            for model_id, model in self.data.get("models", {}).items()
            if (done := [s for s, r in model.get("suites", {}).items() if r.get("status") == "ok"])
        ]
        holds = "; ".join(scored) if scored else "no suite scored yet"
        return (
            f"{self.run_dir}/results.json is kept as last written at {self.saved_at} "
            f"(status '{self.saved_status}'; scored: {holds})."
        )

    def finish(self) -> None:
        """Close the record, whatever the end was, and render report.md from it."""
        from harness.environment import hardware
        from harness.reports.html import render_html
        from harness.reports.junit import render_junit
        from harness.reports.markdown import render_report

        if self.write_error is not None:  # the disk is full: the last results.json stands
            self._close_log()
            return
        run = self.data["run"]
        run["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        run["wall_seconds"] = round(time.perf_counter() - self.clock, 3)
        self.data["environment"]["hardware"] = hardware()  # now that torch knows the GPUs
        from harness.scope import run_scope

        self.data["scope"] = run_scope(self.config, self.data)
        self.add_chance_levels()
        self.judge()
        interrupted = self.data["status"] == "interrupted"
        self.data["exit_code"] = 130 if interrupted else self.result.exit_code
        record = self.save()
        from harness.history import record_run

        try:
            with self.phases.phase("report"):
                self._write(self.run_dir / "report.md", write_text_atomic, render_report(record))
                self._write(self.run_dir / "report.html", write_text_atomic, render_html(record))
                self._write(self.run_dir / "junit.xml", write_text_atomic, render_junit(record))
                self._write(self.root, record_run, record)  # the results index
            self.save()  # with the report phase's time
        finally:
            self._close_log()

    def _close_log(self) -> None:
        logging.getLogger().removeHandler(self.log_handler)
        try:
            self.log_handler.close()
        except OSError:  # its last lines did not fit on a full disk; the error says so
            pass

    def add_chance_levels(self) -> None:
        """The chance level of every multiple-choice task, from its per-sample log (the
        number of choices of each item)."""
        from harness.statistics import chance_level, choice_counts

        for model in self.data["models"].values():
            for suite in model.get("suites", {}).values():
                for task in suite.get("tasks", {}).values():
                    path = self.run_dir / task["samples_file"] if task.get("samples_file") else None
                    if path is None or not path.is_file():
                        continue
                    try:
                        rows = [json.loads(line) for line in path.read_text().splitlines() if line]
                        counts = choice_counts(rows)
                    except ValueError:
                        continue  # mixed or unreadable rows: no chance level claimed
                    if counts:
                        task["chance"] = round(chance_level(counts), 6)

    def judge(self) -> None:
        """Judge the config's gates on what was scored (an interrupted run included)."""
        from harness.gates import judge_gates, summary

        if not self.config.gates:
            return
        record = check_record(self.data)
        checks = judge_gates(self.config, record, self.baseline)
        self.data["gates"] = {
            "baseline": self.baseline.run.directory if self.baseline else None,
            **summary(checks, self.config, record),
            "checks": [c.to_dict() for c in checks],
        }

    def write_samples(self, relative: Path, rows: list[dict]) -> None:
        """Write one task's per-sample log under the run directory."""
        self._write(self.run_dir / relative, write_jsonl_atomic, rows)

    def fail(self, where: str, message: str) -> None:
        self.result.failures.append(f"{where}: {message}")

    def skip_model(self, spec: ModelSpec, reason: str) -> None:
        """Record a model whose files are not on this machine; it counts as not run."""
        self.data["models"][spec.id] = {"status": "skipped", "error": reason, "suites": {}}
        self.fail(spec.id, f"skipped: {reason}")
        self.save()
        self._model_progress(spec, finished=True)

    def run_model(self, spec: ModelSpec, source) -> None:
        """Fingerprint, load and score one model on every suite (`harness.scoring`): in a
        sandboxed worker, or in this process when the config turned the sandbox off."""
        from harness.scoring import ModelScoring

        scoring = ModelScoring(self)
        self._model_progress(spec, finished=False)
        if not self.config.offline.sandbox:
            scoring.run_model(spec, source)
        else:
            from harness.sandbox.supervise import score_in_sandbox

            score_in_sandbox(self, scoring, spec, source, scoring.fingerprint(spec, source))
        self._model_progress(spec, finished=True)

    def _model_progress(self, spec: ModelSpec, *, finished: bool) -> None:
        from harness import progress

        ids = [m.id for m in self.config.models]
        progress.report("models", spec.id, ids.index(spec.id) + finished, len(ids))


def definition_files(info, config: RunConfig) -> list[dict]:
    """The files defining a suite's tasks, hashed, with portable names (`harness.lock`)."""
    from harness.lock import portable_name, suite_roots
    from harness.suites.catalog import PROJECT_TASKS

    roots = suite_roots([PROJECT_TASKS, *config.task_paths], config.data_dir)
    files = info.definition_files
    digests = hash_files([path for path, _ in files])
    return [
        {**d.to_dict(), "name": portable_name(path, roots), "role": role}
        for (path, role), d in zip(files, digests, strict=True)
    ]


def attested_files(data: dict) -> dict[str, list[dict]]:
    """Every file the run read that shapes its scores, with size and sha256, from its results:
    each model's weights and other files (config, tokenizer, chat template, code), each suite's
    task definitions, task code and data."""
    weights = [
        {"model": model_id, "role": "weights", **weight}
        for model_id, model in data["models"].items()
        for weight in model.get("identity", {}).get("weight_files", [])
    ]
    weights += [
        {"model": model_id, **other}
        for model_id, model in data["models"].items()
        for other in model.get("identity", {}).get("other_files", [])
    ]
    # A GGUF model read from its converted copy: the copy's weights, checked on load.
    weights += [
        {"model": f"{model_id} (converted copy)", **model["converted_from"]}
        for model_id, model in data["models"].items()
        if model.get("converted_from")
    ]
    files = [
        {"suite": name, **item}
        for name, suite in data["suites"].items()
        for item in suite.get("definition_files", [])
    ]
    files += [
        {"suite": name, "role": "data", **item}
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


class _RunLogHandler(logging.FileHandler):
    """run.log. A disk that fills up must not print logging's own traceback on the console
    for every line: the handler stops writing instead (the failure is reported once, by
    the next result file that cannot be written)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        logging.getLogger().removeHandler(self)


def _log_to(path: Path) -> logging.Handler:
    handler = _RunLogHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler

"""The run's network evidence, kept by the supervisor.

Two kinds of records, from two places:
- seen from outside the worker, by the supervisor: every flow that arrived at the capture
  device (`netcapture`) and every system call the filter refused (`filter`). Code in the worker
  cannot reach these records; they are the evidence the verdict rests on;
- seen from inside, by the worker's in-process audit hook: the Python frame that made an
  attempt. A witness only: it is attached to the outside record it explains, and counted on
  its own only when no outside record matches (which never makes the count smaller).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

from harness.sandbox.netcapture import process_facts


class Evidence:
    """Every attempt of a run, as the supervisor recorded it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outside: list[dict] = []
        self._witnesses: list[dict] = []
        self.capture: dict = {"enabled": True}

    def flow(self, model: str, flow: dict) -> None:
        """A flow that arrived at the capture device."""
        protocol = flow["protocol"]
        if flow.get("dns_name"):
            event = "dns query"
        elif protocol == "tcp":
            event = "tcp connect"
        else:
            event = f"{protocol} send"
        record = {
            "seen_by": "supervisor (capture device)",
            "model": model,
            "event": event,
            "host": flow.get("dns_name") or flow["destination"],
            "port": flow.get("port"),
            **flow,
            "blocked": True,
        }
        with self._lock:
            self._outside.append(record)

    def refused(self, model: str, pid: int, what: str) -> None:
        """A system call the filter refused (another socket family, an escape)."""
        record = {
            "seen_by": "supervisor (seccomp filter)",
            "model": model,
            "event": "system call refused",
            "host": what,
            "port": None,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            **process_facts(pid),
            "blocked": True,
        }
        with self._lock:
            self._outside.append(record)

    def witness(self, model: str, record: dict) -> None:
        """What the worker's audit hook saw (its Python frames)."""
        with self._lock:
            self._witnesses.append({**record, "model": model})

    def child_witnesses(self, model: str, scratch: Path) -> None:
        """What the hooks of the worker's Python children wrote into its scratch directory."""
        for sink in scratch.glob("egress-*.jsonl"):
            if sink.is_symlink() or not sink.is_file():
                continue  # the worker wrote scratch: follow nothing it may have planted
            for line in sink.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    self.witness(model, record)

    def capture_layer(self, problem: str | None) -> None:
        if problem:
            self.capture = {"enabled": False, "reason": problem}

    def attempts(self) -> list[dict]:
        """Outside records with the Python frame of their witness, then witnesses that no
        outside record explains."""
        with self._lock:
            outside = [dict(r) for r in self._outside]
            witnesses = list(self._witnesses)
        unmatched = []
        for seen in witnesses:
            match = next((r for r in outside if _explains(r, seen)), None)
            if match is None:
                unmatched.append(
                    {**seen, "seen_by": "in-process hook only (not seen from outside)"}
                )
            elif not match.get("origin"):
                match.update(
                    origin=seen.get("origin"), package=seen.get("package"),
                    stack=seen.get("stack"), python_event=seen.get("event"),
                )  # fmt: skip
        return outside + unmatched


def _explains(outside: dict, seen: dict) -> bool:
    if outside.get("model") != seen.get("model"):
        return False
    host = str(seen.get("host", ""))
    if outside.get("dns_name"):
        return host.rstrip(".").lower() == str(outside["dns_name"]).rstrip(".").lower()
    if outside.get("destination") is None:
        return False
    same_port = seen.get("port") in (None, outside.get("port"))
    return host == outside["destination"] and same_port

"""Where a run's time and memory go: wall time and peak memory per phase.

The phases are start-up (from the process's start: interpreter, imports, config, offline guard,
preflight), model load (hashing the weights and loading them), data load (lm-eval building the
suites' tasks and reading their data), scoring, and report. Each phase's peak memory is its own:
on Linux the kernel's high-water mark of resident memory (VmHWM) is reset when a phase begins
(writing 5 to /proc/self/clear_refs); elsewhere it is the process's peak so far. On a GPU, torch's
peak allocation is reset the same way.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

PHASES = ("startup", "model_load", "data_load", "scoring", "report")


def process_age() -> float | None:
    """Seconds since this process started, from the kernel's record (Linux), else None."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))


def peak_rss_bytes() -> int:
    """Peak resident memory since the last reset (Linux) or since the process started."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _gpu():
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda
    return None


def reset_peaks() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        pass
    if cuda := _gpu():
        cuda.reset_peak_memory_stats()


def peaks() -> dict[str, int]:
    found = {"peak_rss_bytes": peak_rss_bytes()}
    if cuda := _gpu():
        found["peak_gpu_bytes"] = int(cuda.max_memory_allocated())
    return found


class PhaseClock:
    """Accumulates seconds and the highest peak of each phase over a run."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float | int]] = {}

    def add(self, name: str, seconds: float) -> dict[str, int]:
        """Count `seconds` and the peaks seen since the last reset towards phase `name`;
        return those peaks."""
        entry = self.phases.setdefault(name, {"seconds": 0.0})
        entry["seconds"] = round(float(entry["seconds"]) + seconds, 3)
        measured = peaks()
        for key, value in measured.items():
            entry[key] = max(int(entry.get(key, 0)), value)
        reset_peaks()
        return measured

    @contextmanager
    def phase(self, name: str, seen: dict[str, int] | None = None) -> Iterator[None]:
        """Time a phase; `seen` (if given) keeps the highest peaks measured in it."""
        reset_peaks()
        started = time.perf_counter()
        try:
            yield
        finally:
            for key, value in self.add(name, time.perf_counter() - started).items():
                if seen is not None:
                    seen[key] = max(seen.get(key, 0), value)

    def merge(self, other: dict[str, dict[str, float]]) -> None:
        """Add another process's phases (a worker's) to these: seconds add up, peaks are the
        highest."""
        for name, measured in other.items():
            entry = self.phases.setdefault(name, {"seconds": 0.0})
            for key, value in measured.items():
                if key == "seconds":
                    entry["seconds"] = round(float(entry["seconds"]) + float(value), 3)
                else:
                    entry[key] = max(int(entry.get(key, 0)), int(value))

    def to_dict(self) -> dict:
        return {name: dict(self.phases[name]) for name in PHASES if name in self.phases}

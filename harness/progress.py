"""How far a run has got, as events, for whoever shows them (`harness.reports.progress`).

One sink per process. The command line sets a display as the sink; a sandboxed worker sets one
that sends each event to the supervisor (`harness.sandbox.messages.Progress`), which reports it
again in its own process, so the models, suites and requests of every worker end up in the one
display the supervisor draws. Without a sink (the Python API), events cost nothing.

Stages, each a count of `done` out of `total` under a `label`:
    models    models finished, of those in the run (label: the model started or finished)
    suites    suites finished, of this model's (label: the suite)
    requests  loglikelihood or generation requests of the current suite answered
    bytes     bytes hashed (label: what is being hashed)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

Stage = Literal["models", "suites", "requests", "bytes"]
Sink = Callable[[str, str, int, int], None]

_sink: Sink | None = None


def set_sink(sink: Sink | None) -> Sink | None:
    """Send this process's events to `sink` (None: nowhere); returns the previous sink."""
    global _sink
    previous, _sink = _sink, sink
    return previous


def report(stage: Stage, label: str, done: int, total: int) -> None:
    """One event: `done` of `total` at `stage`."""
    if _sink is not None:
        _sink(stage, label, done, total)


class Counter:
    """A count that reports itself at most every `interval` seconds, and always at its start
    and its end (requests come by the thousand; the pipe and the terminal need a few a second).

    Used as the scorers used tqdm: `update(n)` as work is done, `close()` at the end."""

    def __init__(self, stage: Stage, label: str, total: int, interval: float = 0.25) -> None:
        self.stage, self.label, self.total, self.interval = stage, label, total, interval
        self.done = 0
        self._reported = time.monotonic()
        report(stage, label, 0, total)

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._reported >= self.interval:
            self._reported = now
            report(self.stage, self.label, self.done, self.total)

    def close(self) -> None:
        report(self.stage, self.label, self.done, self.total)

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *_) -> None:
        self.close()


def requests(kind: str, total: int) -> Counter:
    """The requests of one kind (`loglikelihood`, `generation`) a scorer is about to answer."""
    return Counter("requests", kind, total)


def quiet_third_party_bars() -> None:
    """Turn off the progress bars of the libraries harness drives, each by its own switch;
    harness's display shows the same progress once. Their logs still go to run.log.

    lm-eval draws plain tqdm bars (building requests, scoring) with no option of its own to
    disable them, so tqdm's own switch `TQDM_DISABLE` is set; tqdm reads it when imported,
    so this runs before lm-eval, datasets or transformers are imported."""
    import os
    import sys

    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    # Imported already (the supervisor reads the datasets cache's location): switch them off.
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

"""The one progress display of `harness run`: the events of `harness.progress` (this process's
and, relayed by the supervisor, its workers') drawn for a terminal, or written as plain lines
for a log.

In a terminal: one live block (models, suites, requests, and bytes while hashing), each with a
bar, counts, rate and time left; the run's steps print above it. Not in a terminal (a CI log, a
file): no bars and no control characters, one line per step, per model and per suite finished,
and a line for the requests every 10% (at most every 5 s) or every 30 s. Quiet: nothing.
"""

from __future__ import annotations

import time
from typing import Literal

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

Mode = Literal["live", "plain", "quiet"]
_ROWS = ("models", "suites", "requests", "bytes")


def display_mode(console: Console, quiet: bool) -> Mode:
    """Live in a terminal, plain lines elsewhere, nothing when asked to be quiet."""
    if quiet:
        return "quiet"
    return "live" if console.is_terminal and not console.is_dumb_terminal else "plain"


class RunDisplay:
    """Steps (`step`) and progress events (`event`, a `harness.progress` sink) of one run.
    Use as a context manager: the live block is drawn between enter and exit."""

    def __init__(self, console: Console, mode: Mode, clock=time.monotonic) -> None:
        self.console = console
        self.mode = mode
        self.model = ""
        self._plain = _PlainLines(console, clock)
        self._live: Progress | None = None
        self._rows: dict[str, int] = {}

    def __enter__(self) -> RunDisplay:
        if self.mode == "live":
            self._live = Progress(
                TextColumn("{task.description:<8}", markup=False),
                BarColumn(bar_width=24),
                _CountColumn(),
                _RateColumn(),
                _LeftColumn(),
                TextColumn(
                    "{task.fields[label]}",
                    markup=False,  # a file or suite name, never markup
                    table_column=Column(no_wrap=True, overflow="ellipsis"),
                ),
                console=self.console,
                refresh_per_second=4,
            )
            self._live.start()
        return self

    def __exit__(self, *_) -> None:
        if self._live is not None:
            for row in [self._rows[name] for name in ("bytes",) if name in self._rows]:
                self._live.update(row, visible=False)
            self._live.stop()
            self._live = None

    def step(self, text: str) -> None:
        """One step of the run, as plain text (never markup: it may quote a file name)."""
        if self.mode != "quiet":
            self.console.print(Text.assemble(("· ", "dim"), text), markup=False)

    def event(self, stage: str, label: str, done: int, total: int) -> None:
        """A `harness.progress` event."""
        if stage == "models":
            self.model = label
        if self.mode == "plain":
            self._plain.event(self.model, stage, label, done, total)
        elif self._live is not None and stage in _ROWS:
            self._draw(stage, label, done, total)

    def _draw(self, stage: str, label: str, done: int, total: int) -> None:
        live = self._live
        assert live is not None
        if stage not in self._rows:
            self._rows[stage] = live.add_task(stage, total=total, label=label, unit=stage)
        row = self._rows[stage]
        task = live.tasks[[t.id for t in live.tasks].index(row)]
        if task.total != total or done < task.completed or task.fields["label"] != label:
            # A new request list, suite or file: its own rate and time left.
            live.reset(row, total=total, completed=done, label=label, visible=True)
        else:
            live.update(row, completed=done, visible=True)
        if stage == "bytes" and done >= total:
            live.update(row, visible=False)


class _PlainLines:
    """Line-oriented progress: what a CI log can hold."""

    def __init__(self, console: Console, clock) -> None:
        self.console = console
        self.clock = clock
        self.started: dict[str, float] = {}
        self.last_line: dict[str, float] = {}
        self.last_share: dict[str, int] = {}
        self.counts: dict[str, tuple[str, int, int]] = {}

    def event(self, model: str, stage: str, label: str, done: int, total: int) -> None:
        now = self.clock()
        previous = self.counts.get(stage)
        self.counts[stage] = (label, done, total)
        # The same count going on, or a new one (a new model, suite, request list or file).
        same = previous is not None and previous[0] == label and previous[2] == total
        if not same or done < previous[1]:
            self.started[stage], self.last_line[stage], self.last_share[stage] = now, now, 0
            if stage == "models" and done < total:
                self._line(f"model {done + 1}/{total}: {label}")
            elif stage == "suites" and done < total:
                self._line(f"{model}: suite {done + 1}/{total}: {label}")
        elif stage == "suites" and done > previous[1]:
            seconds = now - self.started[stage]
            self._line(f"{model}: suite {done}/{total}: {label} finished in {seconds:,.1f} s")
        elif stage in ("requests", "bytes") and total and 0 < done < total:
            share = done * 10 // total
            since = now - self.last_line[stage]
            if since >= 30 or (share > self.last_share[stage] and since >= 5):
                self.last_line[stage], self.last_share[stage] = now, share
                self._line(self._count_line(model, stage, label, done, total, now))

    def _count_line(self, model, stage, label, done, total, now) -> str:
        elapsed = max(now - self.started[stage], 1e-9)
        rate = done / elapsed
        left = (total - done) / rate if rate else 0
        if stage == "bytes":
            return (
                f"{label}: {done / 2**20:,.0f}/{total / 2**20:,.0f} MiB ({done / total:.0%}), "
                f"{rate / 2**20:,.1f} MiB/s, about {_clock(left)} left"
            )
        return (
            f"{model}: {done:,}/{total:,} {label} requests ({done / total:.0%}), "
            f"{rate:,.1f}/s, about {_clock(left)} left"
        )

    def _line(self, text: str) -> None:
        self.console.print(Text(text), markup=False, highlight=False)


def _clock(seconds: float) -> str:
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"


class _CountColumn(ProgressColumn):
    """done/total; MiB for bytes."""

    def render(self, task: Task) -> Text:
        total = int(task.total or 0)
        done = int(task.completed)
        if task.fields.get("unit") == "bytes":
            return Text(f"{done / 2**20:,.0f}/{total / 2**20:,.0f} MiB", justify="right")
        width = len(f"{total:,}")
        return Text(f"{done:>{width},}/{total:,}", justify="right")


def _average_rate(task: Task) -> float | None:
    """Done per second since the count began. Scorers answer in bursts (a batch's contexts
    first, then its answers), so a rate over the last few updates would overstate it."""
    if task.fields.get("unit") not in ("requests", "bytes") or not task.elapsed:
        return None
    return task.completed / task.elapsed if task.completed else None


class _RateColumn(ProgressColumn):
    """Items (or MiB) a second, for requests and bytes only."""

    def render(self, task: Task) -> Text:
        rate = _average_rate(task)
        if rate is None:
            return Text("")
        if task.fields["unit"] == "bytes":
            return Text(f"{rate / 2**20:,.1f} MiB/s", style="dim")
        return Text(f"{rate:,.1f}/s", style="dim")


class _LeftColumn(ProgressColumn):
    """Time left at the average rate, for requests and bytes only."""

    def render(self, task: Task) -> Text:
        rate = _average_rate(task)
        if rate is None or task.total is None:
            return Text("")
        if task.finished:
            return Text("done", style="dim")
        return Text(_clock((task.total - task.completed) / rate), style="dim")

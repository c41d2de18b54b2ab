"""The console of `harness`: one progress display in a terminal, plain lines in a log, nothing
from the libraries' own bars or git, escaped messages, -q, --json, and tables for 80 columns."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import time

import pytest
from rich.console import Console

from harness.reports.progress import RunDisplay
from tests.conftest import REPO, run_harness, write_config

ESCAPE = re.compile(r"\x1b|\r")
THIRD_PARTY_BARS = ("Loading weights", "Generating", "Running loglikelihood", "Tokenizing", "it/s")


def tiny_config(tmp_path, model_dir, **extra) -> object:
    data = {
        "name": "tiny",
        "models": [{"id": "tiny", "path": str(model_dir), "dtype": "float32", "device": "cpu"}],
        "suites": ["smoke"],
        "output_dir": str(tmp_path / "results"),
        **extra,
    }
    return write_config(tmp_path, data)


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_say_each_model_and_suite_and_requests_now_and_then():
    out = io.StringIO()
    clock = Clock()
    display = RunDisplay(Console(file=out, force_terminal=False, width=80), "plain", clock)
    with display:
        display.event("models", "m[1]", 0, 1)
        display.event("suites", "smoke", 0, 2)
        display.event("requests", "loglikelihood", 0, 1000)
        for done in range(10, 1001, 10):  # 100 updates, one a second
            clock.now += 1
            display.event("requests", "loglikelihood", done, 1000)
        display.event("suites", "smoke", 1, 2)
        display.event("suites", "other", 1, 2)
        display.event("suites", "other", 2, 2)
        display.event("models", "m[1]", 1, 1)
        display.step("a step with [brackets]")
    text = out.getvalue()
    assert not ESCAPE.search(text)
    lines = text.splitlines()
    assert lines[0] == "model 1/1: m[1]"
    assert lines[1] == "m[1]: suite 1/2: smoke"
    requests = [line for line in lines if "requests" in line]
    # Every 10% at most every 5 s: nine lines over 100 s, not a hundred.
    assert 5 <= len(requests) <= 10, requests
    assert "m[1]: 500/1,000 loglikelihood requests (50%), 10.0/s" in text
    assert "m[1]: suite 1/2: smoke finished in 100.0 s" in lines
    assert "m[1]: suite 2/2: other" in lines
    assert lines[-1] == "· a step with [brackets]"


def test_live_display_is_one_block_and_labels_are_not_markup():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)
    with RunDisplay(console, "live") as display:
        display.event("models", "tiny", 0, 1)
        display.event("suites", "[bold]suite[/bold]", 0, 1)
        display.event("requests", "loglikelihood", 64, 128)
        display.step("scoring")
    text = out.getvalue()
    last = text.rsplit("\x1b[2K", 1)[-1]  # the final frame
    assert "[bold]suite[/bold]" in text
    assert "64/128" in text
    assert "scoring" in text
    assert max(len(line) for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", last).splitlines()) <= 80


def test_quiet_display_prints_nothing():
    out = io.StringIO()
    with RunDisplay(Console(file=out, force_terminal=True), "quiet") as display:
        display.event("models", "tiny", 0, 1)
        display.step("hidden")
    assert out.getvalue() == ""


def test_counter_reports_its_start_and_end_and_a_few_in_between():
    from harness import progress

    events = []
    previous = progress.set_sink(lambda *event: events.append(event))
    try:
        with progress.requests("loglikelihood", 100_000) as counter:
            for _ in range(100_000):
                counter.update()
    finally:
        progress.set_sink(previous)
    assert events[0] == ("requests", "loglikelihood", 0, 100_000)
    assert events[-1] == ("requests", "loglikelihood", 100_000, 100_000)
    assert len(events) < 100  # at most four a second, not one per request


def test_worker_progress_messages_are_checked():
    from pydantic import TypeAdapter, ValidationError

    from harness.sandbox.messages import WorkerMessage

    adapter = TypeAdapter(WorkerMessage)
    good = {"type": "progress", "stage": "requests", "label": "generation", "done": 3, "total": 9}
    assert adapter.validate_python(good).done == 3
    # A worker reports its suites and requests; the models of the run are the supervisor's.
    for bad in ({"done": -1}, {"stage": "models"}, {"label": "x" * 201}, {"extra": 1}):
        with pytest.raises(ValidationError):
            adapter.validate_python({**good, **bad})


@pytest.mark.parametrize("verbose", [False, True])
def test_library_logs_reach_the_console_only_with_verbose(monkeypatch, verbose):
    import logging

    from transformers.utils import logging as transformers_logging

    from harness.cli import _common

    # As in a process that loaded a model: transformers has configured its own logger.
    transformers_logging.get_logger("transformers").info("configured")
    monkeypatch.setattr(_common.Verbosity, "verbose", verbose)
    for switch in (
        "TQDM_DISABLE",
        "HF_HUB_DISABLE_PROGRESS_BARS",
        "HF_DATASETS_DISABLE_PROGRESS_BARS",
    ):
        monkeypatch.setenv(switch, "1")  # restored after the test
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        _common.quiet_libraries()
        with _common.console.capture() as captured:
            logging.getLogger("lm_eval.evaluator").info("Building contexts [for] smoke_en")
            logging.getLogger("transformers").error("a real error")
    finally:
        root.handlers[:], root.level = before
    assert ("Building contexts [for] smoke_en" in captured.get()) is verbose
    assert "a real error" in captured.get()


def test_errors_keep_their_brackets():
    from harness.cli import _common
    from harness.errors import BadInputError

    def work():
        raise BadInputError("install it: pip install lm_eval[japanese_leaderboard]")

    with _common.console.capture() as captured:
        assert _common.guarded(work) == 2
    assert "pip install lm_eval[japanese_leaderboard]" in captured.get()


def test_error_for_a_config_path_with_brackets_is_shown_whole(tmp_path):
    missing = tmp_path / "lm_eval[japanese_leaderboard].yaml"
    done = run_harness("plan", str(missing))
    assert done.returncode == 2
    assert "lm_eval[japanese_leaderboard].yaml" in done.stderr
    assert not ESCAPE.search(done.stderr)


def test_tiny_tokenizer_training_writes_nothing(capfd):
    from harness.families.tiny import train_tokenizer

    train_tokenizer(["one two three four"] * 20, vocab_size=280)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_status_is_plain_lines_when_not_a_terminal(monkeypatch):
    from harness.cli import _common

    out = io.StringIO()
    monkeypatch.setattr(_common, "console", Console(file=out, force_terminal=False))
    with _common.status("building") as update:
        update("checking [x]")
    assert out.getvalue() == "· building\n· checking [x]\n"


def test_plan_json_and_80_columns():
    config = REPO / "configs" / "demo.yaml"  # its model is an installed package: nothing loads
    done = run_harness("plan", str(config), "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    [model] = plan["models"]
    assert model["model"] == "smollm2-135m-instruct" and model["need_bytes"] > 0
    assert model["verdict"] in ("fits", "tight", "does not fit")
    assert plan["hardware"]["cpu_total_bytes"] > 0
    narrow = run_harness("plan", str(config), env={"COLUMNS": "80"})
    assert narrow.returncode == 0, narrow.stderr
    assert "Fit on this machine" in narrow.stdout and "q4_K_M" in narrow.stdout
    assert max(map(len, narrow.stdout.splitlines())) <= 80, narrow.stdout


def test_history_json_and_80_columns(tmp_path):
    from harness.cli.decisions import _history_table

    config = tiny_config(tmp_path, tmp_path / "absent")
    done = run_harness("history", str(config), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "config": "tiny",
        "results_root": str(tmp_path / "results"),
        "runs": [],
        "trends": [],
    }
    runs = [
        {"started": f"2026-12-0{i}T06:00:00+00:00", "exit_code": 4 * (i % 2), "partial": i == 3}
        for i in range(1, 10)
    ]
    rows = [
        ((f"gate {g} with a long name", "model", "task", "acc"), [(0.5, "fail")] * 9)
        for g in range(3)
    ]
    out = io.StringIO()
    Console(file=out, width=80).print(_history_table(runs, rows))
    assert "0.500 fail" in out.getvalue()
    assert max(map(len, out.getvalue().splitlines())) <= 80


def _no_noise(text: str) -> None:
    assert not ESCAPE.search(text), text
    assert "fatal:" not in text, text
    for bar in THIRD_PARTY_BARS:
        assert bar not in text, text


@pytest.mark.slow
def test_run_in_a_log_is_plain_lines(tmp_path, tiny_model_dir):
    """Sandboxed, piped: plain progress lines, the summary in 80 columns, nothing else."""
    config = tiny_config(tmp_path, tiny_model_dir)
    done = run_harness("run", str(config), "--limit", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _no_noise(done.stderr)
    _no_noise(done.stdout)
    assert "model 1/1: tiny" in done.stderr
    assert re.search(r"tiny: suite 1/1: smoke finished in [\d.]+ s", done.stderr)
    assert "report.html" in done.stderr
    assert max(map(len, done.stdout.splitlines())) <= 80
    log = next((tmp_path / "results").glob("tiny/*/run.log")).read_text()
    # Each library's own switch is off: no bar was drawn, not even into run.log (its logs are).
    assert not re.search(r"\d+%\|", log), log
    assert "git describe (for lm-eval): fatal: not a git repository" in log


@pytest.mark.slow
def test_quiet_unsandboxed_run_outside_a_repository(tmp_path, tiny_model_dir):
    """-q: the verdict only. Unsandboxed, lm-eval's `git describe` runs in this process, in a
    directory that is no git repository: its `fatal:` must not reach the console."""
    config = tiny_config(tmp_path, tiny_model_dir, offline={"sandbox": False})
    done = run_harness("-q", "run", str(config), "--limit", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("run: complete ("), done.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_terminal_shows_one_progress_display(tmp_path, tiny_model_dir):
    """A real run in a detached 80x24 tmux pane: at the end the screen holds one progress
    display (models, suites, requests) and no library's bar or git's complaint."""
    config = tiny_config(tmp_path, tiny_model_dir)
    session = f"harness-test-{tmp_path.name}"
    command = (
        f"cd {tmp_path} && PYTHONPATH={REPO} {sys.executable} -m harness run {config} "
        "--limit 2; echo RUN-EXIT=$?; sleep 300"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command], check=True
    )
    try:
        screen = ""
        deadline = time.monotonic() + 600
        while "RUN-EXIT=" not in screen and time.monotonic() < deadline:
            time.sleep(2)
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-J", "-S", "-200", "-t", session],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert "RUN-EXIT=0" in screen, screen
    rows = [line.split()[0] for line in screen.splitlines() if line.strip()]
    assert rows.count("models") == 1 and rows.count("suites") == 1, screen
    assert rows.count("requests") == 1, screen
    assert re.search(r"^requests .* (\d+)/\1 ", screen, re.M), screen  # finished
    assert "fatal:" not in screen
    for bar in THIRD_PARTY_BARS:
        assert bar not in screen, screen

"""What the commands share: the `main` group, the console, options, and the mapping of
errors to exit codes."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from harness.errors import HarnessError

console = Console(stderr=True, highlight=False, soft_wrap=True)
"""Steps, progress, errors and verdicts (stderr); a command's data goes to stdout."""


class Verbosity:
    """-q / -v of the main group, for the commands' output."""

    quiet = False
    verbose = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="harness")
@click.option(
    "-q", "--quiet", is_flag=True, help="Only errors and the final verdict (no steps, progress)."
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Also the libraries' logs (INFO) on the console."
)
def main(quiet: bool, verbose: bool) -> None:
    """Score open-weight models on local-language suites, offline, with an attestation that
    nothing left the machine."""
    if quiet and verbose:
        raise click.UsageError("-q and -v exclude each other")
    Verbosity.quiet, Verbosity.verbose = quiet, verbose


def config_file_argument(command):
    """CONFIG_FILE: a path, or the name of a built-in config (`harness run demo`), which is
    how a wheel install reaches the configs it ships (`harness.builtin`)."""

    def resolve(ctx, param, value: Path) -> Path:
        from harness.builtin import config_argument

        return config_argument(value)

    return click.argument("config_file", type=click.Path(path_type=Path), callback=resolve)(command)


def data_dir_option(command):
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path, exists=True, file_okay=False),
        help="Local copies of hub datasets, <DIR>/<org>/<name>/ (overrides the config's data_dir).",
    )(command)


def with_data_dir(config, data_dir: Path | None):
    return (
        config if data_dir is None else config.model_copy(update={"data_dir": data_dir.resolve()})
    )


def model_path_option(command):
    return click.option(
        "--model-path",
        "model_paths",
        multiple=True,
        metavar="ID=PATH",
        help="Load model ID from this local directory or .gguf file instead (repeatable).",
    )(command)


def offline_for_lookups(allow_loopback: bool = True) -> None:
    """For commands that only read files: the offline variables and the guard."""
    from harness.offline import go_offline_for_reading

    go_offline_for_reading(allow_loopback)
    quiet_libraries()


def guarded(work) -> int:
    """Run a command body; user errors become one message and their exit code."""
    try:
        return work()
    except HarnessError as exc:
        error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]; results written so far are kept")
        return 130


def error(message: str, label: str = "error:") -> None:
    """`error: MESSAGE` on the console, the message as plain text: an error quoting
    `pip install lm_eval[japanese_leaderboard]` keeps its brackets."""
    console.print(Text.assemble((label, "red"), " ", message))


def say(message: str) -> None:
    """One step, as plain text (never markup: a step may quote a worker's words or a file
    name); nothing with -q."""
    if not Verbosity.quiet:
        console.print(Text.assemble(("· ", "dim"), message))


@contextmanager
def status(text: str):
    """A spinner with `text` in a terminal; elsewhere (a file, a CI log) each text as one plain
    line, no control characters; nothing with -q. Yields a function that changes the text."""
    if Verbosity.quiet:
        yield lambda _: None
    elif console.is_terminal and not console.is_dumb_terminal:
        with console.status(Text(text)) as spinner:
            yield lambda new: spinner.update(Text(new))
    else:
        say(text)
        yield say


class _ConsoleLog(logging.Handler):
    """Log records through the console, so they print above a live progress display."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console.print(Text(self.format(record)), markup=False, highlight=False)
        except Exception:  # never let a log line take the run down
            self.handleError(record)


def quiet_libraries() -> None:
    """Library logs go to the run's run.log (at INFO); the console shows errors only, or
    INFO too with -v. Their progress bars are switched off (`harness.progress`)."""
    from harness.progress import quiet_third_party_bars

    quiet_third_party_bars()
    logging.getLogger().setLevel(logging.INFO)
    for name in ("lm-eval", "lm_eval", "datasets", "transformers", "huggingface_hub", "accelerate"):
        logging.getLogger(name).setLevel(logging.INFO)
    if "transformers" in sys.modules:
        # Once configured, transformers prints its own logs to stderr and stops them reaching
        # the root logger (run.log, and the console's level); its own switches undo that.
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_default_handler()
        transformers_logging.enable_propagation()
    level = logging.INFO if Verbosity.verbose else logging.ERROR
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_harness_console", False):
            handler.setLevel(level)
            return
    handler = _ConsoleLog(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._harness_console = True  # type: ignore[attr-defined]
    logging.getLogger().addHandler(handler)


def wide_console() -> Console:
    """Stdout; tables keep their columns when piped to a file or a CI log."""
    import os

    # COLUMNS, when set, is the width asked for (a narrow CI log, a test).
    wide = sys.stdout.isatty() or "COLUMNS" in os.environ
    return Console(soft_wrap=True, width=None if wide else 200)


def plain_row(table, *cells) -> None:
    """A table row whose text cells are plain text, not markup (a task or a path may hold
    brackets); `Text` cells keep their style."""
    table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in cells))


def print_json(data) -> None:
    """A command's `--json` answer: one JSON document on stdout, nothing else there."""
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def short(source: str) -> str:
    try:
        return str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        return source

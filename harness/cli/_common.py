"""What the commands share: the `main` group, the console, options, and the mapping of
errors to exit codes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from rich.console import Console

from harness.errors import HarnessError

console = Console(stderr=True, highlight=False, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="harness")
def main() -> None:
    """Score open-weight models on local-language suites, offline, with an attestation that
    nothing left the machine."""


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
    from harness.offline import apply_offline_env, install_guard, refuse_online_settings

    refuse_online_settings()
    apply_offline_env()
    install_guard(allow_loopback=allow_loopback)
    quiet_libraries()


def guarded(work) -> int:
    """Run a command body; user errors become one message and their exit code."""
    try:
        return work()
    except HarnessError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]; results written so far are kept")
        return 130


def say(message: str) -> None:
    from rich.text import Text

    # Plain text, never markup: a step may quote a worker's words or a file name.
    console.print(Text.assemble(("· ", "dim"), message))


def quiet_libraries() -> None:
    # Library chatter goes to the run's run.log; the console keeps errors only.
    logging.getLogger().setLevel(logging.INFO)
    for name in ("lm-eval", "lm_eval", "datasets", "transformers", "huggingface_hub", "accelerate"):
        logging.getLogger(name).setLevel(logging.INFO)
    if not any(getattr(h, "_harness_console", False) for h in logging.getLogger().handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.ERROR)
        handler._harness_console = True  # type: ignore[attr-defined]
        logging.getLogger().addHandler(handler)


def wide_console() -> Console:
    """Stdout; tables keep their columns when piped to a file or a CI log."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def short(source: str) -> str:
    try:
        return str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        return source

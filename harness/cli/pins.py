"""`harness lock` (pin a config's files) and `harness keygen` (a key pair to sign runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from harness.cli._common import (
    config_file_argument,
    console,
    data_dir_option,
    guarded,
    main,
    model_path_option,
    say,
    wide_console,
)


@main.command("lock")
@config_file_argument
@model_path_option
@data_dir_option
@click.option(
    "--output",
    "lock_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the lock file (default: beside the config, <name>.lock.json).",
)
def lock_command(config_file: Path, model_paths, data_dir, lock_file) -> None:
    """Pin every file of CONFIG's models and suites: write their sha256 to a lock file.

    `harness run` then checks every file against it before any model loads and refuses a
    mismatch (exit 2). Every model must be on this machine. Review the lock file's diff before
    committing it: it is what the run will hold the files to."""

    def work() -> int:
        from harness.api import lock

        result = lock(
            config_file, model_paths=model_paths, data_dir=data_dir, output=lock_file, say=say
        )
        models, suite_entries, target = result.lock.models, result.lock.suites, result.path
        table = Table("pinned", "files", "bytes", "digest")
        for model_id, entry in models.items():
            size = sum(f.size_bytes for f in entry.files.values())
            commit = f" @ {entry.commit[:12]}" if entry.commit else ""
            table.add_row(
                f"model {model_id}{commit}", str(len(entry.files)), f"{size:,}", entry.digest[:16]
            )
        for name, entry in suite_entries.items():
            size = sum(f.size_bytes for f in entry.files.values())
            table.add_row(f"suite {name}", str(len(entry.files)), f"{size:,}", "")
        wide_console().print(table)
        console.print(
            Text.assemble(
                (f"wrote {target}", "green"), ": `harness run` checks every file against it"
            )
        )
        return 0

    sys.exit(guarded(work))


@main.command("keygen")
@click.option(
    "--private",
    "private_key",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("~/.config/harness/signing.key"),
    show_default=True,
    help="Where to write the private key (PEM, mode 0600). Keep it off the machines and folders "
    "the evaluated models can read.",
)
@click.option(
    "--public",
    "public_key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the public key (default: the private key's path + .pub).",
)
def keygen_command(private_key: Path, public_key: Path | None) -> None:
    """Make an Ed25519 key pair to sign runs (`harness run --sign KEY`) offline.

    Give the public key to whoever verifies (`harness attest RUN_DIR --verify KEY.pub`)."""

    def work() -> int:
        from harness.signing import check_private_key, generate_key

        private = private_key.expanduser()
        public = (public_key or private.with_name(private.name + ".pub")).expanduser()
        private.parent.mkdir(parents=True, exist_ok=True)
        generate_key(private, public)
        keyid = check_private_key(private)
        console.print(Text(f"private key: {private} (mode 0600; keep it secret)"))
        console.print(Text(f"public key:  {public}"))
        console.print(Text(f"key id:      {keyid}"))
        return 0

    sys.exit(guarded(work))

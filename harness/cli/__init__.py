"""The `harness` command: parses arguments, calls the library, renders, maps errors to exit codes.

Exit codes: 0 everything ran; 1 a model or suite failed to run; 2 bad input (nothing was run);
3 a network attempt under a strict offline policy (or a guard that failed its self-test);
4 a gate failed; 130 interrupted. Heavy libraries are imported only inside commands, after the
offline variables are set, so `harness --help` is instant.
"""

from harness.cli import cache, decisions, pins, run, suites  # noqa: F401  (they register commands)
from harness.cli._common import main

__all__ = ["main"]

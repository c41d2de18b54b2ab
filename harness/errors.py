"""The errors harness raises for things a user can fix, and the exit code of each.

    HarnessError                  exit 1   a model or suite failed to run
    ├── BadInputError             exit 2   the input is wrong; nothing was run
    │   ├── ConfigError                    malformed YAML, unknown key, wrong type
    │   ├── ModelNotFoundError             missing directory, file, package or cache entry
    │   ├── TaskError                      unknown suite, broken task YAML or data file
    │   ├── OutputError                    the output directory cannot be written (a file
    │   │                                  in the way, read-only, full): stops the run, and
    │   │                                  says what results.json still holds
    │   └── PinMismatchError               a file differs from its pin (lock file) or from
    │                                      its content address in the Hugging Face cache
    ├── ModelLoadError            exit 1   weights present but transformers could not load them
    └── EgressError               exit 3   a network attempt in a strict run, or a guard that
                                           failed its self-test

Each message names the file and the fix; the CLI prints it without a traceback.
Anything else that escapes is a bug in harness and keeps its traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A failure the user can act on. `exit_code` is what the CLI returns."""

    exit_code = 1


class BadInputError(HarnessError):
    """The config, a model reference or a task is wrong; nothing was run."""

    exit_code = 2


class ConfigError(BadInputError):
    """The run config cannot be read or does not match the schema."""


class ModelNotFoundError(BadInputError):
    """A model named by the config is not where the config says."""


class TaskError(BadInputError):
    """A suite is unknown, or its task YAML or data file is broken."""


class OutputError(BadInputError):
    """Results cannot be written where the run puts them. Raised before anything runs when
    the place is unusable; during a run (the disk filled up) it says what was kept."""


class PinMismatchError(BadInputError):
    """A model or task file is not the one pinned: nothing was loaded."""


class ModelLoadError(HarnessError):
    """The model's files are present but could not be loaded."""


class EgressError(HarnessError):
    """The run tried to reach the network, or its guard is not working."""

    exit_code = 3

"""harness: score open-weight language models on local-language suites, offline.

    >>> from harness import load_config, run
    >>> result = run(load_config("configs/demo.yaml"))
    >>> result.run_dir, result.exit_code

Importing harness imports no heavy library; `run` sets the offline variables and installs the
network guard before it loads transformers, datasets or lm-eval.
"""

from harness.config import ModelSpec, RunConfig, load_config
from harness.errors import (
    BadInputError,
    ConfigError,
    HarnessError,
    ModelLoadError,
    ModelNotFoundError,
    TaskError,
)
from harness.runner import RunResult, run

__all__ = [
    "BadInputError",
    "ConfigError",
    "HarnessError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelSpec",
    "RunConfig",
    "RunResult",
    "TaskError",
    "load_config",
    "run",
]

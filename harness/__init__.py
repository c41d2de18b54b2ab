"""harness: score open-weight language models on local-language suites, offline.

    >>> import harness
    >>> result = harness.run("configs/demo.yaml", output_dir="results")
    >>> result
    RunResult(run_dir='results/demo/...', status='complete', exit_code=0, failures=0)
    >>> harness.attest(result.run_dir)
    Attestation(run_dir='results/demo/...', files=20, changed=0)

`run`, `validate`, `plan`, `compare`, `attest` and `lock` are the commands of the same name
without the printing: paths may be `str` or `Path`, each returns a typed record.

Importing harness imports no heavy library; `run` sets the offline variables and installs the
network guard before it loads transformers, datasets or lm-eval.
"""

# The modules harness.attest, harness.compare and harness.lock share their names with the API
# functions below. A submodule becomes an attribute of the package when it is first imported, so
# they are imported first and the functions bound after: `harness.attest` stays the function.
import harness.attest
import harness.compare
import harness.lock  # noqa: F401
from harness.api import (
    Attestation,
    CapacityPlan,
    Comparison,
    LockResult,
    attest,
    compare,
    lock,
    plan,
)
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
from harness.validation import Finding, ValidationReport, validate

__all__ = [
    "Attestation",
    "CapacityPlan",
    "Comparison",
    "LockResult",
    "attest",
    "compare",
    "lock",
    "plan",
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
    "Finding",
    "ValidationReport",
    "validate",
]

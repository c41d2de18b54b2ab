"""The results document of a run, typed: `RunRecord`, with `schema_version`.

The supervisor builds results.json from its own facts and the workers' typed messages, and
checks the whole document against `RunRecord` before every write, so what is on disk always
matches the published schema (`harness schema` prints it). Readers (`attest`, `compare`,
`history`, the `max_drop` baseline) load a document through `load_record`, which turns an old
or foreign file into one clear error instead of a `KeyError` deep inside.

Open-ended parts (lm-eval's metrics per task, the hardware description, the preflight's plans,
tokenizer and throughput tables) stay mappings; everything harness decides on is a field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import BadInputError

SCHEMA_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Phase(_Record):
    seconds: float
    peak_rss_bytes: int | None = None
    peak_gpu_bytes: int | None = None


class RunInfo(_Record):
    name: str
    started: str
    finished: str | None = None
    wall_seconds: float | None = None
    config_file: str | None = None
    command: list[str] = []
    directory: str
    phases: dict[str, Phase] = {}


class FileRecord(_Record):
    path: str
    real_path: str | None = None
    size_bytes: int
    sha256: str | None


class RoleFile(FileRecord):
    """A file of a model's or a task's identity, with what it is for."""

    name: str
    """The path relative to the model's folder, or a task file's portable name."""
    role: str
    """weights, config, tokenizer, chat template, code, other; task definition, task code."""


class SuiteInfo(_Record):
    kind: Literal["task", "group"]
    source: str
    tasks: list[str]
    languages: dict[str, str] = {}
    items: dict[str, int] = {}
    data_files: list[FileRecord] = []
    definition_files: list[RoleFile] = []
    """The task YAML files (with what they include) and the Python modules beside them."""


class SampleCounts(_Record):
    original: int
    effective: int


class RepeatsResult(_Record):
    """A generation task sampled k times per item (`generation.repeats`, `harness.repeats`)."""

    k: int
    """Samples per item."""
    metric: str
    """The metric summarized (the task's primary one, `exact_match`)."""
    items: int
    mean: float
    """Mean over items of each item's mean over its k samples (lm-eval's score for the task)."""
    stderr: float | None
    """Standard error of `mean` over items (None for one item)."""
    pass_at_k: dict[int, float] = {}
    """For exact match: pass@1 and pass@k, the unbiased estimator of Chen et al. (2021)."""


class TaskResult(_Record):
    """One task (or group) of a suite as scored: lm-eval's metric entries as given."""

    metrics: dict[str, Any] = {}
    """lm-eval's entries, keyed `metric,filter` (`acc,none`, `acc_stderr,none`, ...)."""
    n_samples: SampleCounts | None = None
    alias: str | None = None
    samples_file: str | None = None
    """The per-sample log, relative to the run directory."""
    generation: dict[str, int] | None = None
    """For generation tasks: how many answers thought, and how many hit the token limit."""
    task_hash: str | None = None
    """lm-eval's hash of the task's items, prompts and targets as asked (its `task_hashes`)."""
    chance: float | None = None
    """Multiple choice: the expected accuracy of uniform guessing (mean of 1/choices)."""
    repeats: RepeatsResult | None = None
    """For a generation task sampled k times per item: the summary over its samples."""


class SuiteResult(_Record):
    status: Literal["ok", "failed"]
    error: str | None = None
    seconds: float | None = None
    data_seconds: float | None = None
    work: dict[str, float] = {}
    tasks: dict[str, TaskResult] = {}
    lm_eval: dict[str, Any] = {}


class WeightFile(FileRecord):
    pass


class ModelIdentity(_Record):
    kind: str
    location: str
    directory: str
    gguf_file: str | None = None
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None
    remote_code: str | None = None
    alias: str | None = None
    weight_files: list[WeightFile] = []
    other_files: list[RoleFile] = []
    """Every other file that shapes the outputs: config, tokenizer, chat template, code."""
    digest: str | None = None
    """One sha256 over the names and digests of all the files (`harness.identity`)."""


class StandIn(_Record):
    """A model scored in place of the one the config names (`--model-path ID=PATH`)."""

    configured: str
    """What the config named: a repo, package or path."""
    scored: str
    """What ran instead."""


class ServerRecord(_Record):
    """The serving engine a model was scored through (`backend: server`)."""

    endpoint: str
    """host:port the engine answered on (in the worker's namespace when harness started it)."""
    local_endpoint: str | None = None
    """host:port the worker connected to in its own namespace: the engine's, or for an
    `endpoint` in a sandboxed run, the forwarder to the supervisor's relay."""
    command: list[str] | None = None
    """The engine's command line, as harness started it; None for an `endpoint`."""
    started_by_harness: bool
    """True: started by harness (inside the sandbox when the run is sandboxed); False: an
    engine already running on this host, outside the sandbox and the proof."""
    echo_logprobs_aligned: bool | None = None
    """Whether its echoed log-probabilities follow the OpenAI layout lm-eval reads."""


class ModelRecord(_Record):
    status: Literal["running", "ok", "failed", "skipped", "interrupted"]
    error: str | None = None
    suites: dict[str, SuiteResult] = {}
    identity: ModelIdentity | None = None
    stand_in: StandIn | None = None
    chat_template_sha256: str | None = None
    """sha256 of a fixed conversation rendered through the model's chat template."""
    hash_seconds: float | None = None
    cache: dict[str, Any] | None = None
    dtype: str | None = None
    device: str | None = None
    parameters: int | None = None
    context_window: int | None = None
    load_seconds: float | None = None
    converted_from: dict[str, Any] | None = None
    tokenizer: dict[str, Any] | None = None
    throughput: dict[str, Any] | None = None
    server: ServerRecord | None = None
    """Backend server: the engine scored through."""


class Attempt(_Record):
    """One network attempt (or refused escape), and who saw it."""

    event: str
    host: str
    port: int | None = None
    time: str
    seen_by: str = "in-process guard"
    """`supervisor (capture device)`, `supervisor (seccomp filter)`, `in-process hook only
    (not seen from outside)`, or, without the sandbox, `in-process guard`."""
    model: str | None = None
    pid: int | None = None
    executable: str | None = None
    command: str | None = None
    protocol: str | None = None
    destination: str | None = None
    dns_name: str | None = None
    blocked: bool = True
    thread: str | None = None
    package: str | None = None
    origin: str | None = None
    stack: list[str] | None = None
    python_event: str | None = None


class AttestedFile(FileRecord):
    """A file the run read, with who read it: a model (`weights`) or a suite (`data`)."""

    model: str | None = None
    suite: str | None = None
    gguf_sha256: str | None = None
    """For a converted GGUF copy: the GGUF file it was converted from."""
    note: str | None = None
    role: str | None = None
    """What the file is for (`harness.identity`): weights, config, tokenizer, chat template,
    code; task definition, task code, data."""
    name: str | None = None


class AttestedFiles(_Record):
    weights: list[AttestedFile] = []
    data: list[AttestedFile] = []


class SelfTest(_Record):
    passed: bool
    method: str
    connection_seen: bool | None = None
    refusal_seen: bool | None = None
    seconds: float | None = None


class CaptureRecord(_Record):
    enabled: bool
    reason: str | None = None


class SandboxRecord(_Record):
    """Whether the evaluated code ran in the sandbox, and its layers."""

    enforced: bool
    reason: str | None = None
    """Why there was no sandbox."""
    tool: str | None = None
    namespaces: list[str] = []
    capabilities: str | None = None
    file_system: str | None = None
    capture: CaptureRecord | None = None
    self_test: SelfTest | None = None


class GuardRecord(_Record):
    installed: bool
    kind: str
    allow_loopback: bool
    self_test: SelfTest
    children: str
    scope: str


class KernelRecord(_Record):
    enforced: bool
    method: str | None = None
    denies: list[str] = []
    reason: str | None = None


class IsolationRecord(_Record):
    isolated: bool
    method: str | None = None
    interfaces: list[str] = []
    routes_leaving: int | None = None
    netns: str | None = None
    fallback: bool = False
    reason: str | None = None


class LoopbackConnection(_Record):
    """One TCP socket on loopback in a worker's network namespace, as the supervisor first saw
    it in the namespace's TCP table."""

    model: str
    local_port: int
    remote_port: int
    """0 for a listening socket."""
    state: str
    """The state first seen: LISTEN, ESTABLISHED, TIME_WAIT, ..."""
    time: str


class RelayRecord(_Record):
    """The supervisor's relay from a sandboxed worker to an `endpoint` outside the sandbox."""

    model: str
    endpoint: str
    """host:port, the only address the relay connects to."""
    streams: int
    bytes_to_endpoint: int
    bytes_from_endpoint: int


class OfflineRecord(_Record):
    policy: dict[str, Any]
    set_offline_env: bool
    imported_before_env: list[str] = []
    env: dict[str, str | None] = {}
    sandbox: SandboxRecord
    guard: GuardRecord
    kernel: KernelRecord
    isolation: IsolationRecord
    attempts: list[Attempt] = []
    files: AttestedFiles = AttestedFiles()
    loopback: list[LoopbackConnection] = []
    """TCP sockets on loopback inside each worker's namespace, seen by the supervisor
    (`harness.sandbox.loopback`)."""
    relayed: list[RelayRecord] = []
    """Streams the supervisor relayed to an `endpoint` outside the sandbox."""


class GateCheckRecord(_Record):
    """One gate judged for one model on one task (`harness.gates.GateCheck`)."""

    gate: str
    rule: str
    model: str
    suite: str
    task: str
    language: str | None
    metric: str
    value: float | None
    stderr: float | None
    items: int | None = None
    """Items the decision rests on (for a comparison: the items both sides scored)."""
    reference: float | None
    reference_stderr: float | None
    threshold: float | None
    margin: float | None
    """Score minus threshold: negative when short."""
    margin_low: float | None = None
    margin_high: float | None = None
    """The confidence interval of the margin."""
    method: str | None = None
    """How the interval was computed (Wilson, bootstrap, normal from lm-eval's stderr)."""
    chance: float | None = None
    status: str
    detail: str


class GatesRecord(_Record):
    baseline: str | None = None
    confidence: float
    min_items: int
    inconclusive_fails: bool
    judged: bool = True
    """False for a partial run (unless the config opts in): every check is `not judged`."""
    passed: bool
    counts: dict[str, int]
    verdicts: dict[str, dict[str, str]]
    checks: list[GateCheckRecord]


class ScopeRecord(_Record):
    """How much of the config the run covered: a partial run says so everywhere."""

    partial: bool
    reasons: list[str] = []
    """Why it is partial: an item limit, models or suites left out, skipped or failed models."""
    items_scored: int
    items_total: int | None = None
    """Items of the config's full suites, where known (local data)."""


class LockRecord(_Record):
    """The lock file the run's files were checked against (`harness lock`)."""

    path: str
    sha256: str
    verified: bool


class RunRecord(_Record):
    """results.json: one run of one config."""

    schema_version: Literal[1] = SCHEMA_VERSION
    harness_version: str | None
    status: Literal["running", "complete", "failed", "interrupted"]
    run: RunInfo
    config: dict[str, Any]
    config_hash: str
    suites: dict[str, SuiteInfo]
    models: dict[str, ModelRecord]
    environment: dict[str, Any]
    offline: OfflineRecord
    preflight: dict[str, Any] | None = None
    gates: GatesRecord | None = None
    scope: ScopeRecord | None = None
    lock: LockRecord | None = None
    exit_code: int | None = None


def check_record(data: dict) -> RunRecord:
    """`data` as its typed record; `ValueError` naming the field if it is not a valid
    `RunRecord` (a bug in harness, or a worker message that should have been refused)."""
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"results.json would not match its schema: {exc}") from None


def as_record(results: dict | RunRecord) -> RunRecord:
    """The typed record of a results document (already checked, or checked now)."""
    return results if isinstance(results, RunRecord) else RunRecord.model_validate(results)


def load_record(path: Path) -> RunRecord:
    """A results.json document as its typed record; `BadInputError` (exit 2) for a file that
    is not one, naming the file and the fix."""
    path = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(
            f"{path}: no such file; give a run directory or its results.json"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not a readable results.json ({exc})") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version is None:
        raise BadInputError(
            f"{path}: written by an older harness or another tool (no schema_version); "
            "run the config again with this harness to compare or attest it"
        )
    if version != SCHEMA_VERSION:
        raise BadInputError(
            f"{path}: schema_version {version}, but this harness reads version "
            f"{SCHEMA_VERSION}; use the harness that wrote it"
        )
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInputError(
            f"{path}: not a valid harness results document ({where}: {first['msg']})"
        ) from None


def schema() -> dict:
    """The JSON schema of results.json."""
    return RunRecord.model_json_schema()

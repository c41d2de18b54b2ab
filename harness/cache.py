"""Resume: what a model has already scored is kept, so a run killed at any point and started
again does only what is left, and ends with the results an uninterrupted run gives.

Everything is kept per model identity: the sha256 of every file that shapes its outputs
(`harness.identity`: weights, config, tokenizer, chat template, code), the dtype and device it
runs in, its prompting and generation settings, and the versions of harness, lm-eval, transformers
and torch. Two models never share an entry, and a new version of any of those starts afresh.
Under `<results root>/.cache/<identity>/`:

- `identity.json`: what the key was made of;
- `requests_rank0.db`: lm-eval's own request cache (`use_cache`), which lm-eval keys by request
  text alone, hence one file per identity; each answer is committed as it is computed, so a
  killed suite keeps all but the batch in flight;
- `generations.db`: harness's record of each generation (raw text, thinking, token limit), by
  the same request key, for answers lm-eval then serves from its cache;
- `suites/<suite>-<fingerprint>.json`: a finished suite's results and per-sample records. The
  fingerprint covers the task definitions as lm-eval resolves them, the sha256 of their YAML
  files, the Python modules beside them and their data, and the run's `limit` and
  `num_fewshot`: an edited item, prompt or task module is scored again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import ModelSpec, RunConfig
from harness.reports.files import write_json_atomic


def model_identity(spec: ModelSpec, files: list[dict], device: str, dtype: str) -> dict:
    """What decides a model's outputs, beyond the prompts themselves: every file of its
    identity (weights, config, tokenizer, chat template, code), by name and sha256."""
    from harness.environment import package_versions

    versions = package_versions()
    # Another engine computes the same scores with other kernels; hf keys stay as they were.
    engine = {"engine": spec.backend, "vllm": versions.get("vllm")} if spec.backend != "hf" else {}
    if spec.backend == "llamacpp":  # its kernels, not torch's, compute the scores
        from harness.models.llamacpp import llama_cpp_version

        engine = {"engine": "llamacpp", "llama_cpp": llama_cpp_version()}
    if spec.backend == "server":
        # The engine and its flags decide the outputs as much as the weights do. An engine at
        # an `endpoint` runs outside harness's view: its URL is all the key can hold
        # (docs/serving.md: use --no-cache after changing what it serves).
        engine = {
            "engine": "server",
            "server": spec.server.model_dump() if spec.server else None,
            "endpoint": spec.endpoint,
        }
    return {
        "files": sorted([f.get("name") or Path(f["path"]).name, f["sha256"]] for f in files),
        "dtype": dtype,
        "device": device.split(":")[0],
        "chat_template": spec.chat_template,
        "generation": spec.generation.model_dump(),
        "versions": {k: versions.get(k) for k in ("harness", "lm_eval", "transformers", "torch")},
        **engine,
    }


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def suite_fingerprint(config: RunConfig, suite: str, suite_info: dict, task_index) -> str:
    """What decides which items a suite asks and how: its resolved task configs, its data's
    sha256, and the run's limit and few-shot setting."""
    names = [suite, *suite_info.get("tasks", [])]
    tasks = {name: getattr(task_index.get(name), "cfg", None) for name in names}
    data = sorted(f["sha256"] for f in suite_info.get("data_files", []))
    data += sorted(f["sha256"] for f in suite_info.get("definition_files", []))
    return _digest(
        {"tasks": tasks, "data": data, "limit": config.limit, "num_fewshot": config.num_fewshot}
    )[:16]


@dataclass
class ModelCache:
    """The cache directory of one model identity."""

    directory: Path
    key: str

    @classmethod
    def open(cls, root: Path, identity: dict) -> ModelCache:
        key = _digest(identity)[:24]
        directory = root / key
        (directory / "suites").mkdir(parents=True, exist_ok=True)
        if not (directory / "identity.json").is_file():
            write_json_atomic(directory / "identity.json", identity)
        return cls(directory, key)

    @property
    def requests(self) -> str:
        """The path prefix lm-eval's `use_cache` takes (it adds `_rank0.db`)."""
        return str(self.directory / "requests")

    @property
    def generations(self) -> Path:
        return self.directory / "generations.db"

    def _suite_file(self, suite: str, fingerprint: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in suite)
        return self.directory / "suites" / f"{safe}-{fingerprint}.json"

    def load_suite(self, suite: str, fingerprint: str) -> dict | None:
        """A finished suite's `{"entry": ..., "samples": {task: rows}}`, or None."""
        path = self._suite_file(suite, fingerprint)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # a damaged entry is scored again, not trusted

    def store_suite(self, suite: str, fingerprint: str, entry: dict, samples: dict) -> None:
        write_json_atomic(
            self._suite_file(suite, fingerprint), {"entry": entry, "samples": samples}
        )

    def load_model_facts(self) -> dict | None:
        path = self.directory / "model.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def store_model_facts(self, facts: dict) -> None:
        write_json_atomic(self.directory / "model.json", facts)

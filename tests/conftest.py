"""Shared fixtures: a tiny real Qwen2 model built here, configs written to temp dirs, and a way
to run the `harness` command in a subprocess (audit hooks cannot be removed from a process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SMOKE_DATA = REPO / "tasks" / "smoke" / "data"


def suite_text() -> list[str]:
    """Every question and choice of the smoke suite: the tokenizer's training text."""
    lines = []
    for path in sorted(SMOKE_DATA.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            lines.append(item["question"])
            lines.extend(item["choices"])
    return lines


def build_tiny_qwen2(directory: Path, seed: int = 0, layers: int = 2) -> Path:
    """A random-weight Qwen2 (`layers` layers, width 32) with a byte-level BPE tokenizer trained
    on the suite text, saved in Hugging Face layout."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from harness.families.tiny import train_tokenizer

    tokenizer = train_tokenizer(suite_text())
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def train_tiny_qwen2(directory: Path, texts: list[str], steps: int, vocab_size: int = 300):
    """A 2-layer Qwen2 (width 64) with a tokenizer of its own, trained (a few seconds on a CPU)
    until it recites `texts`, each followed by end-of-sequence; saved in Hugging Face layout.
    Returns the model and tokenizer. For tests that need a model that knows something."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from harness.families.tiny import train_tokenizer

    tokenizer = train_tokenizer(texts * 4, vocab_size=vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    rows = [tokenizer(text + tokenizer.eos_token)["input_ids"] for text in texts]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    labels = ids.masked_fill(mask == 0, -100)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.005:
            break
    model.eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model, tokenizer


@pytest.fixture(scope="session", autouse=True)
def machine_cache(tmp_path_factory) -> Path:
    """harness's machine-wide cache (converted GGUF copies) for this session, not the user's;
    a HARNESS_CACHE already set (a CI keeping conversions between sessions) is kept."""
    os.environ.setdefault("HARNESS_CACHE", str(tmp_path_factory.mktemp("harness-cache")))
    return Path(os.environ["HARNESS_CACHE"])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_qwen2(tmp_path_factory.mktemp("models") / "tiny-qwen2")


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with a chat template: a stand-in for instruct models."""
    import shutil

    from transformers import AutoTokenizer

    directory = tmp_path_factory.mktemp("models") / "tiny-qwen2-chat"
    shutil.copytree(tiny_model_dir, directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    return directory


def write_config(directory: Path, data: dict, name: str = "run.yaml") -> Path:
    """Write a run config as YAML and return its path."""
    path = directory / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


LOADER = "!function harness.suites.jsonl.load_local_jsonl"


def write_generation_task(
    directory: Path, name: str, rows: list[dict], *, max_gen_toks: int = 8, ignore: str = ""
) -> Path:
    """Write a local lm-eval generation task `name` (prompt -> target, greedy until a newline,
    exact match, ignoring what the regex `ignore` matches) with `rows` as its test split into
    `directory` (made if missing); return `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    metric = {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}
    if ignore:
        metric["regexes_to_ignore"] = [ignore]
    task = {
        "task": name,
        "custom_dataset": LOADER,
        "dataset_kwargs": {"data_files": {"test": f"{name}.jsonl"}},
        "output_type": "generate_until",
        "test_split": "test",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{target}}",
        "generation_kwargs": {"until": ["\n"], "max_gen_toks": max_gen_toks, "do_sample": False},
        "metric_list": [metric],
        "metadata": {"version": 1.0, "language": "en"},
    }
    text = yaml.safe_dump(task, allow_unicode=True, sort_keys=False)
    # lm-eval's !function tag is a YAML tag, not a string
    text = text.replace(
        "'!function harness.suites.jsonl.load_local_jsonl'",
        "!function harness.suites.jsonl.load_local_jsonl",
    )
    (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    (directory / f"{name}.jsonl").write_text(lines, encoding="utf-8")
    return directory


def run_harness(*args: str, cwd: Path | None = None, env: dict | None = None, timeout=900):
    """Run `python -m harness ARGS` in a fresh process; return the CompletedProcess."""
    full_env = {**os.environ}
    full_env.pop("PYTEST_CURRENT_TEST", None)
    for name in ("COLUMNS", "LINES"):  # pytest-xdist's workers set them; a test gives its own
        full_env.pop(name, None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_run_dir(results_root: Path) -> Path:
    """The single run directory under a results root."""
    dirs = [p.parent for p in results_root.glob("*/*/results.json")]
    assert len(dirs) == 1, f"expected one run under {results_root}, found {dirs}"
    return dirs[0]


def install_in_hf_cache(
    source: Path, cache: Path, repo: str, commit: str, repo_type: str = "model"
) -> Path:
    """Lay out the files under `source` as the Hugging Face hub cache does after a download:
    content in blobs/ named by hash, a snapshot of relative symlinks per commit (sub-folders
    kept), refs/main -> commit. `repo_type` is `model` or `dataset`."""
    import hashlib

    repo_dir = cache / (f"{repo_type}s--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source)
        blob = repo_dir / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        blob.write_bytes(path.read_bytes())
        link = snapshot / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        up = [".."] * (len(relative.parts) + 1)
        link.symlink_to(Path(*up, "blobs", blob.name))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot


class Canary:
    """A TCP listener on 127.0.0.1 that counts whatever connects: where a leak would land."""

    def __init__(self) -> None:
        import socket
        import threading

        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    @property
    def env(self) -> dict[str, str]:
        """Point the hub endpoint and the proxies at the canary, so a leak is counted here."""
        return {
            "HF_ENDPOINT": self.url,
            "HTTP_PROXY": self.url,
            "HTTPS_PROXY": self.url,
            "http_proxy": self.url,
            "https_proxy": self.url,
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.server.close()


@pytest.fixture
def canary():
    listener = Canary()
    yield listener
    listener.close()


MODEL_FIXTURES = {"tiny_model_dir", "tiny_chat_model_dir"}


def pytest_collection_modifyitems(config, items):
    """A test that loads a model is slow (`make check` leaves it out, `make test` runs it):
    marked here by the fixtures it uses, so that no such test can be forgotten; other slow
    tests carry `@pytest.mark.slow` themselves."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    """Print what tests recorded as `print_in_summary` (the selftest's portability matrix), at
    the end of the session: with pytest-xdist a worker's own output never reaches the log."""
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for name, value in getattr(report, "user_properties", ()):
                if name == "print_in_summary" and report.when == "call":
                    terminalreporter.section(f"{report.nodeid} ({outcome})")
                    terminalreporter.write(str(value))

"""A run killed with SIGKILL in the middle of a suite and started again skips what is done and
ends with the metrics and per-sample logs of an uninterrupted run, byte for byte.

The model is the tiny Qwen2 with 16 layers and batches of 16: slow enough (some seconds per
suite) for the test to see the second suite half scored in lm-eval's request cache, and kill
the run there. Batches that large are where a resumed run used to differ (by up to 1.5e-5 in a
few loglikelihoods): its requests shared batches with others than in an uninterrupted run.
The tests after it check the mechanism on its own, quickly: with answers already in the
request cache, the model computes the batches of an uninterrupted run, loglikelihoods (both
scorers) and generations alike.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO, build_tiny_qwen2, write_config

SMOKE_EN_REQUESTS = 24 * 4  # items x choices


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory) -> Path:
    return build_tiny_qwen2(tmp_path_factory.mktemp("models") / "slow", layers=16)


def config_for(directory: Path, model: Path) -> Path:
    return write_config(
        directory,
        {
            "name": "resume",
            "models": [{"id": "slow", "path": str(model), "device": "cpu", "batch_size": 16}],
            "suites": ["smoke_en", "native_hi"],
        },
    )


def harness_command(config: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness", "run", str(config), "--output", str(output), *extra]


def cached_requests(output: Path) -> int:
    """Answers committed to lm-eval's request cache so far."""
    found = list(output.glob(".cache/*/requests_rank0.db"))
    if not found:
        return 0
    try:
        with sqlite3.connect(f"file:{found[0]}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM unnamed").fetchone()[0]
    except sqlite3.Error:
        return 0


def kill_mid_suite(command: list[str], output: Path) -> int:
    """Start a run, and SIGKILL it once the second suite is partly in the request cache."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            done = cached_requests(output)
            if done >= SMOKE_EN_REQUESTS + 20:
                os.kill(proc.pid, signal.SIGKILL)  # the supervisor alone: its worker must die too
                proc.wait()
                assert_no_worker_left("harness-worker-slow-")
                return done
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.05)
        raise AssertionError("the second suite never started")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def assert_no_worker_left(marker: str) -> None:
    """Within a few seconds no process of the sandbox (its command names `marker`) is left."""
    deadline = time.monotonic() + 10
    while True:
        left = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                    left.append(entry.name)
            except OSError:
                continue
        if not left:
            return
        assert time.monotonic() < deadline, f"worker processes outlived the supervisor: {left}"
        time.sleep(0.2)


def only_run(root: Path, name: str = "resume") -> list[Path]:
    return sorted((root / name).iterdir())


def metrics_and_samples(run_dir: Path) -> tuple[str, dict[str, bytes]]:
    results = json.loads((run_dir / "results.json").read_text())
    tasks = {suite: entry["tasks"] for suite, entry in results["models"]["slow"]["suites"].items()}
    samples = {p.name: p.read_bytes() for p in sorted((run_dir / "samples" / "slow").iterdir())}
    return json.dumps(tasks, sort_keys=True), samples


@pytest.mark.slow
def test_a_killed_run_resumes_to_identical_results(tmp_path, slow_model):
    config = config_for(tmp_path, slow_model)
    reference = tmp_path / "uninterrupted"
    done = subprocess.run(harness_command(config, reference, "--no-cache"), cwd=REPO,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    output = tmp_path / "resumed"
    committed = kill_mid_suite(harness_command(config, output), output)
    [killed] = only_run(output)
    partial = json.loads((killed / "results.json").read_text())
    assert partial["status"] == "running"  # killed: nothing closed the run, its results stay
    assert partial["models"]["slow"]["suites"]["smoke_en"]["status"] == "ok"
    assert "native_hi" not in partial["models"]["slow"]["suites"]

    again = subprocess.run(harness_command(config, output), cwd=REPO, capture_output=True,
                           text=True, timeout=900)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = only_run(output)[-1]
    results = json.loads((resumed / "results.json").read_text())
    assert results["models"]["slow"]["cache"]["reused"] == ["smoke_en"]
    log = (resumed / "run.log").read_text()
    reused = [int(n) for n in re.findall(r"Cached requests: (\d+), Requests remaining", log)]
    assert reused and 0 < reused[0] <= committed - SMOKE_EN_REQUESTS

    assert metrics_and_samples(resumed) == metrics_and_samples(only_run(reference)[0])


def mc_requests(per_language: int) -> list:
    """lm-eval's loglikelihood requests for native multiple-choice items, short and with
    passages, as the native tasks word them."""
    from lm_eval.api.instance import Instance

    requests = []
    for code in ("hi", "en"):
        lines = (REPO / "tasks" / "native" / code / "mc.jsonl").read_text(encoding="utf-8")
        for line in lines.splitlines()[:per_language]:
            item = json.loads(line)
            passage = f"{item['passage']}\n\n" if item.get("passage") else ""
            context = f"{passage}Q: {item['question']}\nA:"
            for choice in item["choices"]:
                requests.append(
                    Instance("loglikelihood", doc={}, arguments=(context, f" {choice}"), idx=0)
                )
    return requests


def request_cache(path: Path, lm, answered: list[tuple]):
    """harness's request cache around `lm` (what `evaluate_suite` has lm-eval open), holding
    the `answered` (request, answer) pairs as a killed run left them."""
    from lm_eval.api.model import hash_args
    from sqlitedict import SqliteDict

    from harness.evaluation import _resuming_request_cache

    with SqliteDict(str(path)) as db:
        for request, answer in answered:
            db[hash_args(request.request_type, request.args)] = answer
        db.commit()
    return _resuming_request_cache()(lm, str(path))


@pytest.mark.parametrize("share_prefix", [True, False], ids=["shared-prefix", "lm-eval"])
def test_resumed_loglikelihoods_are_those_of_an_uninterrupted_run(
    share_prefix, tiny_model_dir, tmp_path
):
    """Answers committed up to a kill (mid-batch, as the scorer commits them) or any other
    part: the rest comes out bit for bit as in one uninterrupted pass, and batches answered
    entirely are not computed again."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.generation import ReasoningAwareHFLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lm = ReasoningAwareHFLM(pretrained=model, tokenizer=tokenizer, batch_size=8, device="cpu")
    lm.share_prefix = share_prefix
    requests = mc_requests(per_language=13)
    committed: list = []

    class Order:
        def add_partial(self, kind, arguments, answer):
            committed.append(arguments)

    lm.set_cache_hook(Order())
    full = lm.loglikelihood(requests, disable_tqdm=True)
    assert len(committed) == len(requests)
    position = {arguments: n for n, arguments in enumerate(committed)}
    if share_prefix:
        assert lm.prefix_sharing["used"] is True
    shuffled = random.Random(0).sample(range(len(requests)), k=len(requests) // 2)
    kept_parts = {  # which answers a killed run left; whether whole batches are among them
        "a third, as committed": (lambda i: position[requests[i].args] < len(requests) // 3, True),
        "most, as committed": (lambda i: position[requests[i].args] < len(requests) - 5, True),
        "any half": (lambda i: i in shuffled, False),
    }
    for n, (name, (kept, whole_batches)) in enumerate(kept_parts.items()):
        answered = [(requests[i], full[i]) for i in range(len(requests)) if kept(i)]
        cache = request_cache(tmp_path / f"requests{n}.db", lm, answered)
        before = lm.work["loglikelihood_requests"]
        try:
            resumed = cache.loglikelihood(requests)
        finally:
            cache.dbdict.close()
        assert resumed == full, name
        if whole_batches:  # not computed again
            assert lm.work["loglikelihood_requests"] - before < len(requests), name


def test_resumed_generations_are_made_in_the_batches_of_an_uninterrupted_run(
    tiny_model_dir, tmp_path
):
    """`generation_batches` is how `generate_until` batches; a resumed run generates again
    every batch that holds a request not answered, whole, and only those."""
    from lm_eval.api.instance import Instance
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.evaluation import generation_batches
    from harness.generation import ReasoningAwareHFLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lm = ReasoningAwareHFLM(pretrained=model, tokenizer=tokenizer, batch_size=3, device="cpu")
    prompts = ["Q: भारत की राजधानी?\nA:", "Q: 2 + 3?\nA:", "Q: Paris?\nA:", "Q: 서울?\nA:",
               "Q: Which is the longest river of India?\nA:", "Q:", "A: B"]  # fmt: skip
    settings = [
        {"until": ["\n"], "max_gen_toks": 6, "do_sample": False},
        {"until": ["은"], "max_gen_toks": 4},
    ]
    requests = [
        Instance("generate_until", doc={}, arguments=(p, dict(s)), idx=0, metadata=("t", n, 1))
        for n, (p, s) in enumerate((p, s) for s in settings for p in prompts)
    ]
    made: list[list[int]] = []
    generate = lm._generate_batch

    def recorded(contexts, settings):
        index = {(r.args[0], repr(sorted(r.args[1].items()))): n for n, r in enumerate(requests)}
        made.append(sorted(index[(c, repr(sorted(settings.items())))] for c in contexts))
        return generate(contexts, settings)

    lm._generate_batch = recorded
    full = lm.generate_until(requests, disable_tqdm=True)
    planned = generation_batches(lm, requests)
    assert made == [sorted(batch) for batch in planned]
    assert [len(batch) for batch in planned] == [3, 3, 1, 3, 3, 1]

    answered_ones = {*planned[0], planned[1][0], *planned[3], *planned[5]}
    answered = [(requests[i], full[i]) for i in sorted(answered_ones)]
    cache = request_cache(tmp_path / "requests.db", lm, answered)
    made.clear()
    try:
        resumed = cache.generate_until(requests)
    finally:
        cache.dbdict.close()
    assert resumed == full
    assert made == [sorted(planned[n]) for n in (1, 2, 4)]

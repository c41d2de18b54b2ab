# ruff: noqa: E501  (the Markdown table rows it prints read best on one line each)
"""The memory preflight's estimate against the measured peak of the same run.

    .venv/bin/python bench/preflight.py           # the demo (6 minutes) and the tiny models
    .venv/bin/python bench/preflight.py --tiny    # the tiny models only (a minute)

Each case is one `harness run` (CPU, float32, the result cache off). Its results.json holds both
numbers: the preflight's estimate for the model (`preflight.models.<id>.need_bytes`, planned
before anything loaded) and the peak resident memory of the process that held the model (the
worker's per-phase peaks, `run.phases`, the kernel's high-water mark). The goal (issue 14):
estimate / measured between 1.0 (never below: the estimate must be safe) and 1.3, for the
demo and for tiny models scored by harness's own scorer. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from run import HARNESS, environment, tiny_qwen2  # noqa: E402  (bench/run.py's conventions)


def measure(config: dict, root: Path) -> dict:
    path = root / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [HARNESS, "run", str(path), "--output", str(root / "out"), "--no-cache", "--no-lock"]
    done = subprocess.run(command, env=environment(), capture_output=True, text=True)
    if done.returncode not in (0, 4):
        sys.exit(f"harness run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    [results] = sorted((root / "out" / config["name"]).glob("*/results.json"))[-1:]
    data = json.loads(results.read_text(encoding="utf-8"))
    [plan] = data["preflight"]["models"].values()
    phases = data["run"]["phases"]
    peak = max(p.get("peak_rss_bytes", 0) for name, p in phases.items() if name != "startup")
    return {"estimate": plan["need_bytes"], "measured": peak, "context": plan["context"],
            "scorer": plan.get("scorer"), "parts": {k: plan[k] for k in (
                "weights_bytes", "kv_cache_bytes", "logits_bytes", "activations_bytes",
                "reserve_bytes") if k in plan}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny models only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harness-preflight-") as tmp:
        work = Path(tmp)
        tiny = tiny_qwen2(work / "tiny")["directory"]
        spec = {"id": "tiny", "path": tiny, "dtype": "float32", "device": "cpu", "batch_size": 16}
        cases = [
            ("tiny Qwen2.5 replica, native multiple choice (en, hi, ja, de)",
             {"name": "tiny_mc", "models": [spec],
              "suites": [f"native_{c}_mc" for c in ("en", "hi", "ja", "de")]}),
            ("tiny Qwen2.5 replica, smoke suite", {"name": "tiny_smoke", "models": [spec], "suites": ["smoke"]}),
        ]  # fmt: skip
        if not args.tiny:
            demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text(encoding="utf-8"))
            demo["models"][0]["device"] = "cpu"
            cases.insert(0, ("demo (SmolLM2-135M GGUF at float32, batch 16, smoke)", demo))
        print(
            "| case | planned context | scorer | estimate GiB | measured peak GiB | estimate / measured |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        summary = {}
        for n, (name, config) in enumerate(cases):
            root = work / f"case{n}"
            root.mkdir()
            found = measure(config, root)
            ratio = found["estimate"] / found["measured"]
            print(f"| {name} | {found['context']} | {found['scorer']} | {found['estimate'] / 2**30:.2f} | "
                  f"{found['measured'] / 2**30:.2f} | {ratio:.2f} |")  # fmt: skip
            summary[name] = {**found, "ratio": ratio}
        print("\n```json\n" + json.dumps(summary, indent=2) + "\n```")


if __name__ == "__main__":
    main()

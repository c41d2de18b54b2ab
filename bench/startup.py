# ruff: noqa: E501  (the Markdown table rows it prints read best on one line each)
"""harness's start-up against lm-eval's: seconds from the process's start to the first model load.

    .venv/bin/python bench/startup.py             # the demo, and one standard benchmark
    .venv/bin/python bench/startup.py --rounds 3  # the median of three runs of each

harness's start-up is the `startup` phase of results.json (`harness run CONFIG --limit 1`):
interpreter, imports, the config, the offline sandbox's self-test, the suites' check, the
digests of every input and the memory preflight. lm-eval's is what `bench/lm_eval_alone.py`
counts as its start-up: the imports of its CLI path (lm_eval, HFLM, TaskManager), in a fresh
process. The two cases:

- the demo (configs/demo.yaml: SmolLM2-135M GGUF, the smoke suite);
- one standard benchmark from lm-eval's registry, arc_easy, whose data is a local copy made
  here (`data_dir`, `allenai/ai2_arc/ARC-Easy`, 5,000 training rows for the few-shot split):
  a run with it indexes lm-eval's whole registry.

One warm-up run of each case comes first (it fills harness's caches: the converted GGUF copy,
the registry's index, the digests, as on any machine after its first run); then the rounds,
harness and lm-eval alternating. Nothing is asserted; the numbers go in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HARNESS = str(Path(PYTHON).with_name("harness"))
LM_EVAL_STARTUP = (
    "from harness.phases import process_age\n"
    "import lm_eval\n"
    "from lm_eval import simple_evaluate\n"
    "from lm_eval.loggers import EvaluationTracker\n"
    "from lm_eval.models.huggingface import HFLM\n"
    "from lm_eval.tasks import TaskManager\n"
    "print(process_age())\n"
)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_EVALUATE_OFFLINE="1", TOKENIZERS_PARALLELISM="false")  # fmt: skip
    return env


def arc_copy(data_dir: Path, rows: int = 5000) -> None:
    """A local copy of allenai/ai2_arc's ARC-Easy config, in the layout `hf download` writes,
    with `rows` training rows (the few-shot split) of made-up questions."""
    root = data_dir / "allenai" / "ai2_arc"
    (root / "ARC-Easy").mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split, count in (("train", rows), ("validation", 500), ("test", 500)):
        with open(root / "ARC-Easy" / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for i in range(count):
                a, b = rng.randint(1, 99), rng.randint(1, 99)
                choices = [str(a + b), str(a + b + 1), str(a * b), str(abs(a - b))]
                handle.write(json.dumps({
                    "id": f"{split}-{i}", "question": f"What is {a} plus {b}?",
                    "choices": {"text": choices, "label": ["A", "B", "C", "D"]}, "answerKey": "A",
                }) + "\n")  # fmt: skip
    files = "\n".join(
        f"  - split: {split}\n    path: ARC-Easy/{split}.jsonl"
        for split in ("train", "validation", "test")
    )
    (root / "README.md").write_text(
        f"---\nconfigs:\n- config_name: ARC-Easy\n  data_files:\n{files}\n---\n", encoding="utf-8"
    )


def demo_config(work: Path) -> Path:
    config = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    config["models"][0]["device"] = "cpu"
    path = work / "demo.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def standard_config(work: Path) -> Path:
    arc_copy(work / "data")
    config = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text(encoding="utf-8"))
    config.update(name="standard", suites=["arc_easy"], data_dir=str(work / "data"), gates=[])
    config["models"][0]["device"] = "cpu"
    config["num_fewshot"] = 5
    path = work / "standard.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def harness_startup(config: Path, out: Path) -> float:
    command = [HARNESS, "run", str(config), "--limit", "1", "--output", str(out), "--no-cache",
               "--no-lock"]  # fmt: skip
    done = subprocess.run(command, env=environment(), capture_output=True, text=True)
    if done.returncode not in (0, 4):
        sys.exit(f"harness run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    [results] = sorted(out.glob("*/*/results.json"))[-1:]
    return json.loads(results.read_text(encoding="utf-8"))["run"]["phases"]["startup"]["seconds"]


def lm_eval_startup() -> float:
    done = subprocess.run([PYTHON, "-c", LM_EVAL_STARTUP], env=environment(), capture_output=True,
                          text=True, check=True)  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harness-startup-") as tmp:
        work = Path(tmp)
        cases = [("demo (SmolLM2 GGUF, smoke)", demo_config(work)),
                 ("standard benchmark (arc_easy, 5,000 few-shot rows)", standard_config(work))]  # fmt: skip
        print("| case | harness start-up s | lm-eval start-up s | harness / lm-eval |")
        print("| --- | --- | --- | --- |")
        summary = {}
        for n, (name, config) in enumerate(cases):
            harness_startup(config, work / f"warm{n}")  # fills the caches
            ours, theirs = [], []
            for r in range(args.rounds):
                ours.append(harness_startup(config, work / f"run{n}-{r}"))
                theirs.append(lm_eval_startup())
            o, t = statistics.median(ours), statistics.median(theirs)
            print(f"| {name} | {o:.2f} | {t:.2f} | {o / t:.2f}x |")
            summary[name] = {"harness": ours, "lm_eval": theirs, "ratio": o / t}
        print("\n```json\n" + json.dumps(summary, indent=2) + "\n```")


if __name__ == "__main__":
    main()

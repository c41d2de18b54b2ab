# ruff: noqa: E501  (the Markdown table rows it prints read best on one line each)
"""The sandbox's cost and its effect on scores: the demo run with the sandbox (the default)
and without it (`offline.sandbox: false`), same machine, same output root, cache off.

    .venv/bin/python bench/sandbox.py                  # the demo, 2 rounds
    .venv/bin/python bench/sandbox.py --before REV     # also the demo at git revision REV
    .venv/bin/python bench/sandbox.py --config configs/japan.yaml --rounds 1 --before REV \
        -- --limit 4 --model-path qwen3-8b=/path/to/stand-in --model qwen3-8b

A warm-up run makes the converted GGUF copy first, so no measured run pays for it. The rounds
alternate (without, with, without, with, ...) so that drift in the machine falls on both. Every
score (each metric of each task) must be identical between the two modes, and to the run at
REV when given. Nothing is asserted: the numbers go in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


EXTRA: list[str] = []
"""More arguments for every `harness run` (after `--` on this script's command line)."""


def run(config: Path, root: Path, cwd: Path = REPO) -> tuple[float, dict]:
    """Wall seconds of one `harness run --no-cache`, and its scores."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(config), "--no-cache", "--output", str(root),
         *EXTRA],
        cwd=cwd, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode not in (0, 4):
        sys.exit(f"harness run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    latest = max(root.glob("*/*/results.json"), key=lambda p: p.stat().st_mtime)
    return wall, scores(json.loads(latest.read_text()))


def scores(results: dict) -> dict:
    return {
        (model, suite, task, metric): value
        for model, entry in results["models"].items()
        for suite, result in entry.get("suites", {}).items()
        for task, task_result in result.get("tasks", {}).items()
        for metric, value in (task_result.get("metrics") or {}).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", metavar="REV", help="also run the config at this revision")
    parser.add_argument("--config", default="configs/demo.yaml", help="relative to the repo")
    parser.add_argument("extra", nargs="*", help="after --: more arguments for harness run")
    args = parser.parse_args()
    EXTRA[:] = args.extra
    work = Path(tempfile.mkdtemp(prefix="harness-bench-sandbox-"))
    root = work / "results"
    source = REPO / args.config
    config = yaml.safe_load(source.read_text())
    config["offline"] = {"sandbox": False}
    unsandboxed = work / "demo-unsandboxed.yaml"
    unsandboxed.write_text(yaml.safe_dump(config))
    sandboxed = work / "demo.yaml"
    sandboxed.write_text(source.read_text())

    run(sandboxed, root)  # warm-up: the converted GGUF copy, the page cache
    times: dict[str, list[float]] = {"without": [], "with": []}
    seen: dict[str, dict] = {}
    for _ in range(args.rounds):
        for mode, path in (("without", unsandboxed), ("with", sandboxed)):
            wall, found = run(path, root)
            times[mode].append(wall)
            seen[mode] = found
    before = None
    if args.before:
        tree = work / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.before], cwd=REPO,
                       check=True, capture_output=True)  # fmt: skip
        try:
            run(tree / args.config, work / "before-results", cwd=tree)  # warm-up
            _, before = run(tree / args.config, work / "before-results", cwd=tree)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO)

    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    print("| mode | runs (s) | median s |\n| --- | --- | --- |")
    for mode in ("without", "with"):
        print(
            f"| {mode} sandbox | {', '.join(f'{t:.1f}' for t in times[mode])} | {statistics.median(times[mode]):.1f} |"
        )
    print(f"\nwith / without: **{with_ / without:.3f}x**")
    same = seen["with"] == seen["without"]
    print(
        f"scores identical with and without the sandbox: {'yes' if same else 'NO'} ({len(seen['with'])} values)"
    )
    if before is not None:
        print(f"scores identical to {args.before}: {'yes' if before == seen['with'] else 'NO'}")
        for key in sorted(set(before) | set(seen["with"])):
            if before.get(key) != seen["with"].get(key):
                print(f"  {key}: before {before.get(key)} now {seen['with'].get(key)}")


if __name__ == "__main__":
    main()

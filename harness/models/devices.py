"""Whether each model's `device` and `dtype` can work on this machine, decided before a run
directory is made and before any model loads.

Without this check `device: cuda` on a machine without a GPU failed inside the worker, after
the run directory was made (exit 1, a "failed" run that never ran), and `dtype: float16` on
a CPU ran without a word: torch computes it (no error), but half-precision matrix products
on a CPU are roughly ten times slower than float32 (torch 2.13 on an x86 CPU: 512x512 matmul
19.6 s vs 1.7 s for 20 products) and its scores are not the float32 scores.
"""

from __future__ import annotations

from harness.config import ModelSpec
from harness.errors import BadInputError


def check_devices(models: list[ModelSpec], gpu_count: int, torch_version: str = "") -> list[str]:
    """Raise `BadInputError` for a model whose device this machine lacks; return warnings
    (one line each) for settings that work but are a likely mistake."""
    problems, warnings = [], []
    torch_note = f" (torch {torch_version})" if torch_version else ""
    for spec in models:
        if spec.backend != "hf":
            continue  # vLLM places itself; `engine_problems` checks it
        device = spec.device
        if device.startswith("cuda"):
            index = int(device.partition(":")[2] or 0)
            if gpu_count == 0:
                problems.append(
                    f"model '{spec.id}': `device: {device}`, but torch sees no GPU on this "
                    f"machine{torch_note}. Set `device: cpu` (or `auto`), or run on a GPU "
                    "server."
                )
                continue
            if index >= gpu_count:
                problems.append(
                    f"model '{spec.id}': `device: {device}`, but this machine has {gpu_count} "
                    f"GPU(s) (cuda:0 to cuda:{gpu_count - 1}). Pick one of those."
                )
                continue
        if spec.device_map == "auto" and gpu_count == 0:
            problems.append(
                f"model '{spec.id}': `device_map: auto` spreads the model over the GPUs of "
                f"this node, but torch sees none{torch_note}. Remove device_map to run on the "
                "CPU, or run on a GPU server."
            )
            continue
        on_cpu = device == "cpu" or (device == "auto" and gpu_count == 0)
        if on_cpu and spec.dtype == "float16":
            warnings.append(
                f"model '{spec.id}': `dtype: float16` on the CPU. torch runs it, but half "
                "precision is about ten times slower than float32 on most CPUs, and the scores "
                "are not float32's. Use `dtype: float32` (or `auto`) on a CPU."
            )
    if problems:
        raise BadInputError("\n".join(problems))
    return warnings

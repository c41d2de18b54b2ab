"""What this machine has to hold a model: CPU memory and each GPU's memory and abilities."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GPU:
    """One CUDA device as torch sees it."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int
    compute_capability: str
    bf16: bool


@dataclass(frozen=True)
class Hardware:
    """Memory available for weights and caches on this machine, right now."""

    cpu_total_bytes: int
    cpu_available_bytes: int
    gpus: list[GPU] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def detect_hardware() -> Hardware:
    """Read CPU memory (psutil) and, when torch sees CUDA devices, each GPU's memory."""
    import psutil

    memory = psutil.virtual_memory()
    return Hardware(memory.total, memory.available, _gpus())


_GPU_DRIVERS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")
"""On Linux, CUDA (NVIDIA) and ROCm (AMD) devices need one of these driver files."""


def _gpus() -> list[GPU]:
    # Importing torch costs a second or more of start-up; on a Linux machine with no GPU
    # driver torch would find no device anyway.
    if sys.platform == "linux" and not any(os.path.exists(p) for p in _GPU_DRIVERS):
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    found = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        found.append(
            GPU(
                index=index,
                name=props.name,
                total_bytes=total,
                free_bytes=free,
                compute_capability=f"{props.major}.{props.minor}",
                # bfloat16 runs natively from Ampere (compute capability 8.0) on.
                bf16=props.major >= 8,
            )
        )
    return found

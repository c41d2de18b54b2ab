"""The environment variables that put the Hugging Face stack and friends offline.

They must be set before huggingface_hub, datasets, transformers or lm-eval are imported: those
libraries read them once, at import time.
"""

from __future__ import annotations

import os
import sys

OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # The evaluate library has its own switch, independent of the hub's.
    "HF_EVALUATE_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_XET": "1",
    "HF_UPDATE_DOWNLOAD_COUNTS": "0",
    "DO_NOT_TRACK": "1",
    "WANDB_MODE": "disabled",
}

# Libraries that read the variables above when they are first imported.
_READS_AT_IMPORT = ("huggingface_hub", "datasets", "transformers", "evaluate", "lm_eval")


def apply_offline_env() -> dict[str, str]:
    """Set every offline variable in this process (children inherit them); return them."""
    os.environ.update(OFFLINE_ENV)
    return dict(OFFLINE_ENV)


def imported_too_early() -> list[str]:
    """Libraries already imported, which may have read the variables before they were set."""
    return [name for name in _READS_AT_IMPORT if name in sys.modules]


def offline_env_in_force() -> dict[str, str | None]:
    """The offline variables as this process sees them now (None where unset)."""
    return {name: os.environ.get(name) for name in OFFLINE_ENV}

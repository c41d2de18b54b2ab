"""The environment variables that put the Hugging Face stack and friends offline.

They must be set before huggingface_hub, datasets, transformers or lm-eval are imported: those
libraries read them once, at import time. Child processes inherit them.
"""

from __future__ import annotations

import os
import sys

from harness.errors import BadInputError

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


def refuse_online_settings(environ: dict[str, str] | None = None) -> None:
    """Raise `BadInputError` if the user set an offline variable to a value that undoes it."""
    environ = os.environ if environ is None else environ
    undone = [f"{k}={environ[k]}" for k in OFFLINE_ENV if k in environ and _undoes(k, environ[k])]
    if undone:
        raise BadInputError(
            f"{', '.join(undone)} set in the environment would let libraries go online "
            "(HF_DATASETS_OFFLINE=0 turns datasets back online even with the hub offline). "
            f"Unset {'it' if len(undone) == 1 else 'them'}: harness sets every offline variable "
            "itself."
        )


def _undoes(name: str, value: str) -> bool:
    value = value.strip().lower()
    if name == "WANDB_MODE":
        return value not in ("disabled", "offline", "")
    if name == "HF_UPDATE_DOWNLOAD_COUNTS":
        return value in ("1", "true", "yes", "on", "auto")
    return value in ("0", "false", "no", "off")


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

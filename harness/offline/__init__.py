"""Keeping a run offline: the environment that switches libraries off the network, and the
guard that blocks and records whatever still tries."""

from harness.offline.guard import EgressBlocked, EgressRecord, NetworkGuard, install_guard
from harness.offline.settings import (
    OFFLINE_ENV,
    apply_offline_env,
    imported_too_early,
    offline_env_in_force,
)

__all__ = [
    "OFFLINE_ENV",
    "EgressBlocked",
    "EgressRecord",
    "NetworkGuard",
    "apply_offline_env",
    "imported_too_early",
    "install_guard",
    "offline_env_in_force",
]

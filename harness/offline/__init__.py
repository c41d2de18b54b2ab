"""Keeping a run offline, in layers: the environment that switches libraries off the network
(`settings`), an audit-hook guard that blocks and records what still tries (`guard`), a seccomp
filter for native code and children (`kernel`), a private network namespace (`isolation`), and
`policy`, which puts them together for a run."""

from harness.offline.guard import EgressBlocked, EgressRecord, NetworkGuard, install_guard
from harness.offline.settings import (
    OFFLINE_ENV,
    apply_offline_env,
    imported_too_early,
    offline_env_in_force,
    refuse_online_settings,
)

__all__ = [
    "go_offline_for_reading",
    "OFFLINE_ENV",
    "EgressBlocked",
    "EgressRecord",
    "NetworkGuard",
    "apply_offline_env",
    "imported_too_early",
    "install_guard",
    "offline_env_in_force",
    "refuse_online_settings",
]


def go_offline_for_reading(allow_loopback: bool = True) -> None:
    """For work that only reads model and suite files in this process (validate, plan, lock
    and their commands): refuse settings that undo the offline variables, set them, and
    install the network guard, for the rest of the process."""
    refuse_online_settings()
    apply_offline_env()
    install_guard(allow_loopback=allow_loopback)

"""Going offline for a run, in layers, and the facts of it for the attestation:

1. the offline environment variables (and a refusal if the user set one to undo it);
2. the in-process audit-hook guard, also in Python child processes, checked by a self-test;
3. the seccomp filter (Linux), which denies IP sockets to native code and children too;
4. with `mode: isolate`, a network namespace with only loopback (see `isolation`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from harness.config import OfflinePolicy
from harness.errors import EgressError
from harness.offline.guard import NetworkGuard, guard_children, install_guard
from harness.offline.isolation import (
    IsolationUnavailable,
    confirm_isolation,
    inside_isolation,
)
from harness.offline.kernel import install_kernel_block
from harness.offline.settings import (
    apply_offline_env,
    imported_too_early,
    offline_env_in_force,
    refuse_online_settings,
)

UNAVAILABLE_ENV = "HARNESS_ISOLATION_UNAVAILABLE"

GUARD_SCOPE = (
    "Python-level name resolution, connections, binds and sends (audit events "
    "socket.getaddrinfo, socket.gethostbyname*, socket.connect, socket.bind, socket.sendto, "
    "socket.sendmsg, http.client.connect, urllib.Request) and starts of network tools "
    "(subprocess, os.system, os.exec*, os.posix_spawn), in this process and its Python children"
)


def go_offline(policy: OfflinePolicy) -> tuple[NetworkGuard, dict[str, Any]]:
    """Put this process offline as `policy` says; return its guard and the attestation facts.

    Call before anything imports huggingface_hub, datasets, transformers or lm-eval, and
    before any thread starts. Raises `EgressError` if the guard fails its self-test.
    """
    early = imported_too_early()
    if policy.set_env:
        refuse_online_settings()
        apply_offline_env()
    isolation = _isolation(policy)
    sink = Path(tempfile.mkstemp(prefix="harness-egress-", suffix=".jsonl")[1])
    guard = install_guard(allow_loopback=policy.allow_loopback, sink=sink)
    guard_children(guard)
    self_test = guard.self_test()
    if not self_test["passed"]:
        raise EgressError(
            f"the network guard failed its self-test ({self_test['method']}): a forbidden "
            "connection was not stopped, so this run could not prove it stayed offline. "
            "Refusing to start."
        )
    if policy.kernel_block:
        kernel = install_kernel_block()
    else:
        kernel = {"enforced": False, "method": None, "reason": "offline.kernel_block is false"}
    facts = {
        "policy": policy.model_dump(mode="json"),
        "set_offline_env": policy.set_env,
        "imported_before_env": early,
        "env": offline_env_in_force(),
        "guard": {
            "installed": True,
            "kind": "python-audit-hook",
            "allow_loopback": guard.allow_loopback,
            "self_test": self_test,
            "children": "guarded through a sitecustomize on PYTHONPATH; records merged here",
            "scope": GUARD_SCOPE,
        },
        "kernel": kernel,
        "isolation": isolation,
        "attempts": [],
    }
    return guard, facts


def _isolation(policy: OfflinePolicy) -> dict[str, Any]:
    method = inside_isolation()
    if method:
        return confirm_isolation(method)
    if policy.mode != "isolate":
        return {"isolated": False, "reason": f"not requested (mode {policy.mode})"}
    reason = os.environ.get(UNAVAILABLE_ENV)
    if policy.isolation_fallback:
        return {
            "isolated": False,
            "fallback": True,
            "reason": reason or "this process was not re-executed in a namespace",
        }
    raise IsolationUnavailable(
        reason
        or "mode isolate re-executes the run in a network namespace: start it with "
        "`harness run --isolate` (the CLI), or allow `isolation_fallback`."
    )

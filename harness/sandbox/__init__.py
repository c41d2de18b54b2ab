"""The sandbox the evaluated code runs in, and the supervisor's evidence about it.

`harness run` is the supervisor: it never imports a model's code, a tokenizer or a task's
code and never loads weights. Each model is scored by a worker (`harness.worker`) started with
`bwrap` (`bwrap`), behind a seccomp filter whose decisions the supervisor makes (`filter`), in
a network namespace whose only way out is a capture device the supervisor reads (`netcapture`).
The supervisor alone writes the run's outputs, from the worker's typed messages (`messages`).
See docs/security.md for the threat model.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness.errors import EgressError
from harness.sandbox.bwrap import Layout, SandboxUnavailable, python_paths, sandbox_problem
from harness.sandbox.evidence import Evidence
from harness.sandbox.filter import ALLOWED_FAMILIES, ESCAPES

__all__ = ["Evidence", "SandboxUnavailable", "sandbox_facts", "sandbox_problem"]

_PROBE = """
import socket
s = socket.socket()
s.settimeout(5)
try:
    s.connect(("192.0.2.1", 9))
except OSError:
    pass
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)
except OSError:
    pass
"""


def sandbox_facts(policy) -> dict:
    """The offline section of results.json for a sandboxed run, after a self-test: a probe in
    a sandbox like the workers' makes one connection and asks for one forbidden socket; both
    must reach the supervisor's records. Raises `SandboxUnavailable` if the sandbox cannot
    start; a failed self-test is reported (and fails the run's offline claim)."""
    from harness.offline.settings import offline_env_in_force
    from harness.sandbox.supervise import bwrap_version, start_observed

    problem = sandbox_problem()
    if problem:
        raise SandboxUnavailable(_fix(problem))
    evidence = Evidence()
    scratch = Path(tempfile.mkdtemp(prefix="harness-probe-"))
    started = time.perf_counter()
    try:
        layout = Layout(read_only=[Path("/usr"), Path("/etc"), *python_paths()], writable=[scratch])
        sandboxed, listener, capture = start_observed(
            [sys.executable, "-I", "-c", _PROBE], layout, scratch, evidence, "(self-test)"
        )
        sandboxed.popen.wait(timeout=60)
        time.sleep(0.1)
        listener.stop()
        if capture is not None:
            capture.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seen = evidence.attempts()
    connected = any(a.get("destination") == "192.0.2.1" and a.get("port") == 9 for a in seen)
    refused = any("AF_NETLINK" in a["host"] for a in seen if a["event"] == "system call refused")
    if not refused or (evidence.capture["enabled"] and not connected):
        raise EgressError(
            "the sandbox failed its self-test: a probe's "
            + ("forbidden socket" if not refused else "connection")
            + " did not reach the supervisor's records, so this run could not prove it stayed "
            "offline. Refusing to start."
        )
    return {
        "policy": policy.model_dump(mode="json"),
        "set_offline_env": True,
        "imported_before_env": [],
        "env": offline_env_in_force(),
        "sandbox": {
            "enforced": True,
            "tool": bwrap_version(),
            "namespaces": ["user", "network", "pid", "ipc", "uts", "cgroup", "mount"],
            "capabilities": "none (all dropped, empty bounding set), no_new_privs",
            "file_system": "read-only view of the inputs; writable scratch and the model's "
            "own cache directories; not the run directory",
            "capture": evidence.capture,
            "self_test": {
                "passed": connected and refused and evidence.capture["enabled"],
                "method": "a probe's connection reached the capture device and its netlink "
                "socket reached the filter",
                "connection_seen": connected,
                "refusal_seen": refused,
                "seconds": round(time.perf_counter() - started, 3),
            },
        },
        "guard": {
            "installed": True,
            "kind": "python-audit-hook, a witness in each worker (adds Python frames)",
            "allow_loopback": policy.allow_loopback,
            "self_test": {"passed": connected and refused, "method": "sandbox self-test"},
            "children": "guarded through a sitecustomize on PYTHONPATH",
            "scope": "evidence rests on the supervisor's records, not on this hook",
        },
        "kernel": {
            "enforced": True,
            "method": "seccomp user notification, answered by the supervisor",
            "denies": [
                "socket families other than " + ", ".join(ALLOWED_FAMILIES.values()),
                "clone with namespace flags",
                *ESCAPES,
            ],
        },
        "isolation": {
            "isolated": True,
            "method": "bubblewrap: a network namespace per worker",
            "interfaces": ["lo", "harness0 (the supervisor's capture device)"],
            "routes_leaving": 0,
        },
        "attempts": [],
    }


def _fix(problem: str) -> str:
    return (
        f"the sandbox cannot run here: {problem}. Or run without it, a weaker mode in which "
        "the evaluated code shares this process and every report says so: set "
        "`offline: {sandbox: false}` in the config."
    )

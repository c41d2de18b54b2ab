"""OS-level isolation: run the whole job again inside a fresh network namespace, whose only
interface is loopback, and confirm that from the inside before anything else happens."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from harness.errors import BadInputError, EgressError

ISOLATED_ENV = "HARNESS_ISOLATED"


class IsolationUnavailable(BadInputError):
    """This OS will not give the run a network namespace of its own."""


def inside_isolation() -> str | None:
    """The method that isolated this process, if it is the re-executed run."""
    return os.environ.get(ISOLATED_ENV)


def rerun_isolated(args: list[str]) -> int:
    """Run `harness ARGS` in a new network namespace and return its exit code.

    Tries `unshare -n` as root, then `unshare -rn` (an unprivileged user namespace).
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        raise IsolationUnavailable(
            "offline mode isolate needs `unshare` (util-linux), which is not installed. "
            "Install it, or set `offline: {mode: isolate, isolation_fallback: true}` to run "
            "without a namespace (the report will say so)."
        )
    tried = []
    candidates = [("unshare -rn (user namespace)", [unshare, "-r", "-n"])]
    if os.geteuid() == 0:
        candidates.insert(0, ("unshare -n (root)", [unshare, "-n"]))
    for method, prefix in candidates:
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            tried.append(f"{method}: {probe.stderr.strip() or probe.returncode}")
            continue
        env = {**os.environ, ISOLATED_ENV: method}
        return subprocess.call([*prefix, sys.executable, "-m", "harness", *args], env=env)
    raise IsolationUnavailable(
        "this OS does not allow a private network namespace ("
        + "; ".join(tried)
        + "). Run as root, enable unprivileged user namespaces, or set "
        "`offline: {mode: isolate, isolation_fallback: true}` to run without one."
    )


def confirm_isolation(method: str) -> dict:
    """Inside the namespace: bring loopback up, then check that `lo` is the only interface and
    that no route leaves it. Raise `EgressError` if the namespace is not what it should be."""
    if shutil.which("ip"):
        subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True)
    interfaces = sorted(name for _, name in socket.if_nameindex())
    routes = _routes_not_via_lo()
    if interfaces != ["lo"] or routes:
        raise EgressError(
            f"isolation by {method} failed: interfaces {interfaces}, routes {routes}; "
            "expected only `lo` and no route"
        )
    return {
        "isolated": True,
        "method": method,
        "interfaces": interfaces,
        "routes_leaving": 0,
        "netns": _netns_id(),
    }


def _routes_not_via_lo() -> list[str]:
    routes = []
    ipv4 = Path("/proc/net/route")
    if ipv4.exists():
        for line in ipv4.read_text().splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] != "lo":
                routes.append(f"ipv4 via {fields[0]}")
    ipv6 = Path("/proc/net/ipv6_route")
    if ipv6.exists():
        for line in ipv6.read_text().splitlines():
            fields = line.split()
            if fields and fields[-1] != "lo":
                routes.append(f"ipv6 via {fields[-1]}")
    return routes


def _netns_id() -> str | None:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None

"""An in-process network guard built on `sys.addaudithook`.

Python raises an audit event before every name resolution and every socket connect; the guard
sees each one, decides whether its target is loopback, and for anything else records the attempt
(who made it, from which frame) and raises `EgressBlocked` so the call fails before any packet
is sent. Audit hooks cannot be removed, so there is one guard per process.

It sees only what goes through Python's socket layer in this process: native code and child
processes escape it.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

# Audit events that resolve a name or open a connection, and where their target is in `args`.
_TARGETS = {
    "socket.getaddrinfo": lambda a: (a[0], a[1]),
    "socket.gethostbyname": lambda a: (a[0], None),
    "socket.gethostbyname_ex": lambda a: (a[0], None),
    "socket.gethostbyaddr": lambda a: (a[0], None),
    "socket.connect": lambda a: _address(a[1]),
    "socket.sendto": lambda a: _address(a[1]),
    "socket.sendmsg": lambda a: _address(a[1]),
    "http.client.connect": lambda a: (a[1], a[2]),
    "urllib.Request": lambda a: _url_target(a[0]),
}

# Packages that only carry a request for someone else; the caller named is the one above them.
_TRANSPORTS = frozenset(
    {
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "h11",
        "h2",
        "anyio",
        "sniffio",
        "urllib3",
        "requests",
        "aiohttp",
        "aiohappyeyeballs",
        "yarl",
        "certifi",
        "truststore",
        "fsspec",
    }
)

_SELF_TEST_HOST = (
    "192.0.2.1"  # TEST-NET-1: a numeric address, so even an unguarded lookup stays local
)


class EgressBlocked(ConnectionRefusedError):
    """Raised into the code that tried to reach the network during an offline run."""


@dataclass(frozen=True)
class EgressRecord:
    """One attempt to resolve or reach a host, as the guard saw it."""

    event: str
    host: str
    port: int | None
    time: str
    thread: str
    package: str
    """The third-party package (or `__main__`) that asked for the connection."""
    origin: str
    """`file:line in function` of the first frame outside the stdlib and transport packages."""
    stack: list[str] = field(default_factory=list)
    """Calling frames outside the stdlib, innermost first, as `module:function:line`."""
    blocked: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class NetworkGuard:
    """Blocks and records every non-loopback resolve or connect in this process."""

    def __init__(self, *, allow_loopback: bool = True) -> None:
        self.allow_loopback = allow_loopback
        self._records: list[EgressRecord] = []
        self._lock = threading.Lock()
        self._quiet = threading.local()

    @property
    def records(self) -> list[EgressRecord]:
        with self._lock:
            return list(self._records)

    def hook(self, event: str, args: tuple) -> None:
        """The audit hook. Returns for allowed events; raises `EgressBlocked` otherwise."""
        target = _TARGETS.get(event)
        if target is None:
            return
        try:
            host, port = target(args)
        except (IndexError, TypeError, ValueError):
            return
        if host is None or self._is_allowed(host):
            return
        if not getattr(self._quiet, "on", False):
            self._record(event, host, port, sys._getframe(1))
        raise EgressBlocked(
            f"harness network guard: {event} to {host}{f':{port}' if port else ''} blocked "
            "(this run is offline)"
        )

    def self_test(self) -> bool:
        """Check the hook is live by resolving a reserved numeric address; not recorded."""
        import socket

        self._quiet.on = True
        try:
            socket.getaddrinfo(_SELF_TEST_HOST, 9)
        except EgressBlocked:
            return True
        except OSError:
            return False
        finally:
            self._quiet.on = False
        return False

    def _is_allowed(self, host: str | bytes) -> bool:
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        host = str(host)
        if host == "":
            return True  # the wildcard address: nothing is looked up or reached
        if not self.allow_loopback:
            return False
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False

    def _record(self, event: str, host, port, frame) -> None:
        stack: list[str] = []
        package = origin = ""
        while frame is not None:
            module = frame.f_globals.get("__name__", "") or ""
            top = module.partition(".")[0]
            if top not in sys.stdlib_module_names and module != __name__:
                code = frame.f_code
                stack.append(f"{module}:{code.co_name}:{frame.f_lineno}")
                if not package and top not in _TRANSPORTS:
                    package = top
                    origin = f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
            frame = frame.f_back
        record = EgressRecord(
            event=event,
            host=host.decode(errors="replace") if isinstance(host, bytes) else str(host),
            port=_as_port(port),
            time=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            thread=threading.current_thread().name,
            package=package or "(stdlib)",
            origin=origin,
            stack=stack[:24],
        )
        with self._lock:
            self._records.append(record)


_ACTIVE: NetworkGuard | None = None


def install_guard(*, allow_loopback: bool = True) -> NetworkGuard:
    """Install the process's guard once; later calls update its policy and return it."""
    global _ACTIVE
    if _ACTIVE is None:
        _ACTIVE = NetworkGuard(allow_loopback=allow_loopback)
        sys.addaudithook(_ACTIVE.hook)
    else:
        _ACTIVE.allow_loopback = allow_loopback
    return _ACTIVE


def _address(address) -> tuple[str | None, int | None]:
    # AF_INET and AF_INET6 addresses are tuples starting with a host string; AF_UNIX paths and
    # netlink (pid, groups) pairs never leave the machine.
    if isinstance(address, tuple) and address and isinstance(address[0], (str, bytes)):
        return address[0], address[1] if len(address) > 1 else None
    return None, None


def _url_target(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(str(url))
    if parts.scheme in ("", "file", "data"):
        return None, None
    return parts.hostname or "", parts.port


def _as_port(port) -> int | None:
    try:
        return int(port) if port is not None else None
    except (TypeError, ValueError):
        return None

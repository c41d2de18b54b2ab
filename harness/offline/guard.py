"""An in-process network guard built on `sys.addaudithook`.

Python raises an audit event before every name resolution, socket connect, bind and send, and
before it starts a program. The guard sees each one, decides whether its target is loopback
(or the program a network tool), and otherwise records the attempt (who made it, from which
frame) and raises `EgressBlocked`, so the call fails before any packet is sent. Audit hooks
cannot be removed, so there is one guard per process.

Child Python processes get their own guard through `harness/offline/child/sitecustomize.py`
(on PYTHONPATH while a run is guarded); they, and forked children, append their records to the
JSONL file named by HARNESS_EGRESS_LOG, which the parent reads back.

It sees only what goes through Python: native code that opens its own sockets escapes it; the
seccomp layer (`harness.offline.kernel`) stops that.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import socket
import sys
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

SINK_ENV = "HARNESS_EGRESS_LOG"
LOOPBACK_ENV = "HARNESS_GUARD_ALLOW_LOOPBACK"
WITNESS_ENV = "HARNESS_GUARD_WITNESS_ONLY"
CHILD_SITE = Path(__file__).resolve().parent / "child"

# Programs whose purpose is to reach other hosts; git and pip only for their network verbs.
NETWORK_TOOLS = frozenset(
    {"curl", "wget", "nc", "ncat", "netcat", "socat", "telnet", "ssh", "scp", "sftp", "ftp",
     "rsync", "aria2c", "http", "https", "huggingface-cli", "hf"}
)  # fmt: skip
_NETWORK_VERBS = {
    "git": {"clone", "fetch", "pull", "push", "ls-remote", "remote", "submodule"},
    "pip": {"install", "download", "index", "search"},
    "pip3": {"install", "download", "index", "search"},
}

# Packages that only carry a request for someone else; the caller named is the one above them.
_TRANSPORTS = frozenset(
    {"httpx", "httpx2", "httpcore", "httpcore2", "h11", "h2", "anyio", "sniffio", "urllib3",
     "requests", "aiohttp", "aiohappyeyeballs", "yarl", "certifi", "truststore", "fsspec"}
)  # fmt: skip


class EgressBlocked(ConnectionRefusedError):
    """Raised into the code that tried to reach the network during an offline run."""


@dataclass(frozen=True)
class EgressRecord:
    """One attempt to resolve or reach a host (or start a network tool), as the guard saw it."""

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
    pid: int = 0
    command: str | None = None
    """For a started program: its command line."""

    def to_dict(self) -> dict:
        return asdict(self)


class NetworkGuard:
    """Blocks and records every non-loopback resolve, connect, bind or send in this process,
    and every start of a network tool."""

    def __init__(self, *, allow_loopback: bool = True, sink: Path | None = None) -> None:
        self.allow_loopback = allow_loopback
        self.sink = sink
        self.block = True
        """False in a sandboxed worker: the hook only witnesses (adds the Python frames) and
        lets the call reach the kernel, where the sandbox stops it and the supervisor sees it."""
        self.on_record = None
        """Called with each record made in this process, as soon as it is made."""
        self.owner_pid = os.getpid()
        self._records: list[EgressRecord] = []
        self._lock = threading.Lock()
        self._quiet = threading.local()

    @property
    def records(self) -> list[EgressRecord]:
        """Records made in this process."""
        with self._lock:
            return list(self._records)

    def child_records(self) -> list[dict]:
        """Records that child processes appended to the sink file."""
        if self.sink is None or not self.sink.exists():
            return []
        rows = []
        for line in self.sink.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a child killed mid-write leaves at most one partial line
        return rows

    def hook(self, event: str, args: tuple) -> None:
        """The audit hook. Returns for allowed events; raises `EgressBlocked` otherwise."""
        if event in _SOCKET_TARGETS:
            try:
                host, port = _SOCKET_TARGETS[event](args)
            except (IndexError, TypeError, ValueError):
                return
            if host is None or self._is_allowed(host):
                return
            command = None
        elif event in _PROGRAM_EVENTS:
            command = _network_command(event, args)
            if command is None:
                return
            host, port = command[:200], None
        else:
            return
        if not getattr(self._quiet, "on", False):
            self._record(event, host, port, command, sys._getframe(1))
        if not self.block:
            return
        raise EgressBlocked(
            f"harness network guard: {event} to {host}{f':{port}' if port else ''} blocked "
            "(this run is offline)"
        )

    def self_test(self) -> dict:
        """Check the hook is live: with loopback forbidden for the moment, a connection to a
        canary listener on 127.0.0.1 must be stopped before it arrives. Not recorded."""
        try:
            canary = socket.create_server(("127.0.0.1", 0))
        except OSError:
            return {"passed": self._numeric_self_test(), "method": "numeric resolve"}
        canary.settimeout(0.2)
        caught = False
        saved, self.allow_loopback, self._quiet.on = self.allow_loopback, False, True
        try:
            with socket.socket() as client:
                client.connect(canary.getsockname())
        except EgressBlocked:
            caught = True
        except OSError:
            pass
        finally:
            self.allow_loopback, self._quiet.on = saved, False
        try:
            canary.accept()[0].close()
            arrived = True
        except OSError:
            arrived = False
        canary.close()
        return {"passed": caught and not arrived, "method": "loopback canary"}

    def _numeric_self_test(self) -> bool:
        # TEST-NET-1 is numeric, so even an unguarded lookup would stay on this machine.
        self._quiet.on = True
        try:
            socket.getaddrinfo("192.0.2.1", 9)
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
            return True  # a lookup of the wildcard address: nothing is resolved or reached
        if not self.allow_loopback:
            return False
        if host.lower() == "localhost":
            return True  # `*.localhost` is a name like any other: the resolver decides
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False

    def _record(self, event: str, host, port, command, frame) -> None:
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
            pid=os.getpid(),
            command=command,
            blocked=self.block,
        )
        if self.on_record is not None and os.getpid() == self.owner_pid:
            self.on_record(record)
        if os.getpid() == self.owner_pid:
            with self._lock:
                self._records.append(record)
        elif self.sink is not None:
            _append_line(self.sink, json.dumps(record.to_dict()))


_ACTIVE: NetworkGuard | None = None


def install_guard(*, allow_loopback: bool = True, sink: Path | None = None) -> NetworkGuard:
    """Install the process's guard once; later calls update its policy and return it."""
    global _ACTIVE
    if _ACTIVE is None:
        _ACTIVE = NetworkGuard(allow_loopback=allow_loopback, sink=sink)
        sys.addaudithook(_ACTIVE.hook)
    else:
        _ACTIVE.allow_loopback = allow_loopback
        _ACTIVE.sink = sink or _ACTIVE.sink
    return _ACTIVE


def guard_children(guard: NetworkGuard) -> None:
    """Make Python child processes install a guard that reports to `guard.sink`."""
    if guard.sink is None:
        return
    os.environ[SINK_ENV] = str(guard.sink)
    os.environ[LOOPBACK_ENV] = "1" if guard.allow_loopback else "0"
    os.environ[WITNESS_ENV] = "0" if guard.block else "1"
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(CHILD_SITE) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(CHILD_SITE), *paths])


def install_guard_from_env() -> NetworkGuard | None:
    """In a child process: install a guard as the parent described it in the environment."""
    sink = os.environ.get(SINK_ENV)
    if not sink:
        return None
    guard = install_guard(allow_loopback=os.environ.get(LOOPBACK_ENV) != "0", sink=Path(sink))
    guard.block = os.environ.get(WITNESS_ENV) != "1"
    guard.owner_pid = -1  # every record of a child goes to the sink, for the parent to read
    return guard


def _append_line(path: Path, line: str) -> None:
    # One write() of a short line with O_APPEND lands whole, even with several writers.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _address(address) -> tuple[str | None, int | None]:
    # AF_INET and AF_INET6 addresses are tuples starting with a host string; AF_UNIX paths and
    # netlink (pid, groups) pairs never leave the machine.
    if isinstance(address, tuple) and address and isinstance(address[0], (str, bytes)):
        return address[0], address[1] if len(address) > 1 else None
    return None, None


def _bind_address(address) -> tuple[str | None, int | None]:
    host, port = _address(address)
    # Binding the wildcard address listens on every interface, not just loopback.
    return ("0.0.0.0" if host in ("", b"") else host), port


def _url_target(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(str(url))
    if parts.scheme in ("", "file", "data"):
        return None, None
    return parts.hostname or "", parts.port


# Audit events that resolve a name or use a socket, and where their target is in `args`.
_SOCKET_TARGETS = {
    "socket.getaddrinfo": lambda a: (a[0], a[1]),
    "socket.gethostbyname": lambda a: (a[0], None),
    "socket.gethostbyname_ex": lambda a: (a[0], None),
    "socket.gethostbyaddr": lambda a: (a[0], None),
    "socket.connect": lambda a: _address(a[1]),
    "socket.sendto": lambda a: _address(a[1]),
    "socket.sendmsg": lambda a: _address(a[1]),
    "socket.bind": lambda a: _bind_address(a[1]),
    "http.client.connect": lambda a: (a[1], a[2]),
    "urllib.Request": lambda a: _url_target(a[0]),
}

# Audit events that start a program, and where its command line is in `args`.
_PROGRAM_EVENTS = {
    "subprocess.Popen": lambda a: a[1] if a[1] is not None else a[0],
    "os.system": lambda a: a[0],
    "os.exec": lambda a: a[1],
    "os.posix_spawn": lambda a: a[1],
    "os.spawn": lambda a: a[2],
}


def _network_command(event: str, args: tuple) -> str | None:
    """The command line if it starts a network tool (or uses bash's /dev/tcp), else None."""
    try:
        raw = _PROGRAM_EVENTS[event](args)
    except (IndexError, TypeError):
        return None
    if isinstance(raw, (str, bytes, os.PathLike)):
        text = os.fsdecode(raw)
        words = _split(text)
    else:
        words = [os.fsdecode(w) for w in raw]
        text = shlex.join(words)
    if "/dev/tcp/" in text or "/dev/udp/" in text:
        return text
    for program in _invocations(words):
        name = os.path.basename(program[0])
        if name in NETWORK_TOOLS:
            return text
        if any(w in _NETWORK_VERBS.get(name, ()) for w in program[1:3]):
            return text
    return None


_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
_PREFIXES = frozenset({"exec", "env", "nohup", "sudo", "command", "time"})


def _invocations(words: list[str]) -> list[list[str]]:
    """The programs a command line runs: itself, the commands of a `sh -c` script, or the
    module of `python -m`; leading `env`-style prefixes and VAR=value words dropped."""
    if not words:
        return []
    name = os.path.basename(words[0])
    if name in _SHELLS and "-c" in words[:-1]:
        script = words[words.index("-c") + 1]
        found = []
        for part in re.split(r"[;&|\n()`]+|\$\(", script):
            found += _invocations(_split(part))
        return found
    if name.startswith("python") and "-m" in words[1:-1]:
        return [words[words.index("-m") + 1 :]]
    while words and (words[0] in _PREFIXES or "=" in words[0]):
        words = words[1:]
    return [words] if words else []


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _as_port(port) -> int | None:
    try:
        return int(port) if port is not None else None
    except (TypeError, ValueError):
        return None

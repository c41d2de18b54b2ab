"""Evidence from outside about loopback traffic inside a worker's network namespace.

Connections to 127.0.0.1 never reach the capture device (`netcapture`): they stay on `lo`. A
model scored through a serving engine (`backend: server`) talks to it there, so the supervisor
samples the namespace's TCP tables (`/proc/<worker pid>/net/tcp` and `tcp6`, which show the
namespace of that process) every `INTERVAL` seconds and records each distinct socket: local
port, remote port, and the state it was first seen in. Closed connections linger in TIME_WAIT
for a minute, so even a short request is seen. The worker cannot change what this reads.

What it does not show: the bytes sent, and a connection opened and closed within one interval
by the side that closes last (which then skips TIME_WAIT on the other end; one side is kept).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

INTERVAL = 0.2

STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK",
    "0A": "LISTEN", "0B": "CLOSING",
}  # fmt: skip


def _loopback(address: str) -> bool:
    """Whether a hex address of /proc/net/tcp{,6} is a loopback one."""
    if len(address) == 8:  # IPv4, little-endian: 127.x.x.x ends in 7F
        return address[6:8] == "7F"
    return address in ("00000000000000000000000001000000",) or (
        address[:24] == "0000000000000000FFFF0000" and address[30:32] == "7F"
    )


def read_table(pid: int) -> set[tuple[int, int, str]]:
    """(local port, remote port, state) of every loopback TCP socket in `pid`'s namespace."""
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4:
                continue
            local, remote, state = fields[1], fields[2], fields[3]
            local_address, _, local_port = local.partition(":")
            remote_address, _, remote_port = remote.partition(":")
            if not _loopback(local_address):
                continue
            if state != "0A" and not _loopback(remote_address):
                continue
            found.add((int(local_port, 16), int(remote_port, 16), STATES.get(state, state)))
    return found


class LoopbackWatch:
    """Samples one worker's loopback TCP sockets until stopped; `connections` in the order
    first seen."""

    def __init__(self, pid: int, model: str) -> None:
        self.pid = pid
        self.model = model
        self.connections: list[dict] = []
        self._seen: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopback-watch", daemon=True)

    def start(self) -> LoopbackWatch:
        self._thread.start()
        return self

    def sample(self) -> None:
        for local, remote, state in sorted(read_table(self.pid)):
            if (local, remote) in self._seen:
                continue
            self._seen.add((local, remote))
            self.connections.append(
                {
                    "model": self.model,
                    "local_port": local,
                    "remote_port": remote,
                    "state": state,
                    "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                }
            )

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self.sample()

    def stop(self) -> list[dict]:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)
        self.sample()
        return self.connections


def summary(connections: list[dict], model: str, endpoint: str | None) -> str:
    """One line for the reports: the loopback sockets of `model`, and whether all were the
    engine's at `endpoint` (host:port in the worker's namespace: `ServerRecord.
    local_endpoint`)."""
    mine = [c for c in connections if c["model"] == model]
    port = int(endpoint.rpartition(":")[2]) if endpoint else None
    listening = sorted({c["local_port"] for c in mine if c["state"] == "LISTEN"})
    talking = [c for c in mine if c["state"] != "LISTEN"]
    to_engine = [c for c in talking if port in (c["local_port"], c["remote_port"])]
    others = [c for c in talking if c not in to_engine]
    text = (
        f"{len(talking)} loopback socket(s) seen by the supervisor, {len(to_engine)} to the "
        f"engine's port {port}; listening: {', '.join(map(str, listening)) or 'none'}"
    )
    if others:
        pairs = ", ".join(f"{c['local_port']}->{c['remote_port']}" for c in others[:10])
        text += f"; OTHER loopback connections: {len(others)} ({pairs})"
    return text


def outside_warning(record) -> str | None:
    """The first-lines label of a run that scored a model through an engine outside the
    sandbox (`endpoint`)."""
    outside = [
        f"{model_id} at {entry.server.endpoint}"
        for model_id, entry in record.models.items()
        if entry.server is not None and not entry.server.started_by_harness
    ]
    if not outside:
        return None
    return (
        "SERVER OUTSIDE THE SANDBOX: " + "; ".join(outside) + " ran in an engine already running "
        "on this host; that engine, its files and its network are not covered by this run's "
        "offline evidence."
    )


RELAY_SOCKET = ".endpoint.sock"
"""The relay's Unix socket, in the worker's scratch directory (bound into the sandbox)."""

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def endpoint_address(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an `endpoint` URL; only an engine on this host's loopback."""
    from urllib.parse import urlsplit

    from harness.errors import BadInputError

    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        raise BadInputError(
            f"endpoint {url}: harness relays only to an engine on this host's loopback over "
            "plain HTTP (http://127.0.0.1:PORT/v1). Give that address, or let harness start "
            "the engine inside the sandbox with `server.command`."
        )
    return parts.hostname, parts.port or 80, parts.path.rstrip("/") or "/v1"


class EndpointRelay:
    """Supervisor side of `endpoint`: a Unix socket in the worker's scratch whose every
    connection is joined to the configured engine (`host`, `port`) and nowhere else. Whatever
    the worker sends through it, it can reach only that one address; the worker's own network
    namespace still has no route out. `streams` and byte counts go into the offline evidence."""

    def __init__(self, path: Path, host: str, port: int, model: str) -> None:
        import socket

        from harness.sandbox.splice import Splice

        self.host, self.port, self.model = host, port, model
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(16)
        self._splice = Splice(listener, self._connect, "endpoint-relay")

    def _connect(self):
        import socket

        outer = socket.create_connection((self.host, self.port), timeout=10)
        outer.settimeout(None)
        return outer

    def close(self) -> dict:
        """Stop accepting; the relay's record for the offline evidence."""
        self._splice.close()
        return {
            "model": self.model,
            "endpoint": f"{self.host}:{self.port}",
            "streams": self._splice.streams,
            "bytes_to_endpoint": self._splice.sent,
            "bytes_from_endpoint": self._splice.received,
        }


def server_lines(record) -> list[str]:
    """Per model scored through a serving engine: where it ran, its command line and what the
    supervisor saw on loopback (plain text; the reports format it)."""
    lines = []
    sandboxed = record.offline.sandbox.enforced
    for model_id, entry in record.models.items():
        server = entry.server
        if server is None:
            continue
        if server.started_by_harness:
            where = "started by harness " + (
                "inside the sandbox" if sandboxed else "in harness's own process (NOT SANDBOXED)"
            )
            command = " ".join(server.command or [])
            text = f"{model_id}: engine at {server.endpoint}, {where}: `{command}`"
        else:
            text = (
                f"{model_id}: engine at endpoint {server.endpoint}, OUTSIDE the sandbox, not "
                "covered by the offline evidence"
            )
            relayed = [r for r in record.offline.relayed if r.model == model_id]
            if relayed:
                text += (
                    f"; reached only through the supervisor's relay ({relayed[0].streams} "
                    "stream(s))"
                )
        if sandboxed:
            connections = [c.model_dump() for c in record.offline.loopback]
            text += "; " + summary(connections, model_id, server.local_endpoint)
        lines.append(text)
    return lines

"""Evidence from outside: the worker's network namespace gets a route that leads nowhere.

Inside the sandbox the only interfaces are loopback and `harness0`, a TUN device whose other
end is a file descriptor held by the supervisor. The default routes (IPv4 and IPv6) and the
resolver's address (`RESOLVER`, written into the sandbox's /etc/resolv.conf) point at it, so
whatever any process in the sandbox sends towards another host, by any means (Python, C,
a shell's /dev/tcp, a child), arrives here as a packet, never on a wire. The supervisor
records each new flow (time, protocol, destination, the DNS name asked for, and the process
that owns the socket), then answers so that the caller fails at once: a TCP reset, or an
ICMP "port unreachable" for anything else.

The device is made by `python -m harness.sandbox.netcapture SOCKET_FD`, which the supervisor
runs under `nsenter` in the worker's network namespace before the worker is let go; it sends
the device's descriptor back and exits.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.sandbox.watch import DescriptorWatcher

DEVICE = "harness0"
LOCAL_V4, LOCAL_V6 = "192.0.2.2", "2001:db8::2"
RESOLVER = "192.0.2.53"
"""Documentation addresses (RFC 5737, RFC 3849): nothing real answers there, and nothing is
sent there either, since the packets end at the supervisor's descriptor."""

_TUNSETIFF = 0x400454CA
_IFF_TUN, _IFF_NO_PI = 0x0001, 0x1000
# Packets the kernel sends by itself on a new interface (router and neighbour solicitation,
# multicast listener reports): not made by any process, not attempts.
_KERNEL_ICMP6 = {130, 131, 132, 133, 134, 135, 136, 143}


def make_device() -> int:
    """Inside the worker's network namespace: create and configure the device; return its fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", DEVICE.encode(), _IFF_TUN | _IFF_NO_PI))
    conf = Path("/proc/sys/net/ipv6/conf") / DEVICE
    for key, value in (("accept_ra", "0"), ("router_solicitations", "0"), ("dad_transmits", "0")):
        try:
            (conf / key).write_text(value)
        except OSError:
            pass
    for command in (
        ["link", "set", "dev", DEVICE, "addrgenmode", "none"],
        ["link", "set", "dev", DEVICE, "multicast", "off", "up"],
        ["addr", "add", f"{LOCAL_V4}/32", "dev", DEVICE],
        ["-6", "addr", "add", f"{LOCAL_V6}/128", "dev", DEVICE, "nodad"],
        ["route", "add", "default", "dev", DEVICE],
        ["-6", "route", "add", "default", "dev", DEVICE],
    ):
        subprocess.run(["ip", *command], check=True, capture_output=True, text=True)
    return fd


@dataclass(frozen=True)
class Packet:
    """What one captured packet says about its flow."""

    protocol: str
    source: str
    source_port: int | None
    destination: str
    port: int | None
    syn: bool = False
    dns_name: str | None = None
    icmp_type: int | None = None


def parse(data: bytes) -> tuple[Packet, int] | None:
    """(packet, offset of the transport header), or None for what is not IP."""
    if len(data) < 20:
        return None
    version = data[0] >> 4
    if version == 4:
        start, number = (data[0] & 0x0F) * 4, data[9]
        source, destination = (
            socket.inet_ntop(socket.AF_INET, data[12:16]),
            socket.inet_ntop(socket.AF_INET, data[16:20]),
        )
    elif version == 6 and len(data) >= 40:
        start, number = 40, data[6]
        source = socket.inet_ntop(socket.AF_INET6, data[8:24])
        destination = socket.inet_ntop(socket.AF_INET6, data[24:40])
    else:
        return None
    body = data[start:]
    if number in (6, 17) and len(body) >= 8:
        sport, dport = struct.unpack("!HH", body[:4])
        if number == 6:
            syn = len(body) >= 14 and bool(body[13] & 0x02) and not body[13] & 0x10
            return Packet("tcp", source, sport, destination, dport, syn=syn), start
        name = _dns_name(body[8:]) if dport == 53 else None
        return Packet("udp", source, sport, destination, dport, dns_name=name), start
    kind = body[0] if body else None
    protocol = {1: "icmp", 58: "icmpv6"}.get(number, f"ip-proto-{number}")
    return Packet(protocol, source, None, destination, None, icmp_type=kind), start


def _dns_name(message: bytes) -> str | None:
    labels, at = [], 12
    try:
        while at < len(message) and message[at] and len(labels) < 128:
            size = message[at]
            labels.append(message[at + 1 : at + 1 + size].decode("ascii", "replace"))
            at += 1 + size
    except IndexError:
        return None
    return ".".join(labels) or None


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_header(version: int, src: bytes, dst: bytes, number: int, length: int) -> bytes:
    if version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0, 64, number, 0, src, dst)
        return header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return struct.pack("!IHBB16s16s", 0x60000000, length, number, 64, src, dst)


def _pseudo(version: int, src: bytes, dst: bytes, number: int, length: int) -> bytes:
    if version == 4:
        return src + dst + struct.pack("!BBH", 0, number, length)
    return src + dst + struct.pack("!IxxxB", length, number)


def refusal(data: bytes, packet: Packet, start: int) -> bytes | None:
    """The packet that makes the sender fail at once: a TCP reset for a connection attempt,
    ICMP port unreachable for a datagram; None for the rest (dropped)."""
    version = data[0] >> 4
    if version == 4:
        src, dst = data[12:16], data[16:20]
    else:
        src, dst = data[8:24], data[24:40]
    if packet.protocol == "tcp":
        if not packet.syn:
            return None
        seq = struct.unpack("!I", data[start + 4 : start + 8])[0]
        tcp = struct.pack(
            "!HHIIBBHHH", packet.port, packet.source_port, 0, (seq + 1) & 0xFFFFFFFF,
            5 << 4, 0x14, 0, 0, 0,
        )  # fmt: skip
        total = _checksum(_pseudo(version, dst, src, 6, len(tcp)) + tcp)
        tcp = tcp[:16] + struct.pack("!H", total) + tcp[18:]
        return _ip_header(version, dst, src, 6, len(tcp)) + tcp
    if packet.protocol != "udp":
        return None
    if version == 4:
        quoted = data[: start + 8]
        icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
        icmp = icmp[:2] + struct.pack("!H", _checksum(icmp)) + icmp[4:]
        return _ip_header(4, dst, src, 1, len(icmp)) + icmp
    quoted = data[:1184]
    icmp = struct.pack("!BBHI", 1, 4, 0, 0) + quoted
    total = _checksum(_pseudo(6, dst, src, 58, len(icmp)) + icmp)
    icmp = icmp[:2] + struct.pack("!H", total) + icmp[4:]
    return _ip_header(6, dst, src, 58, len(icmp)) + icmp


def socket_owner(netns_pid: int, packet: Packet) -> dict:
    """The process in the worker's namespace whose socket sent the packet: pid, executable and
    command line, found from the socket tables of that namespace (best effort: a process that
    already closed its socket is not found)."""
    if packet.source_port is None:
        return {}
    tables = {"tcp": ("tcp", "tcp6"), "udp": ("udp", "udp6")}[packet.protocol]
    inode = None
    for table in tables:
        try:
            lines = Path(f"/proc/{netns_pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == packet.source_port:
                inode = fields[9]
                break
        if inode:
            break
    if not inode or inode == "0":
        return {}
    try:
        netns = os.readlink(f"/proc/{netns_pid}/ns/net")
    except OSError:
        return {}
    wanted = f"socket:[{inode}]"
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/ns/net") != netns:
                continue
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                if os.readlink(fd.path) == wanted:
                    return process_facts(int(entry.name))
        except OSError:
            continue
    return {}


def process_facts(pid: int) -> dict:
    """pid (as the supervisor sees it), executable and command line of a process."""
    facts: dict = {"pid": pid}
    try:
        facts["executable"] = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        facts["executable"] = None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        facts["command"] = " ".join(p.decode(errors="replace") for p in raw.split(b"\0") if p)[:300]
    except OSError:
        facts["command"] = None
    return facts


class Capture(DescriptorWatcher):
    """The supervisor's reader of the device: one record per new flow through `on_flow`."""

    name = "tun-capture"

    def __init__(self, fd: int, netns_pid: int, on_flow: Callable[[dict], None]) -> None:
        super().__init__(fd)
        self.netns_pid = netns_pid
        self.on_flow = on_flow
        self.packets = 0
        self._seen: set[tuple] = set()

    def serve_ready(self) -> bool:
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return False
        self._handle(data)
        return True

    def _handle(self, data: bytes) -> None:
        parsed = parse(data)
        if parsed is None:
            return
        packet, start = parsed
        if packet.protocol == "icmpv6" and packet.icmp_type in _KERNEL_ICMP6:
            return
        self.packets += 1
        flow = (packet.protocol, packet.source, packet.source_port, packet.destination,
                packet.port, packet.dns_name)  # fmt: skip
        if flow not in self._seen:
            self._seen.add(flow)
            self.on_flow(
                {
                    "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "protocol": packet.protocol,
                    "destination": packet.destination,
                    "port": packet.port,
                    "dns_name": packet.dns_name,
                    **socket_owner(self.netns_pid, packet),
                }
            )
        answer = refusal(data, packet, start)
        if answer is not None:
            try:
                os.write(self.fd, answer)
            except OSError:
                pass


def _main(argv: list[str]) -> int:
    channel = socket.socket(fileno=int(argv[1]))
    fd = make_device()
    socket.send_fds(channel, [b"tun"], [fd])
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))

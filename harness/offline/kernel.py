"""The kernel layer: a seccomp filter that denies creating IPv4, IPv6 and packet sockets, and
io_uring (whose operations bypass the socket system calls), to this process and every process
it starts. It stops what the audit hook cannot see: native code, ctypes calls into libc, a
shell's /dev/tcp. AF_UNIX sockets stay allowed. Like an audit hook, it cannot be removed.
"""

from __future__ import annotations

import errno
import socket
import sys

DENIED = ("socket(AF_INET)", "socket(AF_INET6)", "socket(AF_PACKET)", "io_uring_setup")


def install_kernel_block() -> dict:
    """Install the filter; return what is enforced (or why nothing is) for the attestation."""
    if sys.platform != "linux":
        return {"enforced": False, "method": None, "reason": "seccomp exists only on Linux"}
    try:
        import pyseccomp as seccomp

        rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        # Synchronise every thread already running, not only the caller's.
        rules.set_attr(seccomp.Attr.CTL_TSYNC, 1)
        for family in (socket.AF_INET, socket.AF_INET6, socket.AF_PACKET):
            rules.add_rule(
                seccomp.ERRNO(errno.EACCES), "socket", seccomp.Arg(0, seccomp.EQ, family)
            )
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "io_uring_setup")
        rules.load()
    except (ImportError, OSError, RuntimeError, AttributeError, ValueError) as exc:
        return {
            "enforced": False,
            "method": None,
            "reason": f"could not install a seccomp filter ({type(exc).__name__}: {exc}); "
            "install libseccomp2 and pyseccomp",
        }
    return {"enforced": _is_enforced(), "method": "seccomp", "denies": list(DENIED)}


def _is_enforced() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
    except PermissionError:
        return True
    return False

"""The worker's seccomp filter, and the supervisor's end of it.

One filter, installed by the trusted launcher (`harness.sandbox.launch`) inside the sandbox
before any evaluated code runs, inherited by every thread and child and impossible to remove:

- `socket` and `socketpair` are handed to the supervisor (seccomp user notification), which
  lets the call go on only for the allowed families (AF_UNIX, AF_INET, AF_INET6: the network
  namespace has no route out, so IP sockets reach loopback or the capture device only) and
  records and refuses every other family. The family is a register value the kernel copied
  into the notification, compared as the C `int` the kernel reads (the low 32 bits), so extra
  high bits neither hide a family nor forge one;
- the escapes (joining or making namespaces, mounting, tracing, reading other processes'
  memory, BPF, io_uring, perf events, userfaultfd, keyrings, kernel modules, ...) are handed to
  the supervisor too, which records each one and answers EPERM;
- `clone` with any namespace flag likewise (the flags word is 64 bits wide on this ABI and
  each flag is tested by its own masked comparison); `clone3`, whose flags sit in memory the
  filter cannot read, answers ENOSYS, so the C library falls back to `clone`;
- system calls of another ABI (32-bit `int 0x80`, x32) kill the process: libseccomp filters
  the native architecture only.

If the supervisor goes away, every notified call fails (the kernel answers ENOSYS): the filter
fails closed.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from harness.sandbox.watch import DescriptorWatcher

ALLOWED_FAMILIES = {
    socket.AF_UNIX: "AF_UNIX",
    socket.AF_INET: "AF_INET",
    socket.AF_INET6: "AF_INET6",
}

ESCAPES = (
    "setns", "unshare", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "ptrace", "process_vm_readv",
    "process_vm_writev", "pidfd_getfd", "kcmp", "bpf", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "name_to_handle_at", "open_by_handle_at", "iopl", "ioperm", "swapon", "swapoff", "reboot",
    "acct", "quotactl", "lookup_dcookie", "syslog", "vhangup", "settimeofday", "clock_settime",
    "adjtimex", "clock_adjtime", "sethostname", "setdomainname", "fanotify_init",
)  # fmt: skip
"""System calls the worker never needs, each a way out of the sandbox or around its record."""

NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000, "CLONE_NEWTIME": 0x00000080,
}  # fmt: skip

NOTIFIED = ("socket", "socketpair", "clone", *ESCAPES)


def install_worker_filter() -> int:
    """In the launcher: load the filter on this process (no_new_privs is already set by
    bubblewrap) and return the listener's file descriptor for the supervisor."""
    import pyseccomp as seccomp

    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    rules.add_rule(seccomp.NOTIFY, "socket")
    rules.add_rule(seccomp.NOTIFY, "socketpair")
    for flag in NAMESPACE_FLAGS.values():
        rules.add_rule(seccomp.NOTIFY, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for name in ESCAPES:
        try:
            rules.add_rule(seccomp.NOTIFY, name)
        except (OSError, RuntimeError, ValueError):
            continue  # a system call this kernel's libseccomp does not know is not reachable
    rules.load()
    return int(_libseccomp().seccomp_notify_fd(rules._filter))


def _libseccomp():
    # pyseccomp exposes receive/respond only on a filter object; the supervisor holds just the
    # listener's descriptor, so it calls libseccomp's own functions through pyseccomp's handle.
    # Checked with pyseccomp 0.1.2 and libseccomp 2.5; tests/sandbox fails if that changes.
    import pyseccomp

    return pyseccomp._libseccomp


@dataclass(frozen=True)
class Call:
    """One notified system call: who made it and with which register arguments."""

    pid: int
    name: str
    args: tuple[int, ...]


def decide(call: Call) -> tuple[bool, int, str | None]:
    """(allowed, errno, what was refused) for one notified call."""
    if call.name in ("socket", "socketpair"):
        family = call.args[0] & 0xFFFFFFFF  # the kernel reads an int
        if family in ALLOWED_FAMILIES:
            return True, 0, None
        return False, errno.EAFNOSUPPORT, f"{call.name}(family {family}{_family_name(family)})"
    if call.name == "clone":
        flags = [n for n, bit in NAMESPACE_FLAGS.items() if call.args[0] & bit]
        return False, errno.EPERM, f"clone({'|'.join(flags)})"
    return False, errno.EPERM, f"{call.name}()"


def _family_name(family: int) -> str:
    try:
        return f", {socket.AddressFamily(family).name}"
    except ValueError:
        return ""


class NotifyListener(DescriptorWatcher):
    """The supervisor's end of the filter: answers every notified call, and reports each
    refused one through `on_refused(call, what)` before the worker sees the answer."""

    name = "seccomp-notify"

    def __init__(self, fd: int, on_refused: Callable[[Call, str], None]) -> None:
        import pyseccomp

        super().__init__(fd)
        self.on_refused = on_refused
        self.calls = 0
        self._lib = _libseccomp()
        self._Notif, self._Resp = pyseccomp._Notif, pyseccomp._NotifResp
        self._names: dict[int, str] = {}
        for name in NOTIFIED:
            try:
                self._names[pyseccomp.resolve_syscall(pyseccomp.system_arch(), name)] = name
            except (OSError, RuntimeError, ValueError):
                continue

    @contextmanager
    def serving(self):
        import ctypes

        self._request = ctypes.POINTER(self._Notif)()
        self._response = ctypes.POINTER(self._Resp)()
        if (
            self._lib.seccomp_notify_alloc(
                ctypes.byref(self._request), ctypes.byref(self._response)
            )
            < 0
        ):
            raise OSError("seccomp_notify_alloc failed")
        try:
            yield
        finally:
            self._lib.seccomp_notify_free(self._request, self._response)

    def serve_ready(self) -> bool:
        import ctypes

        ctypes.memset(self._request, 0, ctypes.sizeof(self._Notif))
        if self._lib.seccomp_notify_receive(self.fd, self._request) < 0:
            return True  # the caller died before we read it
        self._answer(self._request.contents, self._response)
        return True

    def _answer(self, raw, response) -> None:
        import ctypes

        self.calls += 1
        call = Call(raw.pid, self._names.get(raw.data.nr, f"#{raw.data.nr}"), tuple(raw.data.args))
        allowed, error, what = decide(call)
        if not allowed and what is not None:
            self.on_refused(call, what)
        ctypes.memset(response, 0, ctypes.sizeof(self._Resp))
        response.contents.id = raw.id
        if allowed:
            response.contents.flags = 1  # SECCOMP_USER_NOTIF_FLAG_CONTINUE: registers only
        else:
            response.contents.error = -error
        self._lib.seccomp_notify_respond(self.fd, response)

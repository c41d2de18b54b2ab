"""Starting a process in the worker's sandbox with bubblewrap.

bubblewrap (Debian's `bubblewrap`, the sandbox under Flatpak) is a small, audited program made
for exactly this: it builds the namespaces and the mount view and drops capabilities, without
setuid tricks. harness asks it for a new user namespace (real root outside gains nothing in
it: every capability is dropped and the bounding set is empty), new network, PID, IPC, UTS
and cgroup namespaces, a fresh session (no terminal injection), no_new_privs, and death with
the supervisor. The file system is an empty tmpfs root into which only what the worker needs
is bound, read-only: the system directories (/usr, /etc), the Python installation and
packages, harness itself, and the model, task and data files of the run; plus the writable
scratch directory and the model's own cache directories. The run directory is not there.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import BadInputError


class SandboxUnavailable(BadInputError):
    """This machine cannot give the worker its sandbox."""


def sandbox_problem() -> str | None:
    """Why the sandbox cannot run here, with the fix; None when it can."""
    if sys.platform != "linux":
        return "the sandbox needs Linux namespaces and seccomp; this is " + sys.platform
    if shutil.which("bwrap") is None:
        return (
            "the sandbox needs bubblewrap, which is not installed: `apt-get install bubblewrap "
            "iproute2` (Debian/Ubuntu) or `dnf install bubblewrap iproute`"
        )
    probe = subprocess.run(
        ["bwrap", "--unshare-user", "--unshare-net", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return (
            f"bubblewrap cannot create user and network namespaces here ({probe.stderr.strip()}):"
            " run as root, or allow unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1, "
            "kernel.apparmor_restrict_unprivileged_userns=0)"
        )
    try:
        import pyseccomp

        if pyseccomp.get_api() < 5:
            return "the sandbox needs seccomp user notification (libseccomp >= 2.5, Linux >= 5.5)"
    except (ImportError, OSError, NotImplementedError) as exc:
        return f"the sandbox needs libseccomp and pyseccomp ({exc})"
    return None


@dataclass
class Layout:
    """What the worker sees: paths bound read-only, paths bound writable, device nodes."""

    read_only: list[Path] = field(default_factory=list)
    writable: list[Path] = field(default_factory=list)
    devices: list[Path] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    """Destination in the sandbox -> a file or directory bound there read-only (after the
    others, so it may sit inside a writable one)."""

    def arguments(self) -> list[str]:
        args: list[str] = []
        for name in ("lib", "lib64", "bin", "sbin"):
            top = Path("/") / name
            if top.is_symlink():
                args += ["--symlink", os.readlink(top), str(top)]
            elif top.is_dir():
                args += ["--ro-bind", str(top), str(top)]
        binds = [(p, "--ro-bind") for p in _existing(self.read_only)]
        binds += [(p, "--bind") for p in _existing(self.writable)]
        # Parents first, so that a writable directory inside a read-only one stays writable.
        for path, flag in sorted(binds, key=lambda b: (len(b[0].parts), str(b[0]))):
            args += [flag, str(path), str(path)]
        for device in self.devices:
            args += ["--dev-bind-try", str(device), str(device)]
        for destination, source in sorted(self.files.items()):
            args += ["--ro-bind", os.path.abspath(source), os.path.abspath(destination)]
        return args


def _existing(paths: list[Path]) -> list[Path]:
    seen: dict[str, Path] = {}
    for path in paths:
        path = Path(os.path.abspath(path))  # bubblewrap runs elsewhere: no relative path
        resolved = Path(os.path.realpath(path))
        if path.exists():
            seen.setdefault(str(path), path)
            if resolved != path:
                seen.setdefault(str(resolved), resolved)  # a link's target must be there too
    return list(seen.values())


def python_paths() -> list[Path]:
    """The Python installation, the environment's packages and harness itself."""
    import harness

    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(harness.__file__).resolve().parent}
    for entry in sys.path:
        if entry and Path(entry).is_dir() and "site-packages" in entry:
            paths.add(Path(entry))
    return sorted(paths)


def gpu_devices() -> list[Path]:
    """NVIDIA and DRM device nodes, where there are any."""
    found = sorted(Path("/dev").glob("nvidia*"))
    if Path("/dev/dri").is_dir():
        found.append(Path("/dev/dri"))
    return found


class Sandboxed:
    """A process started in the sandbox: `pid` (as the supervisor sees it), the filter's
    listener and the capture device's descriptors, and the `Popen` of bubblewrap."""

    def __init__(self, command: list[str], layout: Layout, env: dict[str, str], cwd: Path,
                 keep_fds: tuple[int, ...] = ()) -> None:  # fmt: skip
        info_read, info_write = os.pipe()
        self._supervisor_end, inner = socket.socketpair()
        launcher = [sys.executable, "-m", "harness.sandbox.launch", str(inner.fileno()), "--"]
        argv = [
            "bwrap", "--unshare-user", "--unshare-net", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--hostname", "harness-worker", "--info-fd", str(info_write),
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", *layout.arguments(),
            *(["--ro-bind-try", "/sys", "/sys"] if layout.devices else []),
            "--chdir", str(cwd), "--", *launcher, *command,
        ]  # fmt: skip
        # The worker's own output never reaches the console as it is: a thread of the
        # supervisor reads it, removes control characters and logs it (run.log), so the
        # evaluated code cannot draw over or forge the supervisor's lines.
        self.popen = subprocess.Popen(
            argv, env=env, pass_fds=(info_write, inner.fileno(), *keep_fds), cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._output = threading.Thread(
            target=_log_output, args=(self.popen.stdout,), name="worker-output", daemon=True
        )
        self._output.start()
        os.close(info_write)
        inner.close()
        raw = b""
        with os.fdopen(info_read, "rb", buffering=0) as info:
            while b"}" not in raw and (chunk := info.read(4096)):
                raw += chunk
        try:
            self.pid = int(json.loads(raw[: raw.index(b"}") + 1])["child-pid"])
        except (ValueError, KeyError) as exc:
            self.popen.kill()
            raise SandboxUnavailable(f"bubblewrap did not start the sandbox ({exc})") from exc
        self.capture_fd, self.capture_problem = _capture_device(self.pid)
        self._supervisor_end.settimeout(60)
        try:
            _, fds, _, _ = socket.recv_fds(self._supervisor_end, 16, 1)
        except OSError as exc:
            self.popen.kill()
            raise SandboxUnavailable(
                f"the sandbox's launcher did not report ({exc}; its words are in run.log)"
            ) from exc
        if not fds:
            self.popen.kill()
            raise SandboxUnavailable(
                "the sandbox's launcher could not install its seccomp filter (its words are "
                "in run.log)"
            )
        self.filter_fd = fds[0]

    def release(self) -> None:
        """Let the worker run: everything that observes it is in place."""
        self._supervisor_end.sendall(b"go")
        self._supervisor_end.close()


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def clean_line(raw: bytes) -> str:
    """One line of a worker's output as text that cannot drive a terminal: the last of its
    carriage-return segments (a progress bar's final state), control characters removed."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    text = text.rsplit("\r", 1)[-1]
    return _CONTROL.sub("", text)[:2000]


def _log_output(stream) -> None:
    log = logging.getLogger("harness.worker")
    for raw in stream:
        line = clean_line(raw)
        if line.strip():
            log.info("%s", line)
    stream.close()


def _capture_device(pid: int) -> tuple[int | None, str | None]:
    """Make the capture device in the network namespace of `pid`; (fd, None) or (None, why)."""
    if shutil.which("nsenter") is None or shutil.which("ip") is None:
        return None, "nsenter (util-linux) or ip (iproute2) is not installed"
    ours, theirs = socket.socketpair()
    enter = ["nsenter", f"--target={pid}", "--net"]
    if os.geteuid() != 0:
        enter += ["--user", "--preserve-credentials"]
    try:
        done = subprocess.run(
            [*enter, sys.executable, "-m", "harness.sandbox.netcapture", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            capture_output=True,
            text=True,
            timeout=60,
        )
        theirs.close()
        if done.returncode != 0:
            return None, f"could not make the capture device: {done.stderr.strip()[-400:]}"
        ours.settimeout(10)
        _, fds, _, _ = socket.recv_fds(ours, 16, 1)
        return (fds[0], None) if fds else (None, "the capture device was not handed over")
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"could not make the capture device: {exc}"
    finally:
        ours.close()

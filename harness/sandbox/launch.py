"""The first program inside the sandbox, trusted because it runs before any evaluated code:
it installs the worker's seccomp filter, hands the filter's listener to the supervisor, waits
until the supervisor has put its capture device in place, then becomes the worker.

    python -m harness.sandbox.launch CHANNEL_FD -- PROGRAM ARGS...
"""

from __future__ import annotations

import os
import socket
import sys


def main(argv: list[str]) -> int:
    channel_fd, separator, *command = argv
    if separator != "--" or not command:
        print("usage: python -m harness.sandbox.launch CHANNEL_FD -- PROGRAM ARGS", file=sys.stderr)
        return 2
    from harness.sandbox.filter import install_worker_filter

    channel = socket.socket(fileno=int(channel_fd))
    listener = install_worker_filter()
    socket.send_fds(channel, [b"filter"], [listener])
    os.close(listener)
    if channel.recv(2) != b"go":
        return 70  # the supervisor went away: nothing runs unobserved
    channel.close()
    os.execv(command[0], command)
    return 71  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A supervisor thread that serves one descriptor of a worker's (the filter's listener, the
capture device) until stopped, then closes it."""

from __future__ import annotations

import os
import select
import threading


class DescriptorWatcher:
    """Calls `serve_ready()` each time `fd` is readable, on a thread of its own."""

    name = "watcher"

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.fd)

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        with self.serving():
            while not self._stop.is_set():
                ready = poller.poll(200)
                if not ready:
                    continue
                if not ready[0][1] & select.POLLIN:
                    return  # hung up: nothing will come any more
                if not self.serve_ready():
                    return

    def serving(self):
        """A context held while serving (resources of the thread)."""
        from contextlib import nullcontext

        return nullcontext()

    def serve_ready(self) -> bool:
        """Handle what is readable now; False to stop."""
        raise NotImplementedError

"""Join the connections one socket accepts to connections made elsewhere, byte for byte.

Used on both sides of `endpoint:` (harness.sandbox.loopback's `EndpointRelay` in the supervisor,
harness.models.server's forwarder in the worker): the same pump, each in its own process.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class Splice:
    """Accept on `listener` (bound and listening); join each accepted connection to a new one
    from `connect()`, and pump bytes both ways until either end closes. A connection `connect`
    cannot make is dropped. `streams`, `sent` (accepted side -> far side) and `received` count
    what went through."""

    def __init__(
        self, listener: socket.socket, connect: Callable[[], socket.socket], name: str
    ) -> None:
        self._listener = listener
        self._connect = connect
        self._lock = threading.Lock()
        self.streams = self.sent = self.received = 0
        threading.Thread(target=self._accept, name=name, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                inner, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                outer = self._connect()
            except OSError:
                inner.close()
                continue
            with self._lock:
                self.streams += 1
            for source, sink, up in ((inner, outer, True), (outer, inner, False)):
                threading.Thread(target=self._pump, args=(source, sink, up), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                with self._lock:
                    if up:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
        except OSError:
            pass
        finally:
            for end in (sink, source):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Stop accepting (streams already joined run to their end)."""
        self._listener.close()

"""FrameWriter: many threads write frames to one socket without a writer thread.

The first thread to find the writer idle becomes the flusher: it sends what is
queued, then whatever other threads queued meanwhile, joined into one buffer,
until nothing is left. Under load that turns many small frames into few large
`send` calls, and when idle a frame costs one syscall and no thread handoff.

Sockets are non-blocking; a flusher waits for writability with `poll` up to
`write_timeout`, so a peer that stops reading costs one blocked handler thread
for a bounded time and then its connection, never the server's I/O thread (which
only uses `write_nowait`).
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable


class ConnectionLost(Exception):
    """The connection failed or was closed; nothing more can be written."""


class FrameWriter:
    def __init__(
        self,
        sock: socket.socket,
        write_timeout: float,
        on_error: Callable[[BaseException], None],
        offload: Callable[[Callable[[], None]], bool],
    ) -> None:
        self._sock = sock
        self._write_timeout = write_timeout
        self._on_error = on_error
        self._offload = offload
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._flushing = False
        self._error: BaseException | None = None
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLOUT)

    def write(self, data: bytes) -> None:
        """Queue `data`; flush it from this thread unless another thread is flushing.

        May block up to `write_timeout` while the peer is not reading. Raises
        ConnectionLost when the connection is already gone.
        """
        with self._lock:
            if self._error is not None:
                raise ConnectionLost(str(self._error))
            self._pending.append(data)
            if self._flushing:
                return
            self._flushing = True
        self._flush()

    def write_nowait(self, data: bytes) -> None:
        """Queue `data` and send what the socket takes now; never blocks.

        Anything the socket does not take is handed to `offload` (a worker
        thread) to finish. Errors are reported through `on_error`, not raised.
        """
        with self._lock:
            if self._error is not None:
                return
            self._pending.append(data)
            if self._flushing:
                return
            self._flushing = True
            chunk = b"".join(self._pending)
            self._pending.clear()
        try:
            sent = self._sock.send(chunk)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(exc)
            return
        with self._lock:
            if sent < len(chunk):
                self._pending.insert(0, chunk[sent:])
            elif not self._pending:
                self._flushing = False
                return
        if not self._offload(self._flush):
            self._fail(ConnectionLost("no worker free to finish a write"))

    def _flush(self) -> None:
        while True:
            with self._lock:
                if not self._pending or self._error is not None:
                    self._flushing = False
                    return
                chunk = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
                self._pending.clear()
            try:
                self._send_all(chunk)
            except (OSError, ConnectionLost) as exc:
                self._fail(exc)
                return

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        deadline: float | None = None
        while view:
            try:
                sent = self._sock.send(view)
            except BlockingIOError:
                sent = 0
            if sent:
                view = view[sent:]
                deadline = None
                continue
            now = time.monotonic()
            if deadline is None:
                deadline = now + self._write_timeout
            elif now >= deadline:
                raise ConnectionLost(f"peer read nothing for {self._write_timeout:g}s")
            self._poller.poll(max(1.0, (deadline - now) * 1000.0))

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is not None:
                return
            self._error = exc
            self._pending.clear()
            self._flushing = False
        self._on_error(exc)

    def close(self, reason: BaseException | None = None) -> None:
        """Refuse further writes; queued bytes are dropped."""
        with self._lock:
            if self._error is None:
                self._error = reason or ConnectionLost("connection closed")
            self._pending.clear()

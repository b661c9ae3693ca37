"""FrameWriter: many threads write frames to one socket without a writer thread.

The first thread to find the writer idle becomes the flusher: it sends what is
queued, then whatever other threads queued meanwhile, joined into one buffer,
until nothing is left. Under load that turns many small frames into few large
`send` calls, and when idle a frame costs one syscall and no thread handoff.

Sockets are non-blocking. `write` (the client's calling threads) waits for
writability with `poll` up to `write_timeout`. `write_nowait` never waits: what
the socket does not take now is handed to `offload` -- on the server, the poller,
which finishes it when the socket turns writable (`flush_nowait`), so a peer that
stops reading holds no thread at all. Bytes queued that way are capped
(`max_pending`): a peer that lets more pile up is not reading, and its
connection fails. Senders that can wait without a thread (the server's streams)
ask `park_until_drained` to be called back once the queue is below half the cap.

Over TLS or a WebSocket, `transform` (the connection's transport stack, see
transport/) turns frames into wire bytes. It runs under the writer's lock, at
the moment a write's place in the byte stream is fixed, because its output is
ordered (TLS records are numbered): queue order is wire order.
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
        max_pending: int | None = None,
        event_driven: bool = False,
    ) -> None:
        """`offload(finish)` arranges for `finish` to run later: with `event_driven`,
        once the socket is writable (it sends what it can and offloads again);
        otherwise on a thread that may block (it sends everything)."""
        self._sock = sock
        self._write_timeout = write_timeout
        self._on_error = on_error
        self._offload = offload
        self._max_pending = max_pending
        self._event_driven = event_driven
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flushing = False
        self._error: BaseException | None = None
        self._drained: list[Callable[[], None]] = []
        self.sealed = False
        """A write marked `last` was queued (a GOAWAY that ends the connection):
        later writes are dropped, so it stays the last frame on the wire."""
        self.stalled_since: float | None = None
        """`time.monotonic()` since when queued bytes wait for the peer to read; None
        while the queue is empty (the owner enforces `write_timeout` with it)."""
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLOUT)
        self.transform: Callable[[bytes], bytes] | None = None
        """Frames -> wire bytes (transport layers); None sends frames as they are.
        Set it before the first write that needs it; it must not raise."""

    def write(self, data: bytes) -> None:
        """Queue `data`; flush it from this thread unless another thread is flushing.

        May block up to `write_timeout` while the peer is not reading. Raises
        ConnectionLost when the connection is already gone.
        """
        with self._lock:
            if self._error is not None:
                raise ConnectionLost(str(self._error))
            if self.sealed:
                raise ConnectionLost("the connection is closing")
            if self.transform is not None:
                data = self.transform(data)
            if self._flushing:
                self._pending.append(data)
                self._pending_bytes += len(data)
                return
            self._flushing = True
        # The flusher, and the queue was empty (nobody flushing means nothing queued):
        # send `data` at once; `_flush` finishes it and what others queued meanwhile.
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(exc)
            return
        if sent < len(data):
            rest = data[sent:]
            with self._lock:
                self._pending.insert(0, rest)
                self._pending_bytes += len(rest)
        self._flush()

    @property
    def backed_up(self) -> bool:
        """More than half of `max_pending` is queued: senders that can wait should."""
        return self._max_pending is not None and self._pending_bytes > self._max_pending // 2

    @property
    def idle(self) -> bool:
        """Nothing queued and nobody sending."""
        return not self._flushing

    def fail(self, reason: str) -> None:
        """Give up on the connection (e.g. the peer stopped reading): reported via `on_error`."""
        self._fail(ConnectionLost(reason))

    def park_until_drained(self, resume: Callable[[], None]) -> bool:
        """Call `resume` once the queue is below half the cap (or the writer failed);
        False, and nothing parked, if that is already so."""
        # Read without the lock: the common case, and a stale answer costs at most one
        # more batch queued, still under `max_pending`.
        if not self.backed_up:
            return False
        with self._lock:
            if self._error is None and self.backed_up:
                self._drained.append(resume)
                return True
        return False

    def write_nowait(self, data: bytes, last: bool = False) -> None:
        """Queue `data` and send what the socket takes now; never blocks.

        Anything the socket does not take is handed to `offload` to finish.
        Errors are reported through `on_error`, not raised. With `last`, nothing
        written after it goes out (`sealed`).
        """
        with self._lock:
            if self._error is not None or self.sealed:
                return
            self.sealed = last
            if self.transform is not None:
                data = self.transform(data)
            if not self._flushing:
                # The flusher, with nothing queued (see `write`): send `data` at once.
                self._flushing = True
                idle, over = True, False
            else:
                idle = False
                self._pending.append(data)
                self._pending_bytes += len(data)
                over = self._max_pending is not None and self._pending_bytes > self._max_pending
                if not over:
                    return
        if idle:
            try:
                sent = self._sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._fail(exc)
                return
            with self._lock:
                if sent < len(data):
                    rest = data[sent:]
                    self._pending.insert(0, rest)
                    self._pending_bytes += len(rest)
                    over = self._max_pending is not None and self._pending_bytes > self._max_pending
                elif not self._pending:
                    self._flushing = False
                    self.stalled_since = None
                    return
            if not over:
                self.flush_nowait()
                return
        if over:
            self._fail(
                ConnectionLost(
                    f"peer is not reading: {self._pending_bytes} bytes queued for it "
                    f"(limit {self._max_pending})"
                )
            )
            return
        self.flush_nowait()

    def flush_nowait(self) -> None:
        """Send what the socket takes now; what remains goes to `offload` again.

        The flushing role stays with the writer until the queue is empty, so only
        one thread sends at a time and bytes keep their order. Frames other threads
        queued meanwhile go out in the same call while the socket keeps taking
        everything: handing them to `offload` would cost a wake-up per burst.
        """
        while True:
            with self._lock:
                if self._error is not None:
                    return
                if not self._pending:
                    self._flushing = False
                    self.stalled_since = None
                    return
                chunk = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
                self._pending.clear()
            try:
                sent = self._sock.send(chunk)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._fail(exc)
                return
            drained: list[Callable[[], None]] = []
            with self._lock:
                self._pending_bytes -= sent
                complete = sent == len(chunk)
                if not complete:
                    self._pending.insert(0, chunk[sent:])
                    if sent or self.stalled_since is None:
                        self.stalled_since = time.monotonic()
                if self._drained and not self.backed_up:
                    drained, self._drained = self._drained, []
            for resume in drained:
                resume()
            if not complete:
                if not self._offload(self.flush_nowait if self._event_driven else self._flush):
                    self._fail(ConnectionLost("cannot finish a write"))
                return

    def _flush(self) -> None:
        while True:
            with self._lock:
                if not self._pending or self._error is not None:
                    self._flushing = False
                    return
                chunk = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
                self._pending.clear()
                self._pending_bytes -= len(chunk)
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
            self._pending_bytes = 0
            self._flushing = False
            drained, self._drained = self._drained, []
        self._on_error(exc)
        for resume in drained:
            resume()

    def forget_after_fork(self, reason: BaseException) -> None:
        """In a child process after fork: refuse every write, sending nothing.

        Runs alone in the child (forksafe.py), so it takes no lock: the inherited one
        may be held by a parent thread that does not exist here, hence a new one. The
        queue is the parent's to send; parked senders are the parent's threads.
        """
        self._lock = threading.Lock()
        self._error = reason
        self._pending = []
        self._pending_bytes = 0
        self._flushing = False
        self._drained = []

    def close(self, reason: BaseException | None = None) -> None:
        """Refuse further writes; queued bytes are dropped."""
        with self._lock:
            if self._error is None:
                self._error = reason or ConnectionLost("connection closed")
            self._pending.clear()
            self._pending_bytes = 0
            drained, self._drained = self._drained, []
        for resume in drained:
            resume()

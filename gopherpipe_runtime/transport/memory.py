"""memory://name: a server and its clients in one process, with no port and no path.

For tests (gopherpipe_runtime.testing): everything above the socket -- the
handshake, frames, flow control, codecs, interceptors, stubs -- is the real
code, and nothing is reachable from outside the process.

Mechanism. Each connection is a `socket.socketpair()`: a connected pair of
anonymous Unix stream sockets, bound to no address (no TCP port, no file on
disk; only this process holds their descriptors). A truly socket-less pipe
would need a second I/O path through the server's selector, the client's
leader/reader polling and the writer's non-blocking sends, all of which work
on file descriptors; a socketpair keeps one path, so what a test exercises is
what production runs. The "listener" is a `MemoryListener`: a socket whose
readable end is a doorbell (the read side of another socketpair) that `dial`
rings after queueing the server's end of a new pair, and whose `accept()`
hands that end out. So the server's selector and accept loop treat it as any
listener, and an asyncio runtime could use the same sockets. Names live in a
process-wide registry from listen() until close(); a forked child is refused
(the server's threads stayed in the parent).
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections import deque
from typing import Any

from ..address import Address

_registry: dict[str, MemoryListener] = {}
_registry_lock = threading.Lock()

PEER = "memory"
"""The peer text of a memory connection (what `current_call().peer` reads)."""


class MemoryListener(socket.socket):
    """The server side of memory://name: readable when a connection waits in `accept`."""

    def __init__(self, name: str) -> None:
        doorbell, self._bell = socket.socketpair()
        super().__init__(fileno=doorbell.detach())
        self.name = name
        self.pid = os.getpid()
        self._waiting: deque[socket.socket] = deque()
        self._lock = threading.Lock()

    def accept(self) -> tuple[socket.socket, Any]:
        # One byte per queued connection; a non-blocking listener raises
        # BlockingIOError here when none waits, as a real one does.
        if not self.recv(1):
            raise OSError(errno.EBADF, "memory listener closed")
        with self._lock:
            if not self._waiting:  # a byte with no connection: not ours (see connect)
                raise BlockingIOError(errno.EAGAIN, "no connection waiting")
            return self._waiting.popleft(), PEER

    def connect_pair(self, timeout: float | None) -> socket.socket:
        ours, theirs = socket.socketpair()
        ours.settimeout(timeout)
        with self._lock:
            self._waiting.append(theirs)
        try:
            self._bell.send(b"\0")
        except OSError:
            ours.close()
            raise ConnectionRefusedError(f"in-memory server memory://{self.name} closed") from None
        return ours

    def close(self) -> None:
        with _registry_lock:
            if _registry.get(self.name) is self:
                del _registry[self.name]
        self._bell.close()
        with self._lock:
            while self._waiting:
                self._waiting.popleft().close()
        super().close()


def listen(address: Address) -> tuple[socket.socket, Address]:
    name = address.path
    with _registry_lock:
        if name in _registry:
            raise OSError(errno.EADDRINUSE, f"memory://{name} is already being served")
        listener = MemoryListener(name)
        _registry[name] = listener
    return listener, address


def connect(address: Address, timeout: float | None) -> socket.socket:
    with _registry_lock:
        listener = _registry.get(address.path)
    if listener is None:
        raise ConnectionRefusedError(
            f"no server is serving memory://{address.path} in this process"
        )
    if listener.pid != os.getpid():
        # A forked child inherits the registry and the doorbell, but the server's
        # threads and queue stay in the parent: ringing would only confuse it.
        raise ConnectionRefusedError(
            f"memory://{address.path} is served by process {listener.pid}, "
            "not reachable from a forked child"
        )
    return listener.connect_pair(timeout)

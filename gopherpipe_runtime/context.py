"""`current_call()`: what a handler can learn about the call it is serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from .transport import PeerIdentity


class Peer(str):
    """Who is calling: the peer's address as text ("127.0.0.1:51234", "unix"), and
    what the transport proved about it.

    A `str`, so code that logs or compares the address keeps working; `transport`
    is the scheme the call came over ("tcp", "unix", "tls", "ws", "wss") and
    `identity` the client's verified certificate (subject and SANs) when the
    server requires one (mTLS), else None.
    """

    transport: str
    identity: PeerIdentity | None

    def __new__(
        cls, address: str, transport: str = "tcp", identity: PeerIdentity | None = None
    ) -> Peer:
        peer = super().__new__(cls, address)
        peer.transport = transport
        peer.identity = identity
        return peer

    @property
    def address(self) -> str:
        return str.__str__(self)


class CallContext:
    """One call as the server sees it. Read it from the handler's own thread."""

    __slots__ = ("_cancelled", "deadline", "metadata", "method", "peer", "service")

    def __init__(
        self,
        service: str,
        method: str,
        metadata: Mapping[str, str],
        peer: str,
        deadline: float | None,
    ) -> None:
        self.service = service
        self.method = method
        self.metadata = metadata
        self.peer = peer
        self.deadline = deadline
        """`time.monotonic()` value after which the caller has given up, or None."""
        self._cancelled = False

    def time_remaining(self) -> float | None:
        """Seconds until the deadline (never negative), or None without a deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    @property
    def cancelled(self) -> bool:
        """True once the caller cancelled, its deadline passed, or its connection dropped.

        Long handlers should poll this and stop early: nobody will read their result.
        """
        return self._cancelled or (self.deadline is not None and time.monotonic() > self.deadline)

    def cancel(self) -> None:
        self._cancelled = True


_local = threading.local()


def current_call() -> CallContext:
    """The call being served on this thread; RuntimeError outside a handler."""
    call: CallContext | None = getattr(_local, "call", None)
    if call is None:
        raise RuntimeError("current_call() used outside a GopherPipe handler")
    return call


def set_current_call(call: CallContext | None) -> None:
    _local.call = call

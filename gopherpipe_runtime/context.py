"""`current_call()`: what a handler can learn about the call it is serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from .calls import CancelToken
from .service import MethodKind
from .transport import PeerIdentity
from .wire.envelope import DEFAULT_MAX_METADATA_SIZE, metadata_size


class Peer(str):
    """Who is calling: the peer's address as text ("127.0.0.1:51234", "unix", "memory"), and
    what the transport proved about it.

    A `str`, so code that logs or compares the address keeps working; `transport`
    is the scheme the call came over ("tcp", "unix", "tls", "ws", "wss", "memory") and
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
    """One call as the server sees it. Read it from the handler's own thread.

    Read-only for handlers and interceptors: `service`, `method`, `kind`,
    `metadata` (what the client sent), `peer`, `deadline`, `started`. What a
    handler may change goes through methods: `set_headers`, `set_trailers`,
    `propagate`. Interceptors keep per-call state in `state`.
    """

    __slots__ = (
        "_cancel_token",
        "_cancelled",
        "_headers",
        "_headers_sent",
        "_max_metadata_size",
        "_state",
        "_trailers",
        "deadline",
        "kind",
        "metadata",
        "method",
        "peer",
        "propagated",
        "service",
        "started",
    )

    side: ClassVar[str] = "server"

    def __init__(
        self,
        service: str,
        method: str,
        metadata: Mapping[str, str],
        peer: str,
        deadline: float | None,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
    ) -> None:
        self.service = service
        self.method = method
        self.metadata = metadata
        self.peer = peer
        self.deadline = deadline
        """`time.monotonic()` value after which the caller has given up, or None."""
        self.kind: MethodKind | None = None
        """The call's shape, once the method is known."""
        self.started = time.monotonic()
        """When the call arrived (`time.monotonic()`)."""
        self.propagated: dict[str, str] | None = None
        """Metadata that calls this handler makes pass on (`propagate`), or None."""
        self._cancelled = False
        self._cancel_token: CancelToken | None = None
        self._headers: dict[str, str] | None = None
        self._headers_sent = False
        self._trailers: dict[str, str] | None = None
        self._max_metadata_size = max_metadata_size
        self._state: dict[Any, Any] | None = None

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
        token = self._cancel_token
        if token is not None:
            token.cancel(f"the call being served ({self.service}.{self.method}) was cancelled")

    @property
    def cancel_token(self) -> CancelToken:
        """Cancelled with this call: the calls its handler makes to other services
        carry it, so cancelling the caller cancels them too."""
        token = self._cancel_token
        if token is None:
            token = self._cancel_token = CancelToken()
            if self._cancelled:
                token.cancel(f"the call being served ({self.service}.{self.method}) was cancelled")
        return token

    @property
    def state(self) -> dict[Any, Any]:
        """A dict for interceptors to keep what they need from `intercept` to `on_end`
        (a span, a start time), keyed by something of their own."""
        if self._state is None:
            self._state = {}
        return self._state

    def set_headers(self, headers: Mapping[str, str]) -> None:
        """Response headers: sent in a HEADERS frame when the handler returns (before a
        stream's first item). Merged over earlier ones; ValueError once they were sent
        or beyond the server's `max_metadata_size`."""
        if self._headers_sent:
            raise ValueError("response headers were already sent")
        self._headers = self._merged(self._headers, headers, "headers")

    def set_trailers(self, trailers: Mapping[str, str]) -> None:
        """Response trailers: sent with the call's final STATUS, on success and on error
        (set them, then raise the RpcError). Merged over earlier ones; ValueError
        beyond the server's `max_metadata_size`."""
        self._trailers = self._merged(self._trailers, trailers, "trailers")

    def propagate(self, key: str, value: str | None = None) -> None:
        """Make calls this handler makes to other services carry `key` (with `value`,
        or with the value the client sent), as they carry the deadline."""
        if value is None:
            value = self.metadata.get(key)
            if value is None:
                return
        merged = self._merged(self.propagated, {key: value}, "propagated metadata")
        self.propagated = merged

    def _merged(
        self, current: dict[str, str] | None, more: Mapping[str, str], what: str
    ) -> dict[str, str]:
        merged = dict(current) if current else {}
        for key, value in more.items():
            if type(key) is not str or type(value) is not str:
                raise TypeError(f"{what} map str to str, not {key!r}: {value!r}")
            merged[key] = value
        size = metadata_size(merged)
        if size > self._max_metadata_size:
            raise ValueError(
                f"{what} of {size} bytes exceed the limit of {self._max_metadata_size} "
                f"(max_metadata_size)"
            )
        return merged


_local = threading.local()


def current_call() -> CallContext:
    """The call being served on this thread; RuntimeError outside a handler."""
    call: CallContext | None = getattr(_local, "call", None)
    if call is None:
        raise RuntimeError("current_call() used outside a GopherPipe handler")
    return call


def set_current_call(call: CallContext | None) -> None:
    _local.call = call


def serving_call() -> CallContext | None:
    """The call being served on this thread, or None (for onward calls: deadline and
    metadata propagation)."""
    return getattr(_local, "call", None)

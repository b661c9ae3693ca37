"""What a client has in hand about its own calls, beyond their results.

- `ClientCall`: one call as client-side interceptors see it (the server-side
  counterpart is `context.CallContext`).
- `CancelToken`: cancel calls from another thread. Pass it with
  ``client.with_options(cancel=token)``; ``token.cancel()`` ends every call made
  with it that is still running with CANCELLED, and the server is told (CANCEL).
  One token may serve many calls, as Go's context or .NET's CancellationToken.
- `response_metadata()`: the response headers and trailers of the calls made in a
  ``with`` block on this thread (unary, client-stream and the streams opened in
  it), without changing what the stub methods return -- gRPC's ``with_call``
  doubles every method instead. A failed call carries them on its `RpcError`
  (``.headers``, ``.trailers``) in any case.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from .service import MethodKind
from .status import StatusCode


class ClientCall:
    """One call as client-side interceptors see it.

    `metadata` is the one field meant to be changed (an auth interceptor adds a
    token to it before the call goes out); `service`, `method`, `kind`,
    `deadline` (`time.monotonic()` value, or None), `peer` (the address dialled)
    and `started` are read-only. `state` is for interceptors' own per-call data.
    """

    __slots__ = ("_state", "deadline", "kind", "metadata", "method", "peer", "service", "started")

    side: ClassVar[str] = "client"

    def __init__(
        self,
        service: str,
        method: str,
        kind: MethodKind,
        metadata: dict[str, str],
        deadline: float | None,
        peer: str,
        started: float,
    ) -> None:
        self.service = service
        self.method = method
        self.kind = kind
        self.metadata = metadata
        self.deadline = deadline
        self.peer = peer
        self.started = started
        self._state: dict[Any, Any] | None = None

    @property
    def state(self) -> dict[Any, Any]:
        if self._state is None:
            self._state = {}
        return self._state


class CancelToken:
    """Cancels the calls made with it, from any thread; see the module docstring.

    A call made with a token that is already cancelled fails at once with
    CANCELLED and sends nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._callbacks: dict[int, Callable[[str], None]] = {}
        self._ids = itertools.count()

    @property
    def cancelled(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        return self._reason

    def cancel(self, reason: str = "cancelled by the caller") -> None:
        """End every call still running with this token (idempotent)."""
        with self._lock:
            if self._reason is not None:
                return
            self._reason = reason
            callbacks, self._callbacks = self._callbacks, {}
        for callback in callbacks.values():
            callback(reason)

    def _register(self, callback: Callable[[str], None]) -> int | None:
        """Run `callback(reason)` on cancel; None (not registered) if already cancelled."""
        with self._lock:
            if self._reason is not None:
                return None
            key = next(self._ids)
            self._callbacks[key] = callback
            return key

    def _unregister(self, key: int | None) -> None:
        if key is not None:
            with self._lock:
                self._callbacks.pop(key, None)


class ResponseMetadata:
    """What `response_metadata()` collects: the last call's headers, trailers and code.

    For a stream, `trailers` and `code` are filled when the stream ends (after
    iterating its output); `headers` when they arrive.
    """

    def __init__(self) -> None:
        self.headers: Mapping[str, str] = {}
        self.trailers: Mapping[str, str] = {}
        self.code: StatusCode | None = None
        """None until the last call made in the block has ended."""


_captures = threading.local()


@contextmanager
def response_metadata() -> Iterator[ResponseMetadata]:
    """Collect the response metadata of calls made on this thread in the block::

        with response_metadata() as meta:
            user = client.get_user(42)
        print(meta.headers, meta.trailers)

    With several calls in the block it holds the last one's; blocks nest.
    """
    captured = ResponseMetadata()
    outer = getattr(_captures, "current", None)
    _captures.current = captured
    try:
        yield captured
    finally:
        _captures.current = outer


def current_capture() -> ResponseMetadata | None:
    """The innermost `response_metadata()` block on this thread, if any."""
    return getattr(_captures, "current", None)


__all__ = ["CancelToken", "ClientCall", "ResponseMetadata", "current_capture", "response_metadata"]

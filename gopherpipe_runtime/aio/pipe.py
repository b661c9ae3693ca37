"""Pipe on asyncio: the client-side handle to one service address, for tasks.

The same addresses, options, endpoint policy and wire as the threaded
`gopherpipe_runtime.Pipe` (pipe.py: read its docstring for the policy); only the
I/O is the event loop's. Map of this module:

  Pipe          options, endpoints (a plain address, a list, a discovery address
                through resolver.py), balancing (round_robin / pick_first),
                reconnect backoff, wait_for_ready, resending (`_again`: a call the
                server never saw goes again at once, an `idempotent` one is retried
                with the `RetryPolicy`), the loop binding, `unary`, `stream`, `close`
  _Endpoint     one server: its connection, the connect in progress, its backoff
  _Connection   one connection's client state: the HELLO exchange, a table of unary
                calls (futures) and streams by id, frame dispatch, GOAWAY, keepalive
                PINGs on loop timers, the connection window, CANCEL
  _ClientConn   aio/connection.Connection, plus when bytes were last read (keepalive)
                and the `write_timeout` watch while the transport is paused
  _Stream       one streaming call's state, in its connection's table: opening (at
                once on a live connection, else in a task that connects), what the
                server streams (aio/stream.Inbound), its source going out through
                aio/stream.send_stream (a task), the deadline timer, the end
  StreamCall    what the caller holds over a _Stream: an async iterator of decoded
                items, `result()`, `cancel()`, `aclose()`, headers and trailers

Loop binding. A Pipe is made anywhere (no loop needed); each endpoint's connection
is made lazily by the first call, on the loop that call runs on, and belongs to that
loop. A call on another loop finds the Pipe bound to the first one: if that loop is
closed or stopped (``asyncio.run()`` returned), its connections are dropped -- calls
left on them end with UNAVAILABLE -- and new ones are made on the current loop; if it
is still running (another thread's loop), the call raises RuntimeError saying so
rather than touching another loop's objects. Each connection has one small task
(`_Connection._guard`) that waits for the connection's end: when ``asyncio.run()``
cancels what is left at its end, that task closes the connection, so nothing of a
finished loop leaks into the next one.

Cancellation. A unary call's deadline is an `asyncio.timeout` around the whole
call (connecting and resending included) and is sent as the CALL's timeout_ms; the
task awaiting it being cancelled -- by the deadline or by anybody -- sends CANCEL and
forgets the call, as does a `CallOptions.cancel` token (which may be cancelled from
any thread: it hops onto the loop). A stream ends at its deadline by a loop timer;
it is cancelled (CANCEL sent) when the task reading it -- the last one to await its
`__anext__` or `result()`, or until one does, the one that opened it -- is
cancelled, wherever that task was waiting (a `done` callback: a reader cancelled
in a sleep between two items counts too), by `cancel()` / `aclose()`, and when its
StreamCall is dropped unfinished. Whatever ends a stream stops its source (an
async generator is closed, an aio `Chan` closed) and frees its flow-control windows,
so cancelled streams leave no task and no buffer behind.

Interceptors (``interceptors=``, the threaded runtime's `Interceptor`s, unchanged).
`intercept(call, proceed)` is synchronous: it runs before the call goes out (it may
change ``call.metadata`` or refuse with an RpcError), and ``proceed()`` returns the
call's awaitable, which the Pipe awaits when `intercept` returns it -- what the
shipped ones (token auth, tracing, logging) do. So an interceptor that inspects the
*result* of ``proceed()`` sees an awaitable here, not the answer; `on_end` sees how
the call ended, `on_send` / `on_receive` every stream item, as in the threaded Pipe.

Every option of the threaded Pipe is honoured (`REFUSED_OPTIONS` is empty). The
threaded ``response_metadata()`` block (thread-local) is not read: a StreamCall has
`headers` / `trailers`, and a failed call's RpcError carries both.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import os
import random
import ssl
import threading
import time
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Self, TypeVar

from .. import forksafe, keepalive
from ..address import Address, parse_address
from ..calls import ClientCall
from ..chan import ChanClosed
from ..compression import DEFAULT_THRESHOLD, offer_for, wrap
from ..flow import (
    DEFAULT_CONNECTION_WINDOW_BYTES,
    DEFAULT_STREAM_WINDOW,
    DEFAULT_STREAM_WINDOW_BYTES,
    Credit,
    Inflow,
    ReceiveWindow,
    SendWindow,
    Windows,
)
from ..interceptors import Chain, Interceptor
from ..pipe import CallOptions, _inherit, _with_metadata, checked_options
from ..resolver import Resolver, is_discovery_address, resolver_for
from ..retry import NO_BUDGET, RetryBudget, RetryPolicy
from ..service import MethodKind
from ..status import CancelledError as RpcCancelledError
from ..status import (
    DeadlineExceededError,
    InvalidArgumentError,
    ResourceExhaustedError,
    RpcError,
    StatusCode,
    UnavailableError,
)
from ..stream import PumpOutcome, message_frames
from ..transport import TransportError
from ..wire import frames
from ..wire.codec import (
    DEFAULT_CODECS,
    DEFAULT_MAX_DECODED_SIZE,
    DEFAULT_MAX_NESTING_DEPTH,
    Codec,
    CodecError,
    CodecLimitError,
    codecs_with_limits,
)
from ..wire.envelope import (
    DEFAULT_MAX_METADATA_SIZE,
    MAX_TIMEOUT_MS,
    LimitExceeded,
    decode_headers,
    decode_status_with_trailers,
    encode_call,
    metadata_size,
)
from ..wire.frames import (
    MAX_HELLO_SIZE,
    PREFACE,
    Frame,
    FrameType,
    ProtocolError,
    decode_goaway,
    encode_frame,
    encode_goaway,
    encode_stream_frame,
)
from ..wire.handshake import HandshakeError, Settings, client_accept, client_hello
from .chan import Chan
from .connection import Connection, open_connection
from .context import serving_call
from .stream import Inbound, send_stream

log = logging.getLogger("gopherpipe.aio.client")

_T = TypeVar("_T")
_DEFAULT_RETRY = RetryPolicy()
_OK = 0
_UNKNOWN = StatusCode.UNKNOWN.value
_CANCEL = FrameType.CANCEL

REFUSED_OPTIONS: tuple[str, ...] = ()
"""Options of the threaded Pipe this one cannot honour (none: every one is honoured)."""

_Answer = tuple[int, str, Any, "dict[str, str] | None", "dict[str, str] | None", bool]
"""What a unary call's future resolves to: code, message, result, headers, trailers,
and whether the server provably never processed it (GOAWAY named an older stream)."""


class _NotProcessed(Exception):
    """The server never saw this call (GOAWAY named an older stream, or the connection
    had failed before the CALL was written): safe to resend."""


class _Unreachable(UnavailableError):
    """No connection could be made: the call was not sent (see pipe.py's)."""


def _given_up(error: UnavailableError, attempts: int, why: str) -> UnavailableError:
    notes = [f"{attempts} attempts"] if attempts > 1 else []
    if why:
        notes.append(why)
    if notes:
        return UnavailableError(f"{error.message} ({'; '.join(notes)})")
    return UnavailableError(error.message) if type(error) is _Unreachable else error


def _error(
    code: int, message: str, headers: dict[str, str] | None, trailers: dict[str, str] | None
) -> RpcError:
    error = RpcError(code, message)
    if headers:
        error.headers = headers
    if trailers:
        error.trailers = trailers
    return error


def _deadline(timeout: float | None) -> float | None:
    """The `time.monotonic()` value a call gives up at (capped as the wire caps it)."""
    if timeout is None:
        return None
    return time.monotonic() + min(MAX_TIMEOUT_MS / 1000, timeout)


class _Unary:
    """One unary call waiting for its STATUS."""

    __slots__ = ("future", "headers", "stream_id")

    def __init__(self, stream_id: int, future: asyncio.Future[_Answer]) -> None:
        self.stream_id = stream_id
        self.future = future
        self.headers: dict[str, str] | None = None


class _ClientConn(Connection):
    """The shared `Connection`, plus what the client's keepalive and write timeout need."""

    def __init__(
        self,
        on_frames: Callable[[list[Frame]], None],
        on_lost: Callable[[BaseException | None], None],
        write_timeout: float,
    ) -> None:
        super().__init__(on_frames, on_lost)
        self.last_read = time.monotonic()
        """When bytes last arrived (any bytes prove the server lives: RFC §8.1)."""
        self._write_timeout = write_timeout
        self._stalled: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        self.last_read = time.monotonic()
        super().data_received(data)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None and self._loop is not None:
            self._stalled = self._loop.call_later(self._write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        super().connection_lost(exc)

    def _write_timed_out(self) -> None:
        self._stalled = None
        if self.paused:
            self.fail(
                ConnectionError(
                    f"write timeout: the server read nothing for {self._write_timeout:g}s"
                )
            )


class _Connection:
    """One connection's client side; every method runs on its loop (see the module map)."""

    def __init__(
        self,
        pipe: Pipe,
        address: str,
        loop: asyncio.AbstractEventLoop,
        keepalive_interval: float | None,
    ) -> None:
        self.address = address
        self.loop = loop
        self.conn: _ClientConn | None = None
        self.settings: Settings | None = None
        self.codec: Codec | None = None
        self.calls: dict[int, _Unary] = {}
        self.streams: dict[int, _Stream] = {}
        self._ids = itertools.count(1)
        self.closed_reason: str | None = None
        self.goaway = False
        self.draining: str | None = None
        """Why it takes no new calls and closes once its last call or stream ends."""
        self.too_many_pings = False
        self.send_window: SendWindow | None = None
        self.receive_window = ReceiveWindow(pipe._windows.connection_bytes)
        self.windows = pipe._windows
        self.max_metadata_size = pipe._max_metadata_size
        self._hello: asyncio.Future[list[Frame]] = loop.create_future()
        self._behind_hello: list[Frame] = []
        self._ended: asyncio.Future[None] = loop.create_future()
        self._guard_task: asyncio.Task[None] | None = None
        self._keepalive_interval = keepalive_interval
        self._keepalive_timeout = pipe._keepalive_timeout
        self._keepalive: asyncio.TimerHandle | None = None
        self._ping_sent_at: float | None = None
        self._pings = 0

    @property
    def usable(self) -> bool:
        return self.closed_reason is None and not self.goaway

    # -- opening ------------------------------------------------------------------------

    async def open(
        self,
        parsed: Address,
        tls: ssl.SSLContext | None,
        codecs: tuple[str, ...],
        max_frame_size: int,
        write_timeout: float,
        compression: tuple[str, ...],
        codec_table: Mapping[str, Codec],
        threshold: int,
        timeout: float,
    ) -> None:
        """Dial, exchange HELLO; raises OSError, ProtocolError, HandshakeError, TimeoutError."""
        async with asyncio.timeout(timeout):
            conn, early = await open_connection(
                parsed,
                lambda: _ClientConn(self._on_frames, self._on_lost, write_timeout),
                tls=tls,
                timeout=timeout,
            )
            assert isinstance(conn, _ClientConn)
            self.conn = conn
            try:
                conn.decoder.max_frame_size = MAX_HELLO_SIZE
                offer = client_hello(codecs, max_frame_size, self.windows, compression)
                conn.write(PREFACE + encode_frame(FrameType.HELLO, offer))
                conn.feed(early)
                received = await self._hello
                first = received[0]
                if first.type == FrameType.GOAWAY:
                    raise HandshakeError(decode_goaway(first.payload)[2])
                if first.type != FrameType.HELLO:
                    raise ProtocolError("server's first frame is not HELLO")
                settings = client_accept(first.payload, codecs, compression)
            except BaseException:
                self.closed_reason = "handshake failed"
                conn.abort()
                raise
        conn.decoder.max_frame_size = max_frame_size
        self.settings = settings
        self.send_window = SendWindow(settings.peer_windows.connection_bytes)
        self.codec = wrap(
            codec_table[settings.codec],
            settings.compression,
            threshold,
            max_frame_size,
            settings.peer_max_frame_size,
        )
        self._guard_task = self.loop.create_task(self._guard(), name="gopherpipe-aio-connection")
        if self._keepalive_interval is not None:
            self._keepalive = self.loop.call_later(self._keepalive_interval, self._keepalive_check)
        # What came behind the HELLO is the connection's: a server that began draining
        # as we connected sends its GOAWAY right after it (RFC section 8).
        behind, self._behind_hello = received[1:] + self._behind_hello, []
        if behind:
            self._on_frames(behind)

    async def _guard(self) -> None:
        """Wait for the connection's end; if the loop cancels this first (the end of
        ``asyncio.run()``), close the connection on the loop that owns it."""
        try:
            await self._ended
        except asyncio.CancelledError:
            self.shut("the event loop of this connection is shutting down")
            raise

    # -- reading ------------------------------------------------------------------------

    def _on_lost(self, error: BaseException | None) -> None:
        if self.settings is None:
            if not self._hello.done():
                self._hello.set_exception(
                    error
                    if error is not None
                    else ConnectionError("server closed the connection during the handshake")
                )
                # Marked retrieved: a transport handshake failing reaches `open` as
                # open_connection's own exception, and nobody awaits this one then.
                self._hello.exception()
            return
        if error is None:
            self.shut("connection closed by server")
        elif isinstance(error, ProtocolError):
            self.shut(f"protocol error from server: {error}")
        else:
            self.shut(f"connection lost: {error}")

    def _on_frames(self, received: list[Frame]) -> None:
        if self.settings is None:  # the HELLO exchange is under way
            if not self._hello.done():
                self._hello.set_result(received)
            else:  # read before the handshake's task took the HELLO
                self._behind_hello += received
            return
        try:
            self._dispatch(received)
        except ProtocolError as exc:
            log.warning("protocol error from %s: %s", self.address, exc)
            # RFC §8: the side that detects it says why, as the last frame, then closes.
            last = max(self.streams, default=0)
            goaway = encode_goaway(last, StatusCode.INTERNAL, f"protocol error: {exc}"[:1000])
            if self.conn is not None:
                self.conn.close(goaway)
            self.shut(f"protocol error from server: {exc}")
        except Exception as exc:
            # A bug here must not leave every call on this connection waiting forever.
            log.exception("failed to handle frames from %s", self.address)
            self.shut(f"client failed reading from server: {exc!r}")

    def _dispatch(self, received: list[Frame]) -> None:
        codec = self.codec
        assert codec is not None
        for frame in received:
            frame_type = frame.type
            if frame_type == FrameType.STATUS:
                try:
                    code, message, result, trailers = decode_status_with_trailers(
                        codec, frame.payload
                    )
                except LimitExceeded as exc:
                    code, message, result, trailers = (
                        StatusCode.RESOURCE_EXHAUSTED,
                        f"answer refused: {exc}",
                        None,
                        None,
                    )
                except ProtocolError as exc:
                    code, message, result = StatusCode.INTERNAL, f"malformed STATUS: {exc}", None
                    trailers = None
                if trailers is not None and metadata_size(trailers) > self.max_metadata_size:
                    code, message, result, trailers = (
                        StatusCode.RESOURCE_EXHAUSTED,
                        f"answer refused: trailers of {metadata_size(trailers)} bytes exceed "
                        f"the client's limit of {self.max_metadata_size} (max_metadata_size)",
                        None,
                        None,
                    )
                call = self.calls.pop(frame.stream_id, None)
                if call is not None:
                    if not call.future.done():
                        call.future.set_result(
                            (code, message, result, call.headers, trailers, False)
                        )
                    if self.draining is not None:
                        self.close_if_drained()
                    continue
                stream = self.streams.pop(frame.stream_id, None)
                if stream is not None:
                    stream.trailers = trailers
                    stream._end(code, message, result)
                    if self.draining is not None:
                        self.close_if_drained()
            elif frame_type == FrameType.MESSAGE:
                stream = self.streams.get(frame.stream_id)
                inbound = None if stream is None else stream._inbound
                if inbound is None:
                    continue  # cancelled while in flight, or a client stream (ignored)
                try:
                    items = codec.decode(frame.payload)
                except CodecLimitError as exc:
                    raise ProtocolError(f"MESSAGE refused: {exc}") from None
                except CodecError as exc:
                    raise ProtocolError(f"malformed MESSAGE: {exc}") from None
                if type(items) is not list or not items:
                    raise ProtocolError("MESSAGE body is not a non-empty array")
                if not inbound.deliver(items, len(frame.payload)):
                    raise ProtocolError(f"stream {frame.stream_id} sent beyond its credit")
            elif frame_type == FrameType.CREDIT:
                stream = self.streams.get(frame.stream_id)
                if stream is not None and stream._credit is not None:
                    stream._credit.grant(*frames.decode_credit(frame.payload))
            elif frame_type == FrameType.CANCEL:
                # The server stops reading our stream; the call goes on until its STATUS.
                stream = self.streams.get(frame.stream_id)
                if stream is not None and stream._credit is not None:
                    stream._credit.abort()
            elif frame_type == FrameType.HEADERS:
                self._on_headers(frame.stream_id, decode_headers(codec, frame.payload))
            elif frame_type == FrameType.PING:
                self.write(encode_frame(FrameType.PONG, frame.payload))
            elif frame_type == FrameType.PONG:
                pass  # any bytes answer a PING (last_read)
            elif frame_type == FrameType.GOAWAY:
                self._on_goaway(*decode_goaway(frame.payload))
            elif frame_type in (FrameType.CALL, FrameType.CALL_STREAM, FrameType.HELLO):
                raise ProtocolError(f"unexpected {FrameType(frame_type).name} from a server")

    def _on_goaway(self, last_stream_id: int, code: int, message: str) -> None:
        if code == StatusCode.RESOURCE_EXHAUSTED and message == keepalive.TOO_MANY_PINGS:
            self.too_many_pings = True
        self.goaway = True
        for stream_id in [s for s in self.calls if s > last_stream_id]:
            call = self.calls.pop(stream_id)
            if not call.future.done():
                call.future.set_result(
                    (StatusCode.UNAVAILABLE, message, None, call.headers, None, True)
                )
        refused = [self.streams.pop(s) for s in list(self.streams) if s > last_stream_id]
        for stream in refused:
            stream._end(StatusCode.UNAVAILABLE, f"server going away: {message}", None)

    def _on_headers(self, stream_id: int, headers: dict[str, str]) -> None:
        size = metadata_size(headers)
        refused = size > self.max_metadata_size
        reason = (
            f"response headers of {size} bytes exceed the client's limit of "
            f"{self.max_metadata_size} (max_metadata_size)"
        )
        call = self.calls.get(stream_id)
        if call is not None:
            if not refused:
                call.headers = headers
                return
            del self.calls[stream_id]
            if not call.future.done():
                call.future.set_result(
                    (StatusCode.RESOURCE_EXHAUSTED, reason, None, None, None, False)
                )
            self.write(encode_stream_frame(_CANCEL, stream_id, b""))
            return
        stream = self.streams.get(stream_id)
        if stream is not None:
            if not refused:
                stream.headers = headers
            else:
                stream._fail(StatusCode.RESOURCE_EXHAUSTED, reason)

    # -- writing ------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None:
            conn.write(data)

    async def drain(self) -> None:
        conn = self.conn
        if conn is not None and conn.paused:
            await conn.drain()

    def call_body(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
    ) -> bytes:
        """The CALL payload; oversized or unencodable requests fail here, locally."""
        assert self.codec is not None and self.settings is not None
        timeout_ms = None
        if deadline is not None:
            # What is left, not options.timeout: connecting may have used some of it.
            timeout_ms = min(MAX_TIMEOUT_MS, max(0, int((deadline - time.monotonic()) * 1000)))
        metadata = options.metadata
        if type(metadata) is not dict:
            metadata = dict(metadata)
        try:
            body = encode_call(self.codec, service, method, timeout_ms, metadata, args)
        except CodecError as exc:
            raise InvalidArgumentError(f"{method}(): {exc}") from None
        if len(body) + frames.STREAM_ID_SIZE > self.settings.peer_max_frame_size:
            raise ResourceExhaustedError(
                f"{method}(): request of {len(body)} bytes exceeds the server's max frame "
                f"size of {self.settings.peer_max_frame_size}"
            )
        return body

    def new_stream_id(self) -> int:
        if self.closed_reason is not None or self.goaway:
            raise _NotProcessed()
        stream_id = next(self._ids)
        if stream_id > frames.MAX_STREAM_ID:
            self.goaway = True  # ids never repeat on a connection: use a fresh one
            raise _NotProcessed()
        return stream_id

    def start_unary(self, body: bytes) -> _Unary:
        stream_id = self.new_stream_id()
        call = _Unary(stream_id, self.loop.create_future())
        self.calls[stream_id] = call
        self.write(encode_stream_frame(FrameType.CALL, stream_id, body))
        return call

    def forget_call(self, call: _Unary, reason: str, code: int = StatusCode.CANCELLED) -> None:
        """The caller gives up on `call` (cancelled, deadline, token): tell the server."""
        if self.calls.get(call.stream_id) is call:
            del self.calls[call.stream_id]
            self.write(encode_stream_frame(_CANCEL, call.stream_id, b""))
            if self.draining is not None:
                self.close_if_drained()
        if not call.future.done():
            call.future.set_result((code, reason, None, call.headers, None, False))

    def forget_stream(self, stream: _Stream, send_cancel: bool) -> None:
        stream_id = stream._stream_id
        if self.streams.get(stream_id) is stream:
            del self.streams[stream_id]
            if send_cancel:
                self.write(encode_stream_frame(_CANCEL, stream_id, b""))
            if self.draining is not None:
                self.close_if_drained()

    # -- keepalive ----------------------------------------------------------------------

    def _keepalive_check(self) -> None:
        """PING a connection silent for the interval; declare the server dead when
        nothing arrives within the timeout after it (RFC §8.1; keepalive.py)."""
        self._keepalive = None
        interval = self._keepalive_interval
        conn = self.conn
        if self.closed_reason is not None or interval is None or conn is None:
            return
        now = time.monotonic()
        sent = self._ping_sent_at
        if sent is not None and conn.last_read > sent:
            sent = self._ping_sent_at = None  # answered: anything read since counts
        if sent is None:
            due = conn.last_read + interval
            if now < due:
                self._keepalive = self.loop.call_later(due - now, self._keepalive_check)
                return
            self._ping_sent_at = now
            self._pings += 1
            self.write(encode_frame(FrameType.PING, self._pings.to_bytes(8, "big")))
            self._keepalive = self.loop.call_later(self._keepalive_timeout, self._keepalive_check)
            return
        if now < sent + self._keepalive_timeout:
            self._keepalive = self.loop.call_later(
                sent + self._keepalive_timeout - now, self._keepalive_check
            )
            return
        message = f"keepalive: no answer from the server within {self._keepalive_timeout:g}s"
        log.warning("%s (%s); closing the connection", message, self.address)
        self.shut(message)

    # -- ending -------------------------------------------------------------------------

    def shut(self, reason: str) -> None:
        """Close; every call and stream on it ends with UNAVAILABLE `reason`. Idempotent."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        conn = self.conn
        if conn is not None and not conn.closed:
            conn.close()
        calls, self.calls = self.calls, {}
        for call in calls.values():
            if not call.future.done():
                call.future.set_result(
                    (StatusCode.UNAVAILABLE, reason, None, call.headers, None, False)
                )
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream._end(StatusCode.UNAVAILABLE, reason, None)
        if not self._ended.done():
            self._ended.set_result(None)

    def close(self, reason: str = "pipe closed") -> None:
        self.shut(reason)

    def drop(self, reason: str) -> None:
        """Forget a connection whose loop has stopped or closed (called from another
        loop): what can still be ended is, without scheduling on a closed loop."""
        if self.loop.is_closed():
            self.closed_reason = self.closed_reason or reason
            return
        try:
            self.shut(reason)
        except RuntimeError:  # the loop closed meanwhile
            self.closed_reason = self.closed_reason or reason

    def forget_after_fork(self) -> None:
        """In a child after fork: close the child's copy of the socket and nothing
        else (no frame written, no loop touched: both are the parent's)."""
        self.closed_reason = "inherited from the parent process across fork()"
        self.calls = {}
        self.streams = {}
        transport = None if self.conn is None else self.conn.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                os.close(sock.fileno())

    def retire(self, reason: str) -> None:
        """No new calls; close once the calls and streams in flight have ended."""
        self.goaway = True
        self.draining = reason
        self.close_if_drained()

    def close_if_drained(self) -> None:
        if self.draining is not None and not self.calls and not self.streams:
            self.shut(self.draining)


class _Stream:
    """One streaming call's state, held by its connection's table while open; the
    caller holds the `StreamCall` over it (so that dropping that is noticed)."""

    __slots__ = (
        "__weakref__",
        "_args",
        "_bad_item",
        "_code",
        "_conn",
        "_credit",
        "_deadline",
        "_decode_item",
        "_done",
        "_encode_item",
        "_ended",
        "_holder",
        "_idempotent",
        "_inbound",
        "_loop",
        "_message",
        "_method",
        "_on_end",
        "_open_task",
        "_options",
        "_pipe",
        "_reader",
        "_result",
        "_send_task",
        "_service",
        "_source",
        "_stream_id",
        "_timer",
        "_token_key",
        "headers",
        "name",
        "trailers",
    )

    def __init__(
        self,
        pipe: Pipe,
        loop: asyncio.AbstractEventLoop,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
        source: AsyncIterable[Any] | Iterable[Any] | None,
        encode_item: Callable[[Any], Any] | None,
        decode_item: Callable[[Any], Any] | None,
        bad_item: Callable[[InvalidArgumentError], BaseException] | None,
        idempotent: bool,
    ) -> None:
        self._pipe = pipe
        self._loop = loop
        self._service = service
        self._method = method
        self.name = f"{service}.{method}"
        self._args = args
        self._options = options
        self._deadline = deadline
        self._source = source
        self._encode_item = encode_item
        self._decode_item = decode_item
        self._bad_item = bad_item
        self._idempotent = idempotent
        self._conn: _Connection | None = None
        self._stream_id = 0
        self._inbound: Inbound[Any] | None = None
        self._credit: Credit | None = None
        self._done: asyncio.Future[None] = loop.create_future()
        self._ended = False
        self._code = _UNKNOWN
        self._message = ""
        self._result: Any = None
        self._send_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._token_key: int | None = None
        self.headers: dict[str, str] | None = None
        self.trailers: dict[str, str] | None = None
        self._open_task: asyncio.Task[None] | None = None
        self._on_end: Callable[[int, str], None] | None = None
        """The interceptors' `on_end`, if any."""
        self._holder: StreamCall | None = None
        """The caller's StreamCall while one of its reads is under way."""
        self._reader: asyncio.Task[Any] | None = None
        """The task reading the stream (or, until one does, that opened it): its
        being cancelled, wherever it was waiting at the time, cancels the call."""

    def _start(self) -> None:
        self._read_by(asyncio.current_task(self._loop))
        deadline = self._deadline
        if deadline is not None:
            self._timer = self._loop.call_later(max(0.0, deadline - time.monotonic()), self._expire)
        cancel = self._options.cancel
        if cancel is not None:
            loop = self._loop
            ref = weakref.ref(self)

            def cancelled(reason: str) -> None:
                # From any thread: the stream is the loop's.
                def on_loop() -> None:
                    stream = ref()
                    if stream is not None:
                        stream.cancel(f"{stream.name}: {reason}")

                if not loop.is_closed():
                    with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing to do
                        loop.call_soon_threadsafe(on_loop)

            self._token_key = cancel._register(cancelled)
            if self._token_key is None:
                self._end(StatusCode.CANCELLED, f"{self.name}: {cancel.reason}", None)
                return
        endpoint = self._pipe._single
        connection = None if endpoint is None else endpoint.connection
        if connection is not None and connection.usable:
            # Connected already: open here and now, no task (the common case).
            try:
                self._attach(connection)
            except _NotProcessed:
                pass  # GOAWAY meanwhile: the task below goes elsewhere
            except RpcError as exc:  # a request that cannot be sent
                self._end(exc.code, exc.message, None)
                return
            else:
                budget = self._pipe._budget
                if budget.tokens < budget.max_tokens:
                    budget.succeeded()
                return
        self._open_task = self._loop.create_task(self._open(), name=f"gopherpipe-open {self.name}")

    # -- opening and sending ------------------------------------------------------------

    async def _open(self) -> None:
        try:
            await self._pipe._open_stream(self)
        except RpcError as exc:
            self._end(exc.code, exc.message, None)
        except asyncio.CancelledError:
            if not self._ended:
                self._fail(StatusCode.CANCELLED, f"{self.name} was cancelled while opening")
            raise
        except Exception as exc:  # a bug must not leave the stream waiting forever
            log.exception("opening %s failed", self.name)
            self._end(StatusCode.INTERNAL, f"opening the stream failed: {exc!r}", None)

    def _attach(self, conn: _Connection) -> None:
        """Register on `conn` and write the CALL (synchronously, so no frame for this
        stream can arrive before it is in the table). _NotProcessed if `conn` takes
        no new calls; RpcError for a request that cannot be sent."""
        body = conn.call_body(
            self._service, self._method, self._args, self._options, self._deadline
        )
        stream_id = conn.new_stream_id()
        self._conn = conn
        self._stream_id = stream_id
        if self._decode_item is not None:
            windows = conn.windows

            def send_credit(items: int, nbytes: int) -> None:
                conn.write(frames.encode_credit(stream_id, items, nbytes))

            inflow = Inflow(conn.receive_window, windows.items, windows.stream_bytes, send_credit)
            self._inbound = Inbound(
                inflow,
                decode_item=self._decode_item,
                bad_item=self._bad_item,
                on_abandon=self._abandoned,
            )
        source = self._source
        if source is not None:
            assert conn.settings is not None and conn.send_window is not None
            peer = conn.settings.peer_windows
            self._credit = Credit(peer.items, peer.stream_bytes, conn.send_window)
        conn.streams[stream_id] = self
        frame_type = FrameType.CALL if source is None else FrameType.CALL_STREAM
        conn.write(encode_stream_frame(frame_type, stream_id, body))
        if source is not None:
            self._send_task = self._loop.create_task(
                self._send(conn, source), name=f"gopherpipe-send {self.name}"
            )

    async def _send(self, conn: _Connection, source: AsyncIterable[Any] | Iterable[Any]) -> None:
        assert self._encode_item is not None and self._credit is not None
        assert conn.codec is not None and conn.settings is not None and conn.conn is not None
        codec, stream_id = conn.codec, self._stream_id
        max_frame_size = conn.settings.peer_max_frame_size

        def make_frames(batch: list[Any]) -> list[bytes]:
            return message_frames(codec, stream_id, batch, max_frame_size)

        outcome, error = await send_stream(
            source,
            encode_item=self._encode_item,
            make_frames=make_frames,
            credit=self._credit,
            connection=conn.conn,
        )
        if self._ended:
            return
        if outcome == PumpOutcome.DONE:
            conn.write(encode_stream_frame(FrameType.HALF_CLOSE, stream_id, b""))
        elif outcome in (PumpOutcome.FAILED, PumpOutcome.BAD_ITEM):
            if isinstance(error, RpcError):
                self._fail(error.code, error.message)
            else:
                self._fail(StatusCode.CANCELLED, f"the client's stream failed: {error!r}")

    # -- ending -------------------------------------------------------------------------

    def _expire(self) -> None:
        self._timer = None
        self._fail(StatusCode.DEADLINE_EXCEEDED, f"{self.name} passed its deadline")

    def _abandoned(self) -> None:
        self._fail(StatusCode.CANCELLED, f"{self.name}: the reader stopped before the end")

    def _fail(self, code: int, message: str) -> None:
        """End the call from this side: the server is told (CANCEL) if it was opened."""
        if self._ended:
            return
        conn = self._conn
        if conn is not None:
            conn.forget_stream(self, send_cancel=True)
        self._end(code, message, None, discard=code == StatusCode.CANCELLED)

    def _end(self, code: int, message: str, result: Any, *, discard: bool = False) -> None:
        """The call is over (STATUS, cancel, deadline, connection lost). Idempotent."""
        if self._ended:
            return
        self._ended = True
        if self._reader is not None:
            self._read_by(None)
        self._code, self._message, self._result = code, message, result
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._token_key is not None and self._options.cancel is not None:
            self._options.cancel._unregister(self._token_key)
            self._token_key = None
        if self._credit is not None:
            self._credit.abort()
        send_task = self._send_task
        if send_task is not None and not send_task.done():
            # Stops the source (send_stream closes it on the way out).
            send_task.cancel()
        if isinstance(self._source, Chan):
            # Closed here too: a send task cancelled before its first step never gets
            # to, and the producer must learn that nobody reads any more (idempotent).
            self._source.close(ChanClosed(f"{self.name} ended: {message or 'done'}"))
        open_task = self._open_task
        if (
            open_task is not None
            and not open_task.done()
            and open_task is not asyncio.current_task(self._loop)
        ):
            open_task.cancel()
        if self._inbound is not None:
            self._inbound.finish(None if code == _OK else self._error(), discard=discard)
        if not self._done.done():
            self._done.set_result(None)
        if self._on_end is not None:
            self._on_end(code, message)

    def _error(self) -> RpcError:
        return _error(self._code, self._message, self.headers, self.trailers)

    # -- the caller's side --------------------------------------------------------------

    def _read_by(self, task: asyncio.Task[Any] | None) -> None:
        old = self._reader
        if old is task:
            return
        if old is not None:
            old.remove_done_callback(self._reader_done)
        self._reader = task
        if task is not None:
            task.add_done_callback(self._reader_done)

    def _reader_done(self, task: asyncio.Task[Any]) -> None:
        # Only cancellation: a task that returns may have handed the stream on (a
        # wait_for around one read runs it in a task of its own, for instance).
        if task is self._reader:
            self._reader = None
            if task.cancelled():
                self._fail(StatusCode.CANCELLED, f"{self.name}: the reading task was cancelled")

    def _dropped(self) -> None:
        """The caller dropped its StreamCall before the end (garbage-collected)."""
        self._fail(StatusCode.CANCELLED, f"{self.name}: the stream was dropped unfinished")

    async def __anext__(self) -> Any:
        reader = asyncio.current_task()
        if reader is not self._reader and not self._ended:
            self._read_by(reader)
        try:
            inbound = self._inbound
            if inbound is None:
                open_task = self._open_task
                if open_task is not None and not open_task.done():
                    # asyncio.wait, not the task itself: our cancellation must not be
                    # the open task's (we cancel the call below), nor its ours.
                    await asyncio.wait([open_task])
                inbound = self._inbound
                if inbound is None:  # no output (a client stream), or it never opened
                    await asyncio.wait([self._done])
                    if self._code == _OK:
                        raise StopAsyncIteration
                    raise self._error()
            return await inbound.__anext__()
        except asyncio.CancelledError:
            # The task reading the stream was cancelled: so is the call.
            self._fail(StatusCode.CANCELLED, f"{self.name}: the reading task was cancelled")
            raise
        finally:
            self._holder = None

    async def result(self) -> Any:
        """Wait for the final status: the result (wire form), or the RpcError."""
        reader = asyncio.current_task()
        if reader is not self._reader and not self._ended:
            self._read_by(reader)
        try:
            await asyncio.wait([self._done])
        except asyncio.CancelledError:
            self._fail(StatusCode.CANCELLED, f"{self.name}: the awaiting task was cancelled")
            raise
        send_task = self._send_task
        if send_task is not None and not send_task.done():
            # The call is over; let the source be closed before returning (bounded:
            # the task was cancelled by `_end`).
            await asyncio.wait([send_task])
        if self._code == _OK:
            return self._result
        raise self._error()

    def cancel(self, message: str = "cancelled by the client") -> None:
        """Abandon the call: the server is told, the reader gets CANCELLED."""
        self._fail(StatusCode.CANCELLED, message)

    async def aclose(self) -> None:
        """Stop reading: before the end this cancels the call; then waits until the
        source (if any) has been stopped."""
        self.cancel(f"{self.name}: closed by the client")
        send_task = self._send_task
        if send_task is not None and not send_task.done():
            await asyncio.wait([send_task])

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def code(self) -> StatusCode | None:
        """The final status code, None while the call runs."""
        return StatusCode(self._code) if self._ended else None


class StreamCall(AsyncIterator[Any]):
    """One streaming call: an async iterator of what the server streams (decoded
    items), `result()` for the final status (a client stream's result), `cancel()`,
    `aclose()`; `headers` once they arrive and `trailers` at the end.

    It opens at once (a task connects and writes the CALL); its failures -- including
    failing to connect -- arrive as the RpcError that iteration or `result()` raises,
    after every item the server sent before the failure, as the threaded
    ClientStream's output does. The call is cancelled (CANCEL sent) by `cancel()`,
    by `aclose()` before the end, by the cancellation of the task reading it (or, until
    one reads, of the task that opened it) wherever that task waits, and when the
    StreamCall is dropped unfinished (garbage-collected).
    """

    __slots__ = ("__weakref__", "_core")

    def __init__(self, core: _Stream) -> None:
        self._core = core

    def __del__(self) -> None:
        core = self._core
        if not core._ended:
            # Perhaps on another thread (the cyclic collector runs anywhere): hop on.
            with contextlib.suppress(RuntimeError):
                core._loop.call_soon_threadsafe(core._dropped)

    def __aiter__(self) -> Self:
        return self

    def __anext__(self) -> Awaitable[Any]:
        # The core's coroutine itself (no extra frame per item); while it runs the
        # core holds this StreamCall, so that ``await anext(pipe.stream(...))`` is not
        # taken for a dropped stream before its item arrives.
        core = self._core
        core._holder = self
        return core.__anext__()

    async def result(self) -> Any:
        """Wait for the final status: the result (wire form), or the RpcError."""
        return await self._core.result()  # (a frame of ours: it holds the StreamCall)

    def cancel(self, message: str = "cancelled by the client") -> None:
        """Abandon the call: the server is told, the reader gets CANCELLED."""
        self._core.cancel(message)

    async def aclose(self) -> None:
        """Stop reading: before the end this cancels the call; then waits until the
        source (if any) has been stopped."""
        await self._core.aclose()

    @property
    def name(self) -> str:
        return self._core.name

    @property
    def headers(self) -> dict[str, str] | None:
        """The response headers, once they arrived."""
        return self._core.headers

    @property
    def trailers(self) -> dict[str, str] | None:
        """The trailers, once the call ended with them."""
        return self._core.trailers

    @property
    def ended(self) -> bool:
        return self._core._ended

    @property
    def code(self) -> StatusCode | None:
        """The final status code, None while the call runs."""
        return self._core.code


class _Endpoint:
    """One server behind the Pipe's address: its connection and reconnect backoff."""

    __slots__ = (
        "address",
        "compression",
        "connecting",
        "connection",
        "failures",
        "last_error",
        "parsed",
        "removed",
        "retry_at",
    )

    def __init__(self, address: str, compression: str | tuple[str, ...] | None) -> None:
        self.address = address
        self.parsed = parse_address(address)
        self.compression = offer_for(self.parsed, compression)
        self.connection: _Connection | None = None
        self.connecting: asyncio.Task[_Connection] | None = None
        """The connect in progress (on the Pipe's loop), shared by the calls waiting."""
        self.failures = 0
        self.retry_at = 0.0
        self.last_error = ""
        self.removed = False

    def note(self, now: float) -> str:
        wait = self.retry_at - now
        if wait > 0:
            return f"{self.address} ({self.last_error}; next attempt in {wait:.2f}s)"
        return f"{self.address} ({self.last_error})"


class Pipe:
    """One client-side handle to a service address, for asyncio tasks.

    Options: those of the threaded `gopherpipe_runtime.Pipe`, with the same meaning
    and defaults -- codec, connect_timeout, max_frame_size, write_timeout,
    backoff_base, backoff_max, stream_window, stream_window_bytes,
    connection_window_bytes, tls, compression, compression_threshold,
    max_decoded_size, max_nesting_depth, max_metadata_size, interceptors (see the
    module docstring for how a synchronous `intercept` meets an awaited call),
    keepalive_interval, keepalive_timeout, retry, balance, gophermap, gophermap_key.
    ``write_timeout`` bounds how long the transport may stay paused (the server
    reading nothing) before the connection is closed; keepalive PINGs run on loop
    timers (no thread).
    """

    def __init__(
        self,
        address: str,
        *,
        codec: str | tuple[str, ...] = DEFAULT_CODECS,
        connect_timeout: float = 5.0,
        max_frame_size: int = frames.DEFAULT_MAX_FRAME_SIZE,
        write_timeout: float = 30.0,
        backoff_base: float = 0.05,
        backoff_max: float = 5.0,
        stream_window: int = DEFAULT_STREAM_WINDOW,
        stream_window_bytes: int = DEFAULT_STREAM_WINDOW_BYTES,
        connection_window_bytes: int = DEFAULT_CONNECTION_WINDOW_BYTES,
        tls: ssl.SSLContext | None = None,
        compression: str | tuple[str, ...] | None = "auto",
        compression_threshold: int = DEFAULT_THRESHOLD,
        max_decoded_size: int = DEFAULT_MAX_DECODED_SIZE,
        max_nesting_depth: int = DEFAULT_MAX_NESTING_DEPTH,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
        interceptors: Iterable[Interceptor] = (),
        keepalive_interval: float | None = keepalive.DEFAULT_CLIENT_INTERVAL,
        keepalive_timeout: float = keepalive.DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = _DEFAULT_RETRY,
        balance: str = "round_robin",
        gophermap: object | None = None,
        gophermap_key: bytes | None = None,
    ) -> None:
        chain = Chain(interceptors)
        self._interceptors: Chain | None = chain if chain.all else None
        self._codecs = checked_options(
            codec=codec,
            balance=balance,
            keepalive_interval=keepalive_interval,
            keepalive_timeout=keepalive_timeout,
            write_timeout=write_timeout,
            compression=compression,
            tls=tls,
            retry=retry,
        )
        self.address = address
        self._keepalive_interval = keepalive_interval
        self._keepalive_timeout = keepalive_timeout
        self._compression_option = compression
        self._compression_threshold = compression_threshold
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._max_frame_size = max_frame_size
        self._write_timeout = write_timeout
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._windows = Windows(stream_window, stream_window_bytes, connection_window_bytes)
        self._codec_table = codecs_with_limits(max_decoded_size, max_nesting_depth)
        self._max_metadata_size = max_metadata_size
        self._retry = retry
        self._budget = (
            NO_BUDGET if retry is None else RetryBudget(retry.max_tokens, retry.token_ratio)
        )
        self._pick_first = balance == "pick_first"
        self._turns = itertools.count()
        self._sticky: _Endpoint | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop the connections belong to (see "Loop binding")."""
        self._bind_lock = threading.Lock()
        self._news: asyncio.Future[None] | None = None
        """Resolved when the endpoints change or the pipe closes (on `_loop`)."""
        self._draining: set[_Connection] = set()
        self._resolver: Resolver | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._single: _Endpoint | None = None
        self._endpoints: tuple[_Endpoint, ...] = ()
        if not is_discovery_address(address):
            self._single = _Endpoint(address, compression)
            self._endpoints = (self._single,)
        else:
            discovery = {"gophermap": gophermap, "gophermap_key": gophermap_key}
            self._resolve(address, {k: v for k, v in discovery.items() if v is not None})
        _PIPES.add(self)

    # -- endpoints ----------------------------------------------------------------------

    def _resolve(self, address: str, options: Mapping[str, Any]) -> None:
        resolver = resolver_for(address, options)
        self._resolver = resolver
        ref = weakref.ref(self)

        def changed(endpoints: list[str]) -> None:
            # Perhaps on the resolver's own thread: while a loop runs the pipe, the
            # endpoints are that loop's to change; with none running, nothing races.
            pipe = ref()  # weakly: a resolver shared by many pipes must not keep this one
            if pipe is None:
                return
            with pipe._bind_lock:
                loop = pipe._loop
                if loop is not None and loop.is_running():
                    with contextlib.suppress(RuntimeError):  # closed meanwhile: below
                        loop.call_soon_threadsafe(pipe._set_endpoints, endpoints)
                        return
                pipe._set_endpoints(endpoints)

        self._unsubscribe = resolver.subscribe(changed)
        self._set_endpoints(resolver.endpoints())

    def _set_endpoints(self, addresses: list[str]) -> None:
        """The resolver's new list: kept endpoints keep their connection and backoff, a
        removed one takes no new calls and its connection drains."""
        if self._closed:
            return
        current = {endpoint.address: endpoint for endpoint in self._endpoints}
        endpoints: list[_Endpoint] = []
        for address in dict.fromkeys(addresses):
            endpoint = current.pop(address, None)
            if endpoint is None:
                try:
                    endpoint = _Endpoint(address, self._compression_option)
                except (TypeError, ValueError) as exc:
                    log.warning("%s: ignoring endpoint %r: %s", self.address, address, exc)
                    continue
            endpoints.append(endpoint)
        self._endpoints = tuple(endpoints)
        for endpoint in current.values():
            endpoint.removed = True
            connection = endpoint.connection
            if connection is not None and connection.closed_reason is None:
                self._draining = {c for c in self._draining if c.closed_reason is None}
                self._draining.add(connection)
                connection.retire(f"{connection.address} was removed from {self.address}")
        self._announce()

    def _announce(self) -> None:
        news, self._news = self._news, None
        if news is not None and not news.done():
            news.set_result(None)

    @property
    def endpoints(self) -> list[str]:
        """The addresses calls are balanced over now (one for a plain address)."""
        return [endpoint.address for endpoint in self._endpoints]

    @property
    def codec(self) -> str | None:
        for endpoint in self._endpoints:
            connection = endpoint.connection
            if connection is not None and connection.settings is not None:
                return connection.settings.codec
        return None

    @property
    def connected(self) -> bool:
        """Whether a connection the next call could use is held (reads nothing)."""
        return any(
            endpoint.connection is not None and endpoint.connection.usable
            for endpoint in self._endpoints
        )

    @property
    def open_streams(self) -> int:
        """Streams open on this pipe's connections now (for tests and debugging)."""
        connections = {e.connection for e in self._endpoints} | self._draining
        return sum(len(c.streams) for c in connections if c is not None)

    @property
    def open_calls(self) -> int:
        """Unary calls waiting for their answer now (for tests and debugging)."""
        connections = {e.connection for e in self._endpoints} | self._draining
        return sum(len(c.calls) for c in connections if c is not None)

    # -- the loop binding ---------------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The running loop, which from now on owns the pipe's connections."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        with self._bind_lock:
            old = self._loop
            if old is loop:
                return loop
            if old is not None and not old.is_closed() and old.is_running():
                raise RuntimeError(
                    f"this aio.Pipe to {self.address} is in use by another running event "
                    "loop; its connections belong to one loop at a time. Make one Pipe "
                    "(or client) per event loop."
                )
            if old is not None:
                reason = "the event loop this connection was made on has stopped"
                connections = {e.connection for e in self._endpoints} | self._draining
                for endpoint in self._endpoints:
                    endpoint.connection = None
                    endpoint.connecting = None
                self._draining = set()
                self._news = None
                for connection in connections:
                    if connection is not None:
                        connection.drop(reason)
            self._loop = loop
        return loop

    def _news_future(self) -> asyncio.Future[None]:
        news = self._news
        if news is None or news.done():
            assert self._loop is not None
            news = self._news = self._loop.create_future()
        return news

    # -- unary --------------------------------------------------------------------------

    async def unary(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        idempotent: bool = False,
    ) -> Any:
        """Send one call and await its result (wire form); raises RpcError.

        The deadline (`options.timeout`, or the served call's if earlier) bounds
        everything, connecting and resending included; when it passes, or when the
        awaiting task is cancelled, the server is sent CANCEL.
        """
        loop = self._loop
        if loop is None or loop is not asyncio.get_running_loop():
            loop = self._bind()
        deadline = _deadline(options.timeout)
        served = serving_call()
        if served is not None:
            options, deadline = _inherit(served, options, deadline, f"{service}.{method}")
        if self._interceptors is not None:
            return await self._unary_intercepted(
                service, method, args, options, deadline, idempotent
            )
        if deadline is None:
            return await self._unary(service, method, args, options, deadline, idempotent)
        return await self._unary_within(service, method, args, options, deadline, idempotent)

    async def _unary_within(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float,
        idempotent: bool,
    ) -> Any:
        """`_unary` under the call's deadline (an asyncio.timeout): DEADLINE_EXCEEDED."""
        phase: list[str] = []
        timer = asyncio.timeout(deadline - time.monotonic())
        try:
            async with timer:
                return await self._unary(
                    service, method, args, options, deadline, idempotent, phase
                )
        except TimeoutError:
            if not timer.expired():
                raise  # not our deadline's: a TimeoutError from elsewhere
            timeout = options.timeout if options.timeout is not None else 0.0
            where = f" ({phase[-1]})" if phase else ""
            raise DeadlineExceededError(
                f"{service}.{method} did not answer within {timeout:g}s{where}"
            ) from None

    async def _unary_intercepted(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
        idempotent: bool,
    ) -> Any:
        """A unary call through the interceptors: `intercept(call, proceed)` runs
        synchronously, and `proceed()` returns the call's awaitable, which is awaited
        here when `intercept` returns it (or an awaitable wrapping it); `on_end` sees
        how the call ended. An interceptor that answers without proceeding returns a
        value, which is the call's result."""
        chain = self._interceptors
        assert chain is not None
        call = ClientCall(
            service,
            method,
            MethodKind.UNARY,
            dict(options.metadata),
            deadline,
            self.address,
            time.monotonic(),
        )

        def proceed() -> Awaitable[Any]:
            sent = _with_metadata(options, call.metadata)
            if deadline is None:
                return self._unary(service, method, args, sent, deadline, idempotent)
            return self._unary_within(service, method, args, sent, deadline, idempotent)

        try:
            result = chain.run(call, proceed)
            if inspect.isawaitable(result):
                result = await result
        except RpcError as exc:
            chain.end(call, exc.code, exc.message)
            raise
        except asyncio.CancelledError:
            chain.end(call, StatusCode.CANCELLED, "the awaiting task was cancelled")
            raise
        except BaseException as exc:
            chain.end(call, StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
            raise
        chain.end(call, StatusCode.OK, "")
        return result

    async def _unary(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
        idempotent: bool,
        phase: list[str] | None = None,
    ) -> Any:
        endpoint = self._single
        connection = None if endpoint is None else endpoint.connection
        try:
            if connection is None or not connection.usable:
                connection = await self._ready(
                    f"{service}.{method}", options.timeout, deadline, phase
                )
            result = await self._unary_on(connection, service, method, args, options, deadline)
        except (_NotProcessed, UnavailableError) as exc:
            failure: Exception = exc
        else:
            budget = self._budget
            if budget.tokens < budget.max_tokens:
                budget.succeeded()
            return result

        async def send(c: _Connection) -> Any:
            return await self._unary_on(c, service, method, args, options, deadline)

        return await self._again(
            service, method, options, deadline, idempotent, failure, connection, send, phase
        )

    async def _unary_on(
        self,
        connection: _Connection,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
    ) -> Any:
        body = connection.call_body(service, method, args, options, deadline)
        cancel = options.cancel
        if cancel is not None and cancel.cancelled:
            raise RpcCancelledError(f"{service}.{method}: {cancel.reason}")
        call = connection.start_unary(body)
        key: int | None = None
        if cancel is not None:
            loop = connection.loop

            def cancelled(reason: str) -> None:
                def on_loop() -> None:
                    connection.forget_call(call, f"{service}.{method}: {reason}")

                with contextlib.suppress(RuntimeError):  # the loop closed: the call is over
                    loop.call_soon_threadsafe(on_loop)

            key = cancel._register(cancelled)
            if key is None:
                connection.forget_call(call, f"{service}.{method}: {cancel.reason}")
        try:
            if connection.conn is not None and connection.conn.paused:
                await connection.drain()
            code, message, result, headers, trailers, unseen = await call.future
        except BaseException:
            # Cancelled (the task, or our deadline's timeout) or the drain failed: the
            # server is told, and the call forgotten.
            connection.forget_call(call, f"{service}.{method}: cancelled")
            raise
        finally:
            if cancel is not None:
                cancel._unregister(key)
        if code == _OK:
            return result
        if unseen:
            raise _NotProcessed(message)
        raise _error(code, message, headers, trailers)

    # -- streams ------------------------------------------------------------------------

    def stream(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        *,
        source: AsyncIterable[Any] | Iterable[Any] | None = None,
        encode_item: Callable[[Any], Any] | None = None,
        decode_item: Callable[[Any], Any] | None = None,
        bad_item: Callable[[InvalidArgumentError], BaseException] | None = None,
        idempotent: bool = False,
    ) -> StreamCall:
        """Open a streaming call (a running loop is required): `source` (with
        `encode_item`) is what the client streams, None for none; `decode_item`
        gives the call an output of decoded items. The call opens in a task of its
        own; every failure, opening included, arrives on the StreamCall."""
        loop = self._loop
        if loop is None or loop is not asyncio.get_running_loop():
            loop = self._bind()
        if source is not None and encode_item is None:
            raise TypeError("a stream with a source needs encode_item")
        deadline = _deadline(options.timeout)
        served = serving_call()
        if served is not None:
            options, deadline = _inherit(served, options, deadline, f"{service}.{method}")
        chain = self._interceptors
        if chain is None:
            call = _Stream(
                self,
                loop,
                service,
                method,
                args,
                options,
                deadline,
                source,
                encode_item,
                decode_item,
                bad_item,
                idempotent,
            )
            call._start()
            return StreamCall(call)
        # Through the interceptors, as the threaded Pipe: `intercept` sees the call
        # before it opens (it may change the metadata, or refuse with an RpcError),
        # `on_send` / `on_receive` each item, `on_end` the end.
        if source is None:
            kind = MethodKind.SERVER_STREAM
        else:
            kind = MethodKind.CLIENT_STREAM if decode_item is None else MethodKind.BIDI
        info = ClientCall(
            service, method, kind, dict(options.metadata), deadline, self.address, time.monotonic()
        )
        if encode_item is not None:
            encode_item = chain.observing_send(info, encode_item)
        if decode_item is not None:
            decode_item = chain.observing_receive(info, decode_item)
        observed_encode, observed_decode = encode_item, decode_item

        def proceed() -> _Stream:
            core = _Stream(
                self,
                loop,
                service,
                method,
                args,
                _with_metadata(options, info.metadata),
                deadline,
                source,
                observed_encode,
                observed_decode,
                bad_item,
                idempotent,
            )
            core._on_end = lambda code, message: chain.end(info, code, message)
            core._start()
            return core

        opened = chain.run_or_end(info, proceed)
        if not isinstance(opened, _Stream):
            raise TypeError(
                f"an interceptor's intercept() for stream {service}.{method} must return "
                f"what proceed() returned, not {type(opened).__name__}"
            )
        return StreamCall(opened)

    async def _open_stream(self, call: _Stream) -> None:
        """Connect (as a unary call would, resending while that is safe) and attach
        `call` to a connection. Only the opening is retried: once its CALL is written,
        failures arrive on the stream."""
        name = call.name
        options = call._options
        deadline = call._deadline

        async def attach(connection: _Connection) -> None:
            call._attach(connection)

        endpoint = self._single
        connection = None if endpoint is None else endpoint.connection
        try:
            if connection is None or not connection.usable:
                connection = await self._ready(name, options.timeout, deadline)
            call._attach(connection)
        except (_NotProcessed, UnavailableError) as exc:
            failure: Exception = exc
        else:
            budget = self._budget
            if budget.tokens < budget.max_tokens:
                budget.succeeded()
            return
        await self._again(
            call._service,
            call._method,
            options,
            deadline,
            call._idempotent,
            failure,
            connection,
            attach,
        )

    # -- resending ----------------------------------------------------------------------

    async def _again(
        self,
        service: str,
        method: str,
        options: CallOptions,
        deadline: float | None,
        idempotent: bool,
        failure: Exception,
        connection: _Connection | None,
        send: Callable[[_Connection], Awaitable[Any]],
        phase: list[str] | None = None,
    ) -> Any:
        """Resend a call whose attempt failed with UNAVAILABLE, while that is safe
        (the threaded `Pipe._again`, whose docstring says when)."""
        name = f"{service}.{method}"
        policy = self._retry if idempotent else None
        budget = self._budget
        attempts = 1
        unseen_resends = 0
        while True:
            if isinstance(failure, _NotProcessed):
                reason = str(failure) or (
                    (connection.closed_reason or connection.draining) if connection else None
                )
                refuser = (connection.address if connection else "") or self.address
                error = UnavailableError(
                    f"{name}: {refuser} refused the call ({reason or 'server going away'})"
                )
            else:
                assert isinstance(failure, UnavailableError)
                error = failure
            if self._closed:
                raise UnavailableError(f"{name}: pipe to {self.address} is closed") from None
            if not (isinstance(failure, _Unreachable) and options.wait_for_ready):
                budget.failed()
                if isinstance(failure, _NotProcessed) and unseen_resends < max(
                    1, len(self._endpoints)
                ):
                    unseen_resends += 1
                elif policy is None or attempts >= policy.max_attempts:
                    raise _given_up(error, attempts, "") from None
                elif not budget.allows_retry:
                    raise _given_up(
                        error, attempts, "retries throttled: too many failures"
                    ) from None
                else:
                    now = time.monotonic()
                    soonest = min((e.retry_at for e in self._endpoints), default=0.0)
                    delay = max(policy.backoff(attempts), soonest - now)
                    if deadline is not None and now + delay >= deadline:
                        raise _given_up(error, attempts, "no time left for another") from None
                    if delay > 0:
                        await self._sleep(delay)
                        if self._closed:
                            continue  # said at the top
                attempts += 1
            try:
                if options.wait_for_ready:
                    connection = await self._wait_for_ready(
                        name, options.timeout, deadline, error, phase
                    )
                else:
                    connection = await self._ready(name, options.timeout, deadline, phase)
                return await send(connection)
            except (_NotProcessed, UnavailableError) as exc:
                failure = exc
                continue

    async def _sleep(self, delay: float) -> None:
        """Sleep `delay` seconds, or less if the pipe closes meanwhile."""
        end = time.monotonic() + delay
        while not self._closed:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.wait([self._news_future()], timeout=remaining)

    async def _wait_for_ready(
        self,
        name: str,
        timeout: float | None,
        deadline: float | None,
        error: RpcError,
        phase: list[str] | None,
    ) -> _Connection:
        """gRPC's wait-for-ready: keep trying whenever a backoff ends or the resolver
        brings a new list, until a connection is made or the deadline passes."""
        while True:
            if self._closed:
                raise UnavailableError(f"{name}: pipe to {self.address} is closed") from None
            news = self._news_future()
            try:
                return await self._ready(name, timeout, deadline, phase)
            except _Unreachable as exc:
                error = exc
            now = time.monotonic()
            endpoints = self._endpoints
            wait: float | None
            if endpoints:
                wait = max(0.0, min(endpoint.retry_at for endpoint in endpoints) - now)
                late = deadline is not None and now + wait >= deadline
            else:
                wait = None if deadline is None else deadline - now
                late = wait is not None and wait <= 0
            if late:
                raise DeadlineExceededError(
                    f"{name}: deadline of {timeout:g}s passed while waiting for "
                    f"{self.address} to be ready ({error.message})"
                ) from None
            if phase is not None:
                phase.append(f"waiting for {self.address} to be ready: {error.message}")
            await asyncio.wait([news], timeout=wait)

    # -- picking and connecting ---------------------------------------------------------

    async def _ready(
        self,
        name: str,
        timeout: float | None,
        deadline: float | None,
        phase: list[str] | None = None,
    ) -> _Connection:
        """A usable connection to the endpoint the balancing policy picks now (the
        threaded `Pipe._ready`: failing endpoints skipped, the next one tried at once)."""
        endpoints = self._endpoints
        count = len(endpoints)
        if count == 1:
            connection = await self._connect(endpoints[0], name, timeout, deadline, True, phase)
            assert connection is not None
            return connection
        if count == 0:
            if self._closed:
                raise UnavailableError(f"pipe to {self.address} is closed")
            raise _Unreachable(f"no endpoints for {self.address}")
        if self._pick_first:
            sticky = self._sticky
            start = endpoints.index(sticky) if sticky in endpoints else 0
        else:
            start = next(self._turns) % count
        now = time.monotonic()
        notes: list[str] = []
        busy: list[_Endpoint] = []
        for i in range(count):
            endpoint = endpoints[(start + i) % count]
            connection = endpoint.connection
            if connection is not None:
                if connection.usable:
                    self._sticky = endpoint
                    return connection
                if connection.closed_reason is None:
                    busy.append(endpoint)  # GOAWAY: its server drains
                    continue
            if endpoint.retry_at > now:
                notes.append(endpoint.note(now))
                continue
            try:
                connection = await self._connect(endpoint, name, timeout, deadline, False, phase)
            except _Unreachable:
                notes.append(endpoint.note(now))
                continue
            if connection is None:
                busy.append(endpoint)
                continue
            self._sticky = endpoint
            return connection
        for endpoint in busy:
            try:
                connection = await self._connect(endpoint, name, timeout, deadline, True, phase)
            except _Unreachable:
                notes.append(endpoint.note(time.monotonic()))
                continue
            assert connection is not None
            self._sticky = endpoint
            return connection
        raise _Unreachable(f"no endpoint of {self.address} can be reached: {'; '.join(notes)}")

    async def _connect(
        self,
        endpoint: _Endpoint,
        name: str,
        timeout: float | None,
        deadline: float | None,
        wait: bool,
        phase: list[str] | None = None,
    ) -> _Connection | None:
        """The endpoint's live connection, connecting if needed. Concurrent calls share
        one connect (a task, so that a caller cancelled meanwhile does not cut it off
        for the others); one that would rather go elsewhere (not `wait`) gets None."""
        while True:
            connection = endpoint.connection
            if connection is not None and connection.usable:
                return connection
            task = endpoint.connecting
            if task is None or task.done():
                break
            if not wait:
                return None
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is None:
                return task.result()
            # Its failure was its caller's: look again (backoff, or a try of our own).
        if self._closed:
            raise UnavailableError(f"pipe to {self.address} is closed")
        now = time.monotonic()
        if now < endpoint.retry_at:
            raise _Unreachable(
                f"cannot reach {endpoint.address} ({endpoint.last_error}); "
                f"next attempt in {endpoint.retry_at - now:.2f}s"
            )
        connect_timeout = self._connect_timeout
        if deadline is not None and deadline - now < connect_timeout:
            connect_timeout = deadline - now
            if connect_timeout <= 0:
                raise DeadlineExceededError(
                    f"{name}: deadline of {timeout:g}s passed before connecting to "
                    f"{endpoint.address}"
                )
        if phase is not None:
            phase.append(f"connecting to {endpoint.address}")
        assert self._loop is not None
        task = self._loop.create_task(
            self._dial(endpoint, name, timeout, connect_timeout),
            name=f"gopherpipe-connect {endpoint.address}",
        )
        task.add_done_callback(_consume)
        endpoint.connecting = task
        # Not awaited directly: our cancellation must not cut the connect short for
        # the other calls waiting on it (it is bounded by connect_timeout anyway).
        await asyncio.wait([task])
        if task.cancelled():
            raise UnavailableError(f"{name}: pipe to {self.address} is closed")
        connection = task.result()
        if phase is not None:
            phase.append(f"waiting for {endpoint.address} to answer")
        return connection

    async def _dial(
        self, endpoint: _Endpoint, name: str, timeout: float | None, connect_timeout: float
    ) -> _Connection:
        assert self._loop is not None
        old = endpoint.connection
        if old is not None and old.too_many_pings:
            self._slow_down_pings()
            old.too_many_pings = False  # once per refusal
        connection = _Connection(self, endpoint.address, self._loop, self._keepalive_interval)
        try:
            await connection.open(
                endpoint.parsed,
                self._tls,
                self._codecs,
                self._max_frame_size,
                self._write_timeout,
                endpoint.compression,
                self._codec_table,
                self._compression_threshold,
                connect_timeout,
            )
        except (OSError, ProtocolError, HandshakeError, TransportError) as exc:
            detail = str(exc) or type(exc).__name__
            cut_short = isinstance(exc, TimeoutError) and connect_timeout < self._connect_timeout
            if not cut_short or self._single is None:
                # As the threaded Pipe: a connect the call's deadline cut short says
                # nothing about the server (no backoff), except over several endpoints.
                endpoint.failures += 1
                backoff = self._backoff_base * 2 ** (endpoint.failures - 1)
                endpoint.retry_at = time.monotonic() + min(
                    self._backoff_max, backoff
                ) * random.uniform(0.8, 1.2)
                endpoint.last_error = detail
            if cut_short:
                raise DeadlineExceededError(
                    f"{name}: deadline of {timeout:g}s passed while connecting to "
                    f"{endpoint.address} ({detail})"
                ) from None
            raise _Unreachable(f"cannot reach {endpoint.address}: {detail}") from None
        endpoint.failures = 0
        endpoint.retry_at = 0.0
        if old is not None and not old.calls and not old.streams:
            old.close("replaced after GOAWAY")
        elif old is not None and old.closed_reason is None:
            self._draining.add(old)
            old.retire("replaced after GOAWAY")
        endpoint.connection = connection
        if endpoint.removed:
            self._draining.add(connection)
            connection.retire(f"{endpoint.address} was removed from {self.address}")
        if self._closed:
            connection.close()
            raise UnavailableError(f"pipe to {self.address} is closed")
        return connection

    def _slow_down_pings(self) -> None:
        if self._keepalive_interval is None:
            return
        self._keepalive_interval *= 2
        log.warning(
            "%s refused our keepalive PINGs (too many pings); keepalive_interval is now %gs",
            self.address,
            self._keepalive_interval,
        )

    # -- closing ------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every connection; calls and streams in flight end with UNAVAILABLE.
        Idempotent. The pipe closes the resolver it made for a discovery address."""
        self._closed = True
        endpoints, self._endpoints = self._endpoints, ()
        draining, self._draining = self._draining, set()
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        resolver, self._resolver = self._resolver, None
        if resolver is not None:
            resolver.close()
        connections = set(draining)
        for endpoint in endpoints:
            connection, endpoint.connection = endpoint.connection, None
            if connection is not None:
                connections.add(connection)
            task = endpoint.connecting
            if task is not None and not task.done():
                task.cancel()
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for connection in connections:
            if connection.loop is running:
                connection.close()
            elif connection.loop.is_closed():
                connection.drop("pipe closed")
            elif connection.loop.is_running():
                connection.loop.call_soon_threadsafe(connection.close)
            else:
                connection.drop("pipe closed")
        if loop is running:
            self._announce()
            # Let the closes reach the transports (their connection_lost) before returning.
            for connection in connections:
                conn = connection.conn
                if connection.loop is running and conn is not None:
                    with contextlib.suppress(TimeoutError, OSError):
                        await asyncio.wait_for(conn.wait_lost(), 1.0)

    def _forget_after_fork(self) -> None:
        """In a child after fork, alone: see `_forget_parent_connections`."""
        self._bind_lock = threading.Lock()
        self._loop = None
        self._news = None
        connections = {e.connection for e in self._endpoints} | self._draining
        self._draining = set()
        for endpoint in self._endpoints:
            endpoint.connection = None
            endpoint.connecting = None
            endpoint.failures = 0
            endpoint.retry_at = 0.0
        for connection in connections:
            if connection is not None:
                connection.forget_after_fork()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


_PIPES: weakref.WeakSet[Pipe] = weakref.WeakSet()
"""Every live aio Pipe, for `_forget_parent_connections`."""


@forksafe.reset_in_child
def _forget_parent_connections() -> None:
    """After fork, in the child: no aio Pipe keeps its parent's connections (forksafe.py).

    The parent's loop does not run in the child (and its epoll set is shared with the
    parent): nothing of it is touched. Each connection's socket descriptor -- the
    child's copy only -- is closed, and the pipe forgets its loop, so the child's
    next call dials a connection of its own on the child's loop."""
    for pipe in list(_PIPES):
        pipe._forget_after_fork()


def _consume(task: asyncio.Task[Any]) -> None:
    """A connect task's failure is its callers'; mark it retrieved so an unawaited one
    is not reported as "exception never retrieved"."""
    if not task.cancelled():
        task.exception()


__all__ = ["REFUSED_OPTIONS", "Pipe", "StreamCall"]

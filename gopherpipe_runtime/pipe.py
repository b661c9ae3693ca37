"""Pipe: the client-side handle to one service address.

A Pipe owns at most one live connection per endpoint (one endpoint for a plain
address) and multiplexes every call from every thread over it: each call gets a
stream id, writes its CALL frame (see writer.py for how concurrent writes
coalesce) and waits for its STATUS.

Endpoints and balancing. A list (``tcp://a:1,b:2``) or a discovery address
(``gophermap://Echo``, ``etcd://HOST:PORT/Echo``) stands for several servers:
the Pipe asks resolver.py for the `Resolver` behind it and keeps an `_Endpoint`
per address it names -- its own connection, reconnect backoff and connect lock --
in a tuple replaced whole when the resolver reports a change, so a call picks
without a lock. `_ready` picks as gRPC's two load-balancing policies do:
"round_robin" (default) gives each call the next endpoint in turn,
"pick_first" keeps to one endpoint until it fails. Either skips an endpoint that
is failing (backing off after a failed connect, or draining after its server's
GOAWAY), and moves on at once from one whose connect fails, so a call that
reached no server goes to the next, and fails (UNAVAILABLE naming every
endpoint, or waits with wait_for_ready) only when none can be reached. A stream
stays on the connection it opened on. An endpoint the resolver drops takes no
new calls: its connection is `retire`d, and closes when the last call or stream
in flight on it ends. An empty list fails calls with UNAVAILABLE "no endpoints
for ..." (a call waiting for ready waits for the resolver's next list). A plain
address has one endpoint for good (`_single`): its calls go straight to its
connection, as before there were several.

Threads. Reading the socket is a role, not a thread (`_Connection`): a unary
caller waiting for its answer, or a receiver waiting on a stream's output
channel, that finds nobody reading reads the socket itself, handing other calls
and streams what arrives for them, and passes the role on when it leaves. So
an answer or a stream item is usually read by the thread that wants it, with
no thread hand-off. While streams are open, one reader thread per connection
reads whenever no caller does (some wait on nothing it could read for: a
producer blocked on a full source, a `select`), and keeps the streams'
deadlines in one heap. A stream's source is sent by an `Outbound` (stream.py)
that holds no thread: its steps run on the producer's `send`, or on the
connection's one step thread (started when needed, gone after a second idle).
Only a generator (or other iterator) source holds a thread, while it produces,
since that is user code that may block. So N open streams cost O(1) threads:
at most the reader, the step thread, and a thread finishing a write the socket
did not take at once.

Transports. `transport.dial` connects and runs the TLS and WebSocket handshakes
the address asks for; their layers (a `transport.Stack`) then sit between the
socket and the frames: the leader passes what it reads through them, the
writer what it sends. tcp://, unix:// and memory:// have none.

Calls with more to them -- interceptors (interceptors.py), a `CancelToken`, a
`response_metadata()` block (calls.py), or a call being served on this thread to
inherit the deadline and marked metadata from -- take `_unary_intercepted`; the
plain unary path checks for those four and goes straight to the connection.
Response headers (a HEADERS frame) and trailers (in STATUS) end up on the
waiter or stream, on a failed call's RpcError, and in the capture block.

It connects lazily, and after the connection drops the next call reconnects.
Failed connects back off exponentially (with jitter), each endpoint on its own; a
call made while every endpoint backs off fails at once with UNAVAILABLE rather
than hanging, as gRPC does without wait-for-ready. A call's deadline bounds
everything it waits for, connecting included: a connect it cuts short raises
DEADLINE_EXCEEDED, as in gRPC, and with one endpoint is not counted for backoff
(it says nothing about the server, and must not fail later calls that have time to
wait); over several it is, so that a server that does not answer is skipped rather
than costing every n-th call its deadline.

Keepalive (keepalive.py, RFC §8.1). A connection from which nothing has been read
for `keepalive_interval` gets a PING; if nothing arrives within `keepalive_timeout`
the server is declared dead: the connection is closed, its calls and streams end
with UNAVAILABLE naming keepalive, and the next call reconnects. Since an idle
connection has nobody reading it, the checks run on keepalive.py's one process-wide
thread (not a thread per connection), which also reads what has arrived when nobody
else is reading. The only cost on the call path is the time of each read
(`last_read`).

Resending. `Pipe.unary` and `Pipe.stream` make a call's first attempt inline; only
one that fails with UNAVAILABLE goes on to `Pipe._again`, so a call that succeeds
pays for retries one comparison (the budget's). What may be resent depends on how
far the attempt got: a call the server provably never saw (GOAWAY named an older
stream, or the connection was found dead before the CALL was written) is resent
at once, whatever its method: once, or once per endpoint over several (the next
pick goes elsewhere); a call of an `idempotent` method is retried on any
UNAVAILABLE with the pipe's `RetryPolicy` (backoff with full jitter, never sleeping
past the deadline, while the per-pipe `RetryBudget` allows: retry.py); any other
call that may have reached the server is never resent. A stream is retried only
while it opens: once its CALL is written, failures arrive on the stream. With
`CallOptions.wait_for_ready` a call that finds no connection waits for one (trying
whenever the reconnect backoff allows) until its deadline, or with none until the
pipe is closed, instead of failing at once.

Fork. A child process after `os.fork()` must not touch its parent's connections: the
sockets are shared, so a GOAWAY or a shutdown from the child would end the parent's
calls. At the fork every live Pipe (`_PIPES`) forgets every endpoint's connection in
the child (`forksafe.py`): the child closes only its own descriptors, makes new locks (a
parent thread may have held the old ones) and dials a connection of its own on its
next call; the parent's connection is untouched.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import random
import select
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from . import forksafe, keepalive
from .address import Address, parse_address
from .calls import CancelToken, ClientCall, ResponseMetadata, current_capture
from .chan import Chan
from .compression import DEFAULT_THRESHOLD, offer_for, supported, wrap
from .context import CallContext, serving_call
from .flow import (
    DEFAULT_CONNECTION_WINDOW_BYTES,
    DEFAULT_STREAM_WINDOW,
    DEFAULT_STREAM_WINDOW_BYTES,
    Credit,
    Inflow,
    ReceiveWindow,
    SendWindow,
    Windows,
)
from .interceptors import Chain, Interceptor
from .pool import StepRunner
from .resolver import Resolver, is_discovery_address, resolver_for
from .retry import NO_BUDGET, RetryBudget, RetryPolicy
from .service import MethodKind
from .status import (
    CancelledError,
    DeadlineExceededError,
    InvalidArgumentError,
    ResourceExhaustedError,
    RpcError,
    StatusCode,
    UnavailableError,
)
from .stream import (
    LEAD_DONE,
    LEAD_TIMED_OUT,
    LEAD_WAIT,
    InboundChan,
    Outbound,
    PumpOutcome,
    message_frames,
    stop_source,
)
from .transport import Stack, TransportError, dial
from .wire import frames
from .wire.codec import (
    CODECS,
    DEFAULT_CODECS,
    DEFAULT_MAX_DECODED_SIZE,
    DEFAULT_MAX_NESTING_DEPTH,
    Codec,
    CodecError,
    CodecLimitError,
    codecs_with_limits,
)
from .wire.envelope import (
    DEFAULT_MAX_METADATA_SIZE,
    MAX_TIMEOUT_MS,
    LimitExceeded,
    decode_headers,
    decode_status_with_trailers,
    encode_call,
    metadata_size,
)
from .wire.frames import (
    PREFACE,
    FrameDecoder,
    FrameType,
    ProtocolError,
    decode_goaway,
    encode_frame,
    encode_goaway,
    encode_stream_frame,
)
from .wire.handshake import HandshakeError, Settings, client_accept, client_hello
from .writer import ConnectionLost, FrameWriter

log = logging.getLogger("gopherpipe.client")

_READ_SIZE = 64 * 1024
"""Bytes asked of each `recv`. `recv(n)` allocates n bytes before it knows how many
arrive; at 128 KiB and above glibc serves that with mmap (and the shrink with
mremap, the free with munmap) unless its adaptive threshold happens to have
risen, so a 256 KiB read cost three extra syscalls per call in some processes
and not others (measured: +30 µs on the unary p50). 64 KiB stays on the heap
and still takes a stream's backlog in few reads."""
_MAX_POLL_MS = 2**31 - 1
_monotonic = time.monotonic
_LEAD_GRACE_S = 0.002
"""How long the read lock stays free before the reader thread takes it: a caller
reading for itself a round trip at a time comes back for it sooner."""
_STEP_THREAD_IDLE_S = 1.0
_KEEPALIVE_MAX_READS = 64
"""Reads the keepalive thread makes for a connection nobody else reads, at most, per
check: enough to take in what an idle connection received, without becoming its
reader for long."""


@dataclass(frozen=True, slots=True)
class CallOptions:
    timeout: float | None = None
    """Seconds from the start of the call; None waits as long as the connection lives."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    cancel: CancelToken | None = None
    """Cancelling it ends the call with CANCELLED and tells the server (calls.py)."""
    wait_for_ready: bool = False
    """While the server cannot be reached, wait for it (until the deadline; with none,
    until the pipe is closed) instead of failing at once with UNAVAILABLE."""


_PENDING, _DONE, _LEAD = 0, 1, 2
_UNKNOWN = StatusCode.UNKNOWN.value


class _Waiter:
    """One call waiting for its STATUS.

    `wake` is released exactly once per state change away from PENDING: to DONE
    (the answer is in) or to LEAD (this thread should take over reading). All
    state changes happen under the connection's mutex.
    """

    __slots__ = (
        "code",
        "expired",
        "headers",
        "message",
        "result",
        "retryable",
        "state",
        "trailers",
        "wake",
    )

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.state = _PENDING
        self.code = _UNKNOWN
        self.message = ""
        self.result: Any = None
        self.retryable = False
        self.expired = False
        """Our own deadline ended the wait; the server may have sent nothing."""
        self.headers: dict[str, str] | None = None
        self.trailers: dict[str, str] | None = None


class _NotProcessed(Exception):
    """The server never saw this call (GOAWAY named an older last stream, or the
    connection had failed before the CALL was queued); safe to resend. The message,
    if any, says why."""


class ClientStream:
    """A streaming call in progress: what `Pipe.stream` returns.

    `output` is the channel of items from the server (server and bidi streams).
    The stream holds it only weakly once `take_output` has handed it over: a
    caller that drops the channel without closing it abandons the call, and the
    server is told (CANCEL) as soon as the channel is collected.
    `result()` waits for the call's final status. Items from `source` (client and
    bidi streams) are sent by an `Outbound` (stream.py), which holds no thread
    while it waits; its deadline is kept by the connection's reader.
    """

    def __init__(
        self,
        connection: _Connection,
        stream_id: int,
        name: str,
        source: Iterable[Any] | None,
        encode_item: Callable[[Any], Any] | None,
        sink: ResponseMetadata | None = None,
    ) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self.name = name
        self._source = source
        self._encode_item = encode_item
        self._output: InboundChan[Any] | None = None
        self._output_ref: weakref.ref[InboundChan[Any]] | None = None
        self.credit: Credit | None = None
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._pumping = False
        self.code = _UNKNOWN
        self.message = ""
        self.result_value: Any = None
        self.headers: dict[str, str] | None = None
        self.trailers: dict[str, str] | None = None
        self.sink = sink
        """The `response_metadata()` block the stream was opened in, if any."""
        self._end_callbacks: list[Callable[[int, str], None]] = []

    def on_end(self, callback: Callable[[int, str], None]) -> None:
        """Run `callback(code, message)` when the call ends (at once if it has)."""
        with self._lock:
            if not self._ended.is_set():
                self._end_callbacks.append(callback)
                return
        callback(self.code, self.message)

    def got_headers(self, headers: dict[str, str]) -> None:
        self.headers = headers
        if self.sink is not None:
            self.sink.headers = headers

    def error(self, code: int, message: str) -> RpcError:
        """The RpcError for this call's failure, with its headers and trailers."""
        return _error(code, message, self.headers, self.trailers)

    def attach_output(self, output: InboundChan[Any]) -> None:
        self._output = output
        self._output_ref = weakref.ref(output)
        weakref.finalize(output, self._abandoned)

    @property
    def output(self) -> InboundChan[Any] | None:
        """The output channel, while somebody still holds it."""
        return None if self._output_ref is None else self._output_ref()

    def take_output(self) -> InboundChan[Any]:
        """Hand the output channel to the caller, who from now on owns it alone."""
        output, self._output = self._output, None
        assert output is not None, "this stream has no output"
        return output

    def _abandoned(self) -> None:
        if not self._ended.is_set():
            self.cancel("the output channel was dropped without being closed")

    def result(self) -> Any:
        """Wait for the final status: the wire result, or RpcError."""
        self._ended.wait()
        if self.code == 0:
            return self.result_value
        raise self.error(self.code, self.message)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def cancel(self, message: str = "cancelled by the client") -> None:
        """Abandon the call: the server is told, local waiters get CANCELLED."""
        if self._connection.forget_stream(self.stream_id, send_cancel=True):
            self.end(StatusCode.CANCELLED, message, None)

    def expire(self) -> None:
        """The deadline passed (called by the connection's reader)."""
        if self._connection.forget_stream(self.stream_id, send_cancel=True):
            self.end(StatusCode.DEADLINE_EXCEEDED, f"{self.name} passed its deadline", None)

    def end(self, code: int, message: str, result: Any) -> None:
        """The call is over (STATUS, cancel, deadline, connection lost); idempotent."""
        with self._lock:
            if self._ended.is_set():
                return
            self.code, self.message, self.result_value = code, message, result
            self._ended.set()
            pumping = self._pumping
            callbacks, self._end_callbacks = self._end_callbacks, []
        sink = self.sink
        if sink is not None:
            sink.code = StatusCode(code)
            sink.trailers = self.trailers or {}
        if self.credit is not None:
            self.credit.abort()
        if pumping and self._source is not None:
            # The sender may be parked on the caller's source: closing it wakes the
            # sender, and tells whoever feeds it that the call is over (before the
            # output says so, so that whoever sees the one sees the other).
            stop_source(self._source, f"{self.name} ended: {message or 'done'}")
        output = self.output
        if output is not None:
            output.finish(None if code == 0 else self.error(code, message))
            self._connection.wake_leader(output)
        for callback in callbacks:
            callback(code, message)
        if self._connection.draining is not None:
            self._connection.close_if_drained()

    def start(self, deadline: float | None) -> None:
        """Start sending `source`, and keep `deadline`; the CALL_STREAM is written."""
        connection = self._connection
        if deadline is not None:
            connection.add_deadline(deadline, self)
        source = self._source
        if source is None:
            return
        assert self._encode_item is not None and self.credit is not None
        codec = connection.codec
        stream_id = self.stream_id
        max_frame_size = connection.settings.peer_max_frame_size

        def make_frames(batch: list[Any]) -> list[bytes]:
            return message_frames(codec, stream_id, batch, max_frame_size)

        # Taking from a Chan, list or tuple never blocks, so its steps run on the
        # producer's `send`, this thread, or the connection's step thread. Any other
        # iterable is user code that may block: its steps get a thread each, which
        # ends when the step parks (on credit) or the source ends.
        steps_block = not isinstance(source, Chan | list | tuple)
        self._pumping = True
        Outbound(
            source,
            self._encode_item,
            make_frames,
            self.credit,
            connection.writer.write_nowait,
            _never_park,
            _step_in_thread if steps_block else connection.run_step,
            self._sent,
        ).start(here=not steps_block)

    def _sent(self, outcome: str, error: BaseException | None) -> None:
        """The source is sent, or sending stopped (from a step of the Outbound)."""
        with self._lock:
            self._pumping = False
        connection = self._connection
        if outcome == PumpOutcome.DONE:
            connection.writer.write_nowait(
                encode_stream_frame(FrameType.HALF_CLOSE, self.stream_id, b"")
            )
        elif outcome in (PumpOutcome.FAILED, PumpOutcome.BAD_ITEM) and not self.ended:
            if isinstance(error, RpcError):
                code, message = error.code, error.message
            else:
                code, message = StatusCode.CANCELLED, f"the client's stream failed: {error!r}"
            if connection.forget_stream(self.stream_id, send_cancel=True):
                self.end(code, message, None)


def _error(
    code: int, message: str, headers: dict[str, str] | None, trailers: dict[str, str] | None
) -> RpcError:
    error = RpcError(code, message)
    if headers:
        error.headers = headers
    if trailers:
        error.trailers = trailers
    return error


def _never_park(resume: Callable[[], None]) -> bool:
    # The client's writer queue is bounded by the peer's credit (flow.py): what a
    # stream queues is what the server said it can take.
    return False


def _step_in_thread(step: Callable[[], None]) -> bool:
    threading.Thread(target=step, name="gopherpipe-source", daemon=True).start()
    return True


class _Connection:
    """One connection, read by whichever thread is the current leader.

    A thread that finds nobody reading (the read lock free) becomes the leader
    and reads the socket until what it waits for has arrived -- its STATUS
    (`_wait`), an item on its stream's output (`lead`) -- handing other threads
    theirs on the way; when it leaves it promotes a waiting thread to lead (a
    unary caller first, then a stream receiver). With one calling thread that
    means an answer is read by the thread that wants it, with no thread
    handoff -- on a loaded 2-core machine a handoff costs as much as the rest of
    the client-side work together.

    Streams need reading even when nobody waits in a read (CREDIT for a source
    whose producer is blocked on it, STATUS for `result()`, a `select` on an
    output, deadlines). So while any stream is open a reader thread (`_reader`)
    takes the role whenever it has been free for `_LEAD_GRACE_S` -- not at once,
    since a caller reading a round trip at a time comes back for it sooner --
    and gives it up as soon as a caller waits to read for itself. It also keeps
    the streams' deadlines (a heap, checked at each wake-up; a new earliest
    deadline wakes it through a pipe it polls with the socket), and leaves when
    the last stream ends.

    Keepalive (`keepalive_check`) runs on keepalive.py's thread: it reads for the
    connection when nobody holds the read lock (an idle connection), pings once
    nothing has been read for the interval, and shuts the connection when nothing
    arrives within the timeout after the PING. A reader that holds the lock but has
    not got round to reading (a busy process) is not mistaken for a silent server:
    bytes waiting in the socket count as an answer.
    """

    def __init__(
        self,
        sock: socket.socket,
        settings: Settings,
        write_timeout: float,
        decoder: FrameDecoder,
        windows: Windows,
        stack: Stack | None = None,
        codec: Codec | None = None,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
        keepalive_interval: float | None = None,
        keepalive_timeout: float = keepalive.DEFAULT_TIMEOUT,
        address: str = "",
    ) -> None:
        self.sock = sock
        self.address = address
        """The endpoint this connects to, for messages."""
        self.draining: str | None = None
        """Why it takes no new calls and closes once its last call or stream ends
        (`retire`), if it does."""
        self._stack = stack
        """Transport layers (TLS, WebSocket) between the socket and the frames, if any."""
        self.max_metadata_size = max_metadata_size
        """Bytes of response headers or trailers accepted for one call."""
        self.settings = settings
        self.codec: Codec = CODECS[settings.codec] if codec is None else codec
        self.decoder = decoder
        self.calls: dict[int, _Waiter] = {}
        self.streams: dict[int, ClientStream] = {}
        self._reader_running = False
        self.windows = windows
        self.send_window = SendWindow(settings.peer_windows.connection_bytes)
        self.receive_window = ReceiveWindow(windows.connection_bytes)
        self._ids = itertools.count(1)
        self._mutex = threading.Lock()
        self._read_lock = threading.Lock()
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)
        self._sock_fd = sock.fileno()
        # The reader thread polls this pipe too, so that a new, earlier deadline or
        # the end of the last stream can cut its poll short.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller.register(self._wake_r, select.POLLIN)
        self._close_wake_fds = weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        self.closed_reason: str | None = None
        self.goaway = False
        self.writer = FrameWriter(sock, write_timeout, self._on_write_error, _send_in_thread)
        if stack is not None:
            self.writer.transform = stack.send
        self._steps = StepRunner("gopherpipe-client-steps", idle_exit=_STEP_THREAD_IDLE_S)
        self._stream_waiters: dict[InboundChan[Any], None] = {}
        """Receivers waiting on a stream's output while another thread reads (mutex)."""
        self._deadlines: list[tuple[float, int, ClientStream]] = []
        """A heap of the open streams' deadlines (mutex); the reader thread keeps them."""
        self._reader_cond = threading.Condition(threading.Lock())
        self._reader_ident: int | None = None
        self._reader_polling = False
        """The reader thread is reading (it holds the read lock and polls)."""
        self._reader_notify = False
        """The reader thread waits for the read lock to come free (`_reader_cond`)."""
        self._reader_kicked = False
        """`_kick_reader` asked the reader thread to look again (deadlines, streams)."""
        self._released_at = 0.0
        self._leading_for: InboundChan[Any] | None = None
        """The output a receiver reads the socket for (read lock held)."""
        self.last_read = time.monotonic()
        """When bytes were last read from the socket: proof that the server lives."""
        self.too_many_pings = False
        """The server refused our PING rate (GOAWAY "too many pings")."""
        self._keepalive_interval = keepalive_interval
        self._keepalive_timeout = keepalive_timeout
        self._ping_sent_at: float | None = None
        """When the unanswered PING went out (keepalive thread only)."""
        self._pings = 0
        self._sock_poller: select.poll | None = None
        self._keepalive_watch: keepalive.Watch | None = None
        if keepalive_interval is not None:
            self._keepalive_watch = keepalive.watch(self, self.last_read + keepalive_interval)

    @property
    def usable(self) -> bool:
        return self.closed_reason is None and not self.goaway

    def _call_body(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
    ) -> bytes:
        """The CALL payload; oversized or unencodable requests fail here, locally."""
        timeout_ms = None
        if deadline is not None:
            # What is left, not options.timeout: connecting may have used some of it.
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            timeout_ms = min(MAX_TIMEOUT_MS, max(0, remaining_ms))
        metadata = options.metadata
        if type(metadata) is not dict:
            metadata = dict(metadata)  # a codec takes a plain dict
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

    def _new_stream_id(self) -> int:
        """The next stream id (mutex held); _NotProcessed if this connection takes no calls."""
        if self.closed_reason is not None or self.goaway:
            raise _NotProcessed()
        stream_id = next(self._ids)
        if stream_id > frames.MAX_STREAM_ID:
            self.goaway = True  # ids never repeat on a connection; use a fresh one
            raise _NotProcessed()
        return stream_id

    def unary(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
        sink: ResponseMetadata | None = None,
    ) -> Any:
        body = self._call_body(service, method, args, options, deadline)
        waiter = _Waiter()
        with self._mutex:
            stream_id = self._new_stream_id()
            self.calls[stream_id] = waiter
        cancel = options.cancel
        if cancel is not None:
            cancel_key = cancel._register(
                lambda reason: self._cancel_call(stream_id, waiter, reason)
            )
            if cancel_key is None:
                with self._mutex:
                    self.calls.pop(stream_id, None)
                raise CancelledError(f"{service}.{method}: {cancel.reason}")
        try:
            self.writer.write(encode_stream_frame(FrameType.CALL, stream_id, body))
        except ConnectionLost as exc:
            # `write` raises only when the connection had failed before it queued the
            # frame: not a byte of this CALL went out.
            with self._mutex:
                self.calls.pop(stream_id, None)
            if cancel is not None:
                cancel._unregister(cancel_key)
            self._shut(f"connection lost: {exc}")  # so that the resend goes elsewhere
            raise _NotProcessed(f"connection lost: {exc}") from None
        self._wait(waiter, stream_id, deadline)
        if self.draining is not None:
            self.close_if_drained()
        if cancel is not None:
            cancel._unregister(cancel_key)
        if sink is not None:
            sink.headers = waiter.headers or {}
            sink.trailers = waiter.trailers or {}
            sink.code = StatusCode(waiter.code)
        if waiter.code == 0:
            return waiter.result
        if waiter.retryable:
            raise _NotProcessed(waiter.message)  # the GOAWAY's: why it was refused
        if waiter.expired:
            timeout = 0.0 if options.timeout is None else options.timeout
            raise DeadlineExceededError(f"{service}.{method} did not answer within {timeout:g}s")
        raise _error(waiter.code, waiter.message, waiter.headers, waiter.trailers)

    def _cancel_call(self, stream_id: int, waiter: _Waiter, reason: str) -> None:
        """A CancelToken fired (any thread): end the call and tell the server."""
        with self._mutex:
            if self.calls.get(stream_id) is not waiter:
                return  # answered, expired or failed meanwhile
            del self.calls[stream_id]
            offered_lead = waiter.state == _LEAD
            self._finish(waiter, StatusCode.CANCELLED, reason, None)
        with contextlib.suppress(ConnectionLost):
            self.writer.write_nowait(encode_stream_frame(FrameType.CANCEL, stream_id, b""))
        with contextlib.suppress(OSError):  # the caller may be the one polling the socket
            os.write(self._wake_w, b"c")
        if offered_lead:
            self._promote_next()  # the role it was offered must not be lost with it

    def open_stream(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
        source: Iterable[Any] | None,
        encode_item: Callable[[Any], Any] | None,
        decode_item: Callable[[Any], Any] | None,
        sink: ResponseMetadata | None = None,
    ) -> ClientStream:
        body = self._call_body(service, method, args, options, deadline)
        with self._mutex:
            stream_id = self._new_stream_id()
            stream = ClientStream(self, stream_id, f"{service}.{method}", source, encode_item, sink)
            if decode_item is not None:
                stream.attach_output(self._inbound(stream, decode_item))
            if source is not None:
                peer = self.settings.peer_windows
                stream.credit = Credit(peer.items, peer.stream_bytes, self.send_window)
            self.streams[stream_id] = stream
            start_reader = not self._reader_running
            self._reader_running = True
        if start_reader:
            threading.Thread(
                target=self._reader, name="gopherpipe-client-reader", daemon=True
            ).start()
        frame_type = FrameType.CALL if source is None else FrameType.CALL_STREAM
        try:
            self.writer.write(encode_stream_frame(frame_type, stream_id, body))
        except ConnectionLost as exc:
            # Not written (see `unary`): the stream can open elsewhere, or again.
            self.forget_stream(stream_id, send_cancel=False)
            self._shut(f"connection lost: {exc}")
            raise _NotProcessed(f"connection lost: {exc}") from None
        stream.start(deadline)
        return stream

    def _inbound(self, stream: ClientStream, decode_item: Callable[[Any], Any]) -> InboundChan[Any]:
        writer = self.writer
        stream_id = stream.stream_id

        def return_credit(items: int, nbytes: int) -> None:
            writer.write_nowait(frames.encode_credit(stream_id, items, nbytes))

        windows = self.windows
        inflow = Inflow(self.receive_window, windows.items, windows.stream_bytes, return_credit)
        inbound: InboundChan[Any] = InboundChan(inflow, windows.items, stream.cancel)
        inbound.decode_item = decode_item
        inbound.leader = self
        return inbound

    def forget_stream(self, stream_id: int, send_cancel: bool) -> bool:
        """Drop a stream from the table; True if it was still there."""
        with self._mutex:
            stream = self.streams.pop(stream_id, None)
            last = not self.streams
        if stream is None:
            return False
        if last:
            self._kick_reader()  # it leaves once no stream is open
        if send_cancel:
            with contextlib.suppress(ConnectionLost):
                self.writer.write_nowait(encode_stream_frame(FrameType.CANCEL, stream_id, b""))
        return True

    # -- the reader thread and the stream receivers that read ----------------------------

    def run_step(self, step: Callable[[], None]) -> bool:
        """Run a stream sender's step on the connection's step thread."""
        return self._steps.submit(step)

    def add_deadline(self, deadline: float, stream: ClientStream) -> None:
        with self._mutex:
            heap = self._deadlines
            if len(heap) > 64 and len(heap) > 2 * len(self.streams):
                heap[:] = [entry for entry in heap if not entry[2].ended]
                heapq.heapify(heap)
            heapq.heappush(heap, (deadline, stream.stream_id, stream))
            first = heap[0][2] is stream
        if first:
            self._kick_reader()

    def _expire_due(self) -> float | None:
        """End the streams whose deadline passed; the next deadline, if any."""
        now = time.monotonic()
        due: list[ClientStream] = []
        with self._mutex:
            heap = self._deadlines
            while heap and (heap[0][0] <= now or heap[0][2].ended):
                entry = heapq.heappop(heap)
                if not entry[2].ended:
                    due.append(entry[2])
            next_deadline = heap[0][0] if heap else None
        for stream in due:
            stream.expire()
        return next_deadline

    def _kick_reader(self) -> None:
        """Make the reader thread look again (at the deadlines, at whether streams are open)."""
        if self._reader_ident == threading.get_ident():
            return
        if self._reader_polling:
            with contextlib.suppress(OSError):  # full: it will wake anyway
                os.write(self._wake_w, b"k")
        with self._reader_cond:
            self._reader_kicked = True
            self._reader_cond.notify()

    def _reader(self) -> None:
        """Read while streams are open and no caller is reading (class docstring)."""
        self._reader_ident = threading.get_ident()
        try:
            while True:
                self._reader_kicked = False
                next_deadline = self._expire_due()
                with self._mutex:
                    if not self.streams or self.closed_reason is not None:
                        self._reader_running = False
                        self._deadlines.clear()
                        return
                now = time.monotonic()
                free_for = now - self._released_at
                if (
                    free_for >= _LEAD_GRACE_S
                    and not self._read_lock.locked()
                    and self._read_lock.acquire(blocking=False)
                ):
                    try:
                        self._reader_lead()
                    finally:
                        self._read_lock.release()
                        self._promote_next()
                    continue
                with self._reader_cond:
                    if self._reader_kicked:
                        continue  # kicked since the top of the loop: look again now
                    if next_deadline is None:
                        timeout: float | None = None
                    else:
                        timeout = max(0.0, next_deadline - now)
                    if self._read_lock.locked():
                        # A caller reads: wait until it stops (`_promote_next`).
                        self._reader_notify = True
                        if self._read_lock.locked():
                            self._reader_cond.wait(timeout)
                        self._reader_notify = False
                        if not self._reader_kicked:
                            # Released: wait out the grace before looking again. A caller
                            # reading in turns has the role back by then; waking once per
                            # grace period rather than once per round trip keeps this
                            # thread from taking the GIL off the caller every time.
                            grace = _LEAD_GRACE_S
                            if next_deadline is not None:
                                grace = min(grace, max(0.0, next_deadline - time.monotonic()))
                            self._reader_cond.wait(grace)
                    else:
                        # Free only since a moment ago: a caller reading in turns (a
                        # round trip at a time) is likely to come back for it.
                        grace = _LEAD_GRACE_S - free_for
                        self._reader_cond.wait(grace if timeout is None else min(grace, timeout))
        finally:
            self._reader_ident = None

    def _reader_lead(self) -> None:
        """Read until no stream is open, or a caller waits to read for itself."""
        self._reader_polling = True
        try:
            while True:
                next_deadline = self._expire_due()
                with self._mutex:
                    if not self.streams or self.closed_reason is not None:
                        return
                if next_deadline is None:
                    timeout_ms = None
                else:
                    timeout_ms = min(
                        _MAX_POLL_MS, max(0.0, (next_deadline - time.monotonic()) * 1000.0)
                    )
                if not self._read_once(timeout_ms):
                    return
                if self._stream_waiters or self.calls:
                    return  # they read for themselves from now on (`_promote_next`)
        finally:
            self._reader_polling = False

    def lead(self, chan: InboundChan[Any], deadline: float | None) -> int:
        """A receiver found `chan` empty: read for it if nobody reads (stream.Leader)."""
        if not self._read_lock.acquire(blocking=False):
            with self._mutex:
                chan.lead_offered = False
                self._stream_waiters[chan] = None
            # Registered now; the reader may have left meanwhile, before it could
            # offer us the role: try once more.
            if not self._read_lock.acquire(blocking=False):
                return LEAD_WAIT
            with self._mutex:
                self._stream_waiters.pop(chan, None)
        self._leading_for = chan
        try:
            while not chan._buffer and not chan._closed and self.closed_reason is None:
                if deadline is None:
                    timeout_ms = None
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return LEAD_TIMED_OUT
                    timeout_ms = min(remaining * 1000.0, _MAX_POLL_MS)
                if not self._read_once(timeout_ms):
                    break
            return LEAD_DONE
        finally:
            self._leading_for = None
            self._read_lock.release()
            self._promote_next()

    def wake_leader(self, chan: InboundChan[Any]) -> None:
        """`chan` ended other than by what the socket brought (deadline, cancel): a
        receiver reading the socket for it must stop polling."""
        if self._leading_for is chan:
            with contextlib.suppress(OSError):  # full: it will wake anyway
                os.write(self._wake_w, b"w")

    def unregister(self, chan: InboundChan[Any]) -> None:
        with self._mutex:
            self._stream_waiters.pop(chan, None)

    def _read_once(self, timeout_ms: float | None) -> bool:
        """Read what arrives within `timeout_ms` and dispatch it; False once the connection is gone."""
        events = self._poller.poll(timeout_ms)
        if not events:
            return True
        if events[0][0] != self._sock_fd or len(events) > 1:
            with contextlib.suppress(OSError):  # emptied: a wake-up is a wake-up
                while os.read(self._wake_r, 4096):
                    pass
            if not any(fd == self._sock_fd for fd, _ in events):
                return True
        try:
            data = self.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as exc:
            self._shut(f"connection lost: {exc}")
            return False
        if not data:
            self._shut("connection closed by server")
            return False
        self.last_read = _monotonic()
        stack = self._stack
        if stack is not None:
            try:
                data = stack.receive(data)
            except TransportError as exc:
                if stack.pending:
                    self.writer.write_nowait(b"")
                self._shut(f"connection lost: {exc}")
                return False
            if stack.pending:
                self.writer.write_nowait(b"")
            if not data:
                return True
        try:
            self._dispatch(self.decoder.feed(data))
        except ProtocolError as exc:
            log.warning("protocol error from %s: %s", self.settings.peer_agent, exc)
            # RFC §8: the side that detects it says why, as the last frame, then closes.
            last = max(self.streams, default=0)
            goaway = encode_goaway(last, StatusCode.INTERNAL, f"protocol error: {exc}"[:1000])
            self.writer.write_nowait(goaway, last=True)
            self._shut(f"protocol error from server: {exc}")
            return False
        except Exception as exc:
            # A bug in handling a frame must not silently end the reading thread:
            # every call and stream on this connection would wait for a reader forever.
            log.exception("failed to handle frames from %s", self.settings.peer_agent)
            self._shut(f"client failed reading from server: {exc!r}")
            return False
        return True

    def _wait(self, waiter: _Waiter, stream_id: int, deadline: float | None) -> None:
        while True:
            if self._read_lock.acquire(blocking=False):
                try:
                    self._lead(waiter, deadline)
                finally:
                    if waiter.state != _DONE:  # DONE is final: no need to lock to see it
                        with self._mutex:
                            if waiter.state != _DONE:
                                # Only the deadline ends a lead early. Expire first:
                                # _promote_next picks the oldest pending call, which may
                                # be this one on its way out, and the role would be lost.
                                self._expire(waiter, stream_id)
                    self._read_lock.release()
                    self._promote_next()
            else:
                remaining = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
                if not waiter.wake.acquire(timeout=remaining):
                    with self._mutex:
                        if waiter.state == _PENDING:
                            self._expire(waiter, stream_id)
                            return
                    waiter.wake.acquire()  # a state change raced the deadline
                with self._mutex:
                    if waiter.state == _LEAD:
                        waiter.state = _PENDING
                        continue
            if waiter.state == _DONE:
                return
            if deadline is not None and time.monotonic() >= deadline:
                with self._mutex:
                    if waiter.state != _DONE:
                        self._expire(waiter, stream_id)
                return

    def _expire(self, waiter: _Waiter, stream_id: int) -> None:
        """Give up on a call at its deadline (mutex held)."""
        self.calls.pop(stream_id, None)
        waiter.state = _DONE
        waiter.code = StatusCode.DEADLINE_EXCEEDED
        waiter.expired = True
        with contextlib.suppress(ConnectionLost):
            self.writer.write_nowait(encode_stream_frame(FrameType.CANCEL, stream_id, b""))

    def _lead(self, waiter: _Waiter, deadline: float | None) -> None:
        """Read and dispatch until `waiter` is done or its deadline passes."""
        while waiter.state != _DONE and self.closed_reason is None:
            if deadline is None:
                timeout_ms = None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                # poll() refuses more than 2**31-1 ms; the loop waits out the rest.
                timeout_ms = min(remaining * 1000.0, _MAX_POLL_MS)
            if not self._read_once(timeout_ms):
                return

    def _promote_next(self) -> None:
        """The read lock was released: offer the reading role to a waiting thread.

        A unary call first, then a stream receiver; with neither, the reader thread
        (if streams are open) takes it after a grace period.
        """
        if not (self.calls or self._stream_waiters or self.streams or self._reader_notify):
            # Nobody to offer it to. Safe without the mutex: a unary caller is in
            # `calls` before it tries the read lock, a stream receiver tries again
            # after registering, and the reader thread runs only while streams are open.
            return
        chan: InboundChan[Any] | None = None
        self._released_at = time.monotonic()  # read unlocked by the reader thread
        if self.calls or self._stream_waiters:  # else, with streams open, only the reader
            with self._mutex:
                for other in self.calls.values():
                    if other.state == _PENDING:
                        other.state = _LEAD
                        other.wake.release()
                        return
                for chan in self._stream_waiters:
                    chan.lead_offered = True
                    break
        if chan is not None:
            with chan._lock:
                chan._changed.notify_all()
        # The reader thread is told even so: the receiver offered the role may have
        # what it waited for already, and not take it.
        if self._reader_notify:
            with self._reader_cond:
                self._reader_cond.notify()

    @staticmethod
    def _finish(waiter: _Waiter, code: int, message: str, result: Any) -> None:
        """Complete a waiter (mutex held)."""
        waiter.code = code
        waiter.message = message
        waiter.result = result
        if waiter.state == _PENDING:
            waiter.wake.release()
        waiter.state = _DONE

    def _dispatch(self, received: list[frames.Frame]) -> None:
        for frame in received:
            frame_type = frame.type
            if frame_type == FrameType.MESSAGE:
                stream = self.streams.get(frame.stream_id)
                output = None if stream is None else stream.output
                if output is None:
                    continue  # cancelled, or its channel dropped, while in flight
                try:
                    items = self.codec.decode(frame.payload)
                except CodecLimitError as exc:
                    raise ProtocolError(f"MESSAGE refused: {exc}") from None
                except CodecError as exc:
                    raise ProtocolError(f"malformed MESSAGE: {exc}") from None
                if type(items) is not list or not items:
                    raise ProtocolError("MESSAGE body is not a non-empty array")
                if not output.deliver(items, len(frame.payload)):
                    raise ProtocolError(f"stream {frame.stream_id} sent beyond its credit")
            elif frame_type == FrameType.STATUS:
                try:
                    code, message, result, trailers = decode_status_with_trailers(
                        self.codec, frame.payload
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
                with self._mutex:
                    waiter = self.calls.pop(frame.stream_id, None)
                    if waiter is not None:  # else the caller gave up at its deadline
                        # `_finish`, inlined: this is every unary call's answer.
                        waiter.code = code
                        waiter.message = message
                        waiter.result = result
                        waiter.trailers = trailers
                        if waiter.state == _PENDING:
                            waiter.wake.release()
                        waiter.state = _DONE
                        stream = None
                    else:
                        stream = self.streams.pop(frame.stream_id, None)
                    last = stream is not None and not self.streams
                if stream is not None:
                    stream.trailers = trailers
                    stream.end(code, message, result)
                    if last:
                        self._kick_reader()
            elif frame_type == FrameType.CREDIT:
                stream = self.streams.get(frame.stream_id)
                if stream is not None and stream.credit is not None:
                    stream.credit.grant(*frames.decode_credit(frame.payload))
            elif frame_type == FrameType.CANCEL:
                # The server stops reading our stream (the call goes on until STATUS).
                stream = self.streams.get(frame.stream_id)
                if stream is not None and stream.credit is not None:
                    stream.credit.abort()
            elif frame_type == FrameType.HEADERS:
                self._on_headers(frame.stream_id, decode_headers(self.codec, frame.payload))
            elif frame_type == FrameType.PING:
                self.writer.write_nowait(encode_frame(FrameType.PONG, frame.payload))
            elif frame_type == FrameType.GOAWAY:
                last_stream_id, code, message = decode_goaway(frame.payload)
                if code == StatusCode.RESOURCE_EXHAUSTED and message == keepalive.TOO_MANY_PINGS:
                    self.too_many_pings = True
                with self._mutex:
                    self.goaway = True
                    for stream_id in [s for s in self.calls if s > last_stream_id]:
                        waiter = self.calls.pop(stream_id)
                        waiter.retryable = True
                        self._finish(waiter, StatusCode.UNAVAILABLE, message, None)
                    refused = [
                        self.streams.pop(s) for s in list(self.streams) if s > last_stream_id
                    ]
                for stream in refused:
                    stream.end(StatusCode.UNAVAILABLE, f"server going away: {message}", None)
            elif frame_type in (FrameType.CALL, FrameType.CALL_STREAM, FrameType.HELLO):
                raise ProtocolError(f"unexpected {FrameType(frame_type).name} from a server")

    def _on_headers(self, stream_id: int, headers: dict[str, str]) -> None:
        size = metadata_size(headers)
        refused = size > self.max_metadata_size
        reason = (
            f"response headers of {size} bytes exceed the client's limit of "
            f"{self.max_metadata_size} (max_metadata_size)"
        )
        with self._mutex:
            waiter = self.calls.get(stream_id)
            if waiter is not None:
                if not refused:
                    waiter.headers = headers
                    return
                del self.calls[stream_id]
                self._finish(waiter, StatusCode.RESOURCE_EXHAUSTED, reason, None)
            stream = self.streams.get(stream_id)
        if waiter is not None:
            with contextlib.suppress(ConnectionLost):
                self.writer.write_nowait(encode_stream_frame(FrameType.CANCEL, stream_id, b""))
        elif stream is not None:
            if not refused:
                stream.got_headers(headers)
            elif self.forget_stream(stream_id, send_cancel=True):
                stream.end(StatusCode.RESOURCE_EXHAUSTED, reason, None)

    def poll_idle(self, max_reads: int | None = None) -> None:
        """Before reusing a connection nobody is reading, take in what arrived.

        An idle connection may have received GOAWAY or been closed; learning that
        now lets the next call go to a fresh connection instead of failing.
        """
        if not self._read_lock.acquire(blocking=False):
            return  # a leader is reading; it will see whatever is there
        try:
            reads = 0
            while self.closed_reason is None and self._poller.poll(0):
                if not self._read_once(0):
                    return
                reads += 1
                if reads == max_reads:
                    return
        finally:
            self._read_lock.release()
            self._promote_next()

    def keepalive_check(self, now: float) -> float | None:
        """Ping, or declare the server dead, as due (the keepalive thread calls it
        when it is due); when to look again, None once the connection is closed."""
        interval = self._keepalive_interval
        if self.closed_reason is not None or interval is None:
            return None
        sent = self._ping_sent_at
        if sent is not None and self.last_read > sent:
            sent = self._ping_sent_at = None  # answered: anything read since counts
        if sent is None:
            due = self.last_read + interval
            if now < due:
                return due
            # Nothing read for a whole interval; on an idle connection that is because
            # nobody reads: read for it first (a GOAWAY or a close may be waiting).
            self.poll_idle(_KEEPALIVE_MAX_READS)
            if self.closed_reason is not None:
                return None
            now = _monotonic()
            due = self.last_read + interval
            if now < due:
                return due
            self._ping_sent_at = now
            self._pings += 1
            self.writer.write_nowait(encode_frame(FrameType.PING, self._pings.to_bytes(8, "big")))
            return now + self._keepalive_timeout
        timeout = self._keepalive_timeout
        if now < sent + timeout:
            return sent + timeout
        self.poll_idle(_KEEPALIVE_MAX_READS)  # the PONG of an idle connection waits here
        if self.closed_reason is not None:
            return None
        if self.last_read > sent or self._bytes_waiting():
            # Answered; or bytes are waiting for a reader that holds the read lock but
            # has not got round to reading (a loaded process): alive all the same.
            self._ping_sent_at = None
            return max(self.last_read, _monotonic()) + interval
        message = f"keepalive: no answer from the server within {timeout:g}s"
        log.warning("%s (%s); closing the connection", message, self.settings.peer_agent)
        self._shut(message)
        return None

    def _bytes_waiting(self) -> bool:
        """Bytes (or EOF) wait unread in the socket."""
        if self._sock_poller is None:
            self._sock_poller = select.poll()
            self._sock_poller.register(self._sock_fd, select.POLLIN)
        return bool(self._sock_poller.poll(0))

    def _on_write_error(self, exc: BaseException) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # the leader's next read sees EOF

    def _shut(self, reason: str) -> None:
        with self._mutex:
            if self.closed_reason is not None:
                return
            self.closed_reason = reason
            if self._keepalive_watch is not None:
                keepalive.unwatch(self._keepalive_watch)
            if self._stack is not None and self.writer.idle:
                # A polite end (TLS close_notify, WebSocket close) where it fits now.
                with contextlib.suppress(OSError):
                    self.sock.send(self._stack.close())
            self.writer.close(ConnectionLost(reason))
            with contextlib.suppress(OSError):
                # shutdown first: it wakes a thread polling this socket, which
                # closing alone would not.
                self.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self.sock.close()
            calls, self.calls = self.calls, {}
            for waiter in calls.values():
                self._finish(waiter, StatusCode.UNAVAILABLE, reason, None)
            streams, self.streams = self.streams, {}
        # The step thread is not stopped: a step scheduled from now on finds its
        # stream's credit aborted and ends it (it idles out afterwards).
        self._kick_reader()
        for stream in streams.values():
            stream.end(StatusCode.UNAVAILABLE, reason, None)

    def close(self, reason: str = "pipe closed") -> None:
        self._shut(reason)

    def retire(self, reason: str) -> None:
        """Take no new calls (they get `_NotProcessed`, so they go elsewhere) and close
        once the calls and streams in flight have ended, when they end."""
        with self._mutex:
            self.goaway = True
            self.draining = reason
        self.close_if_drained()

    def close_if_drained(self) -> None:
        """Close a retired connection once nothing is in flight on it (a call or
        stream ending on it calls this; the last one closes it)."""
        with self._mutex:
            idle = not self.calls and not self.streams
        reason = self.draining
        if idle and reason is not None:
            self._shut(reason)

    def forget_after_fork(self) -> None:
        """In a child process after fork: drop this connection, inherited from the parent.

        Nothing is written and nothing shut down: the socket is shared with the parent,
        which goes on using it (a shutdown or a GOAWAY would end its calls). Only the
        child's own descriptors are closed. It runs alone in the child (forksafe.py),
        so it takes no lock and makes new ones (a parent thread may have held the old
        ones at the fork). Calls and streams in flight are the parent's: the child has
        none of their threads, so they are dropped without a word.
        """
        reason = "inherited from the parent process across fork()"
        self.closed_reason = reason
        self._mutex = threading.Lock()
        self._read_lock = threading.Lock()
        self._reader_cond = threading.Condition(threading.Lock())
        self.calls = {}
        self.streams = {}
        self._stream_waiters = {}
        self._deadlines = []
        self.writer.forget_after_fork(ConnectionLost(reason))
        with contextlib.suppress(OSError):
            self.sock.close()  # the child's descriptor only: the parent's stays open
        self._close_wake_fds()


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _send_in_thread(flush: Any) -> bool:
    # Only small control frames (CANCEL, PONG) are written without blocking; when
    # the socket cannot take one at once, finish it on a short-lived thread so the
    # reading thread never waits on the server.
    threading.Thread(target=flush, name="gopherpipe-client-flush", daemon=True).start()
    return True


def _handshake(
    address: Address,
    tls: ssl.SSLContext | None,
    codecs: tuple[str, ...],
    max_frame_size: int,
    windows: Windows,
    timeout: float,
    compression: tuple[str, ...] = (),
) -> tuple[socket.socket, Stack | None, Settings, FrameDecoder, list[frames.Frame]]:
    deadline = time.monotonic() + timeout
    sock, stack, early = dial(address, tls, timeout)
    try:
        offer = client_hello(codecs, max_frame_size, windows, compression)
        hello = PREFACE + encode_frame(FrameType.HELLO, offer)
        sock.sendall(hello if stack is None else stack.send(hello))
        decoder = FrameDecoder(frames.MAX_HELLO_SIZE)
        received = decoder.feed(early)
        while not received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no HELLO from server")
            sock.settimeout(remaining)
            data = sock.recv(_READ_SIZE)
            if not data:
                raise ConnectionError("server closed the connection during the handshake")
            if stack is not None:
                data = stack.receive(data)
                if stack.pending:
                    sock.sendall(stack.send(b""))
            received = decoder.feed(data)
        first = received[0]
        if first.type == FrameType.GOAWAY:
            raise HandshakeError(decode_goaway(first.payload)[2])
        if first.type != FrameType.HELLO:
            raise ProtocolError("server's first frame is not HELLO")
        settings = client_accept(first.payload, codecs, compression)
        decoder.max_frame_size = max_frame_size
        sock.setblocking(False)
        # What came with the HELLO is the connection's from then on: a server that began
        # draining as we connected sends its GOAWAY right behind it (RFC section 8).
        return sock, stack, settings, decoder, received[1:]
    except BaseException:
        sock.close()
        raise


def _with_metadata(options: CallOptions, metadata: Mapping[str, str]) -> CallOptions:
    # What an interceptor left in `ClientCall.metadata`; not `dataclasses.replace`,
    # which costs several times as much on every intercepted call.
    return CallOptions(
        timeout=options.timeout,
        metadata=metadata,
        cancel=options.cancel,
        wait_for_ready=options.wait_for_ready,
    )


def _inherit(
    served: CallContext, options: CallOptions, deadline: float | None, name: str
) -> tuple[CallOptions, float | None]:
    """The options and deadline of a call made while serving `served`: the earlier
    deadline of the two, the metadata marked for propagation under the call's own,
    and the served call's cancellation (unless the call has a CancelToken of its own)."""
    if served.deadline is not None and (deadline is None or served.deadline < deadline):
        deadline = served.deadline
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError(
                f"{name}: the deadline of the call being served "
                f"({served.service}.{served.method}) has passed"
            )
        options = replace(options, timeout=remaining)
    if served.propagated:
        options = replace(options, metadata={**served.propagated, **options.metadata})
    if options.cancel is None:
        options = replace(options, cancel=served.cancel_token)
    return options, deadline


def _deadline(timeout: float | None) -> float | None:
    """The `time.monotonic()` value a call gives up at.

    Longer than the protocol's maximum timeout is as good as the maximum, and
    keeps every wait derived from it within what locks and timers accept.
    """
    if timeout is None:
        return None
    return time.monotonic() + min(MAX_TIMEOUT_MS / 1000, timeout)


_T = TypeVar("_T")
_DEFAULT_RETRY = RetryPolicy()


class _Unreachable(UnavailableError):
    """`Pipe._connect` found no connection: the call was not sent. Never reaches the
    caller as such (`_given_up` makes it a plain UnavailableError)."""


def _given_up(error: UnavailableError, attempts: int, why: str) -> UnavailableError:
    """The error a call ends with after `attempts` attempts, saying why it stops there."""
    notes = [f"{attempts} attempts"] if attempts > 1 else []
    if why:
        notes.append(why)
    if notes:
        return UnavailableError(f"{error.message} ({'; '.join(notes)})")
    return UnavailableError(error.message) if type(error) is _Unreachable else error


class _Endpoint:
    """One server behind the Pipe's address: its connection and its reconnect backoff.

    `lock` is held for a whole connect, so that concurrent calls to one endpoint
    make one connection; calls read `connection` without it.
    """

    __slots__ = (
        "address",
        "compression",
        "connection",
        "failures",
        "last_error",
        "lock",
        "parsed",
        "removed",
        "retry_at",
    )

    def __init__(self, address: str, compression: str | tuple[str, ...] | None) -> None:
        self.address = address
        self.parsed = parse_address(address)
        self.compression = offer_for(self.parsed, compression)
        self.lock = threading.Lock()
        self.connection: _Connection | None = None
        self.failures = 0
        """Connects failed in a row: the exponent of the backoff."""
        self.retry_at = 0.0
        """No connect is tried before this (`time.monotonic()`): backing off."""
        self.last_error = ""
        self.removed = False
        """The resolver dropped it: no new calls; its connection drains."""

    def note(self, now: float) -> str:
        """Why it is skipped, for an error naming every endpoint."""
        wait = self.retry_at - now
        if wait > 0:
            return f"{self.address} ({self.last_error}; next attempt in {wait:.2f}s)"
        return f"{self.address} ({self.last_error})"


BALANCE_POLICIES = ("round_robin", "pick_first")


def checked_options(
    *,
    codec: str | tuple[str, ...],
    balance: str,
    keepalive_interval: float | None,
    keepalive_timeout: float,
    write_timeout: float,
    compression: str | tuple[str, ...] | None,
    tls: ssl.SSLContext | None,
    retry: RetryPolicy | None,
) -> tuple[str, ...]:
    """The checks both Pipes (this one and `aio.Pipe`) make of their options, in the
    same words; returns the codecs offered, in order."""
    if balance not in BALANCE_POLICIES:
        raise ValueError(f"balance must be one of {BALANCE_POLICIES}, not {balance!r}")
    if keepalive_interval is not None and not keepalive_interval > 0:
        raise ValueError("keepalive_interval must be positive (or None: no keepalive)")
    if not keepalive_timeout > 0:
        raise ValueError("keepalive_timeout must be positive")
    if not write_timeout > 0:
        raise ValueError("write_timeout must be positive")
    if compression is not None and compression != "auto":
        # Checked here, not only per endpoint: a discovery address may have none yet.
        supported((compression,) if isinstance(compression, str) else compression, "Pipe")
    if tls is not None and not isinstance(tls, ssl.SSLContext):
        raise TypeError(f"tls must be an ssl.SSLContext, not {type(tls).__name__}")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise TypeError(f"retry must be a RetryPolicy or None, not {type(retry).__name__}")
    codecs = (codec,) if isinstance(codec, str) else tuple(codec)
    unknown = [c for c in codecs if c not in CODECS]
    if unknown:
        raise ValueError(f"unknown codecs {unknown}; available: {sorted(CODECS)}")
    return codecs


class Pipe:
    """One client-side handle to a service address; share it between threads.

    Options:
      codec            "msgpack" (default) or "json"; or a tuple in preference order
      connect_timeout  seconds for TCP connect + HELLO (default 5); a call's own
                       deadline cuts it short (DEADLINE_EXCEEDED, no backoff)
      max_frame_size   largest frame accepted from the server (default 4 MiB)
      write_timeout    seconds the server may stop reading before we give up (30)
      backoff_base / backoff_max   reconnect backoff in seconds (0.05 / 5)
      stream_window    items buffered per server stream before the server must wait (1024)
      stream_window_bytes / connection_window_bytes   bytes of items buffered per server
                       stream (1 MiB) and across the connection's streams (16 MiB)
      compression      algorithms offered in HELLO, preferred first: "auto" (default)
                       offers every one installed (zstd, zlib) off the local host and
                       none over loopback or a Unix socket; None offers none
      compression_threshold   payloads of at least this many bytes are compressed
                       once compression is agreed (default 1 KiB)
      tls              the `ssl.SSLContext` for tls:// and wss:// (default: the
                       system's CAs, `ssl.create_default_context()`); with a client
                       certificate for servers that require one (mTLS):
                       `transport.tls.client_context(ca, certfile=..., keyfile=...)`
      retry            the `RetryPolicy` for calls of `@idempotent` methods that fail
                       with UNAVAILABLE (default `RetryPolicy()`: 5 attempts, backoff
                       0.05 s doubling to 1 s with full jitter, a budget of 10 tokens);
                       None never retries (a call the server provably never saw is
                       still resent once)
      max_decoded_size / max_nesting_depth   what one STATUS or MESSAGE from the
                       server may decode into: bytes of arrays and maps as
                       sys.getsizeof counts them (64 MiB) and how deep they nest,
                       counting the envelope's own (100). A STATUS beyond either
                       fails its call with RESOURCE_EXHAUSTED, a MESSAGE closes the
                       connection (a protocol error: every open call gets UNAVAILABLE)
      max_metadata_size   bytes of response headers or trailers accepted from the server,
                       counted as the server counts request metadata (8 KiB); beyond it
                       the call fails with RESOURCE_EXHAUSTED
      interceptors     `interceptors.Interceptor`s run around every call, outermost first
      balance          over several endpoints (a list ``tcp://a:1,b:2`` or a discovery
                       address): "round_robin" (default) gives each call the next
                       endpoint that is not failing; "pick_first" keeps to the first
                       endpoint that works and moves on only when it fails (gRPC's two
                       policies). Failing endpoints are skipped until their backoff ends
      gophermap        the `discovery.GopherMap` a ``gophermap://Service`` address
                       resolves through (default None: the resolver joins through the
                       address's ``@HOST:PORT`` seed); handed to the resolver only
      gophermap_key    the shared key (bytes) of a keyed GopherMap cluster that a
                       ``gophermap://Service@HOST:PORT`` pipe joins (default None:
                       $GOPHERPIPE_GOPHERMAP_KEY_FILE, if set); handed to the resolver

    A call made on a handler's thread (a service calling another) inherits the
    deadline of the call being served when it is earlier than its own, and
    carries the metadata the server marked for propagation (`Server(...,
    propagate_metadata=)`, `current_call().propagate`); its own metadata wins.
      keepalive_interval   seconds of reading nothing from the server before a PING
                       (default 60; None: never). Keep it at or above the server's
                       `min_ping_interval` (10 s by default): a server refusing our rate
                       (GOAWAY "too many pings") makes the Pipe double it
      keepalive_timeout    seconds the server has to send anything after a PING
                       (default 20); then the connection is closed and its calls and
                       streams end with UNAVAILABLE ("keepalive: no answer from the
                       server within 20s"); the next call reconnects
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
        self._keepalive_interval = keepalive_interval
        self._keepalive_timeout = keepalive_timeout
        self.address = address
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
        chain = Chain(interceptors)
        self._interceptors: Chain | None = chain if chain.all else None
        self._lock = threading.Lock()
        """Guards the endpoint list and closing (connects take their endpoint's lock)."""
        self._news = threading.Condition(self._lock)
        """Notified when the endpoint list changes or the pipe closes (wait_for_ready)."""
        self._generation = 0
        """Counts endpoint list changes (under `_lock`)."""
        self._closed = False
        self._closed_event = threading.Event()
        """Set by `close`: ends the waits of retries and of calls waiting for ready."""
        self._pick_first = balance == "pick_first"
        self._turns = itertools.count()
        """Round robin's turn: `next` on it is atomic, so picking takes no lock."""
        self._sticky: _Endpoint | None = None
        """pick_first's current endpoint."""
        self._draining: set[_Connection] = set()
        """Connections of removed endpoints with calls still in flight (for `close`)."""
        self._resolver: Resolver | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._single: _Endpoint | None = None
        """The one endpoint of a plain address: the hot path's shortcut."""
        self._endpoints: tuple[_Endpoint, ...] = ()
        """The current endpoints, replaced whole on a change, so reads take no lock."""
        if not is_discovery_address(address):
            self._single = _Endpoint(address, compression)
            self._endpoints = (self._single,)
        self._retry = retry
        self._budget = (
            NO_BUDGET if retry is None else RetryBudget(retry.max_tokens, retry.token_ratio)
        )
        if self._single is None:
            discovery = {"gophermap": gophermap, "gophermap_key": gophermap_key}
            self._resolve(address, {k: v for k, v in discovery.items() if v is not None})
        _PIPES.add(self)

    def _resolve(self, address: str, options: Mapping[str, Any]) -> None:
        """Take the endpoints from the address's resolver, and its changes from now on."""
        resolver = resolver_for(address, options)
        self._resolver = resolver
        ref = weakref.ref(self)

        def changed(endpoints: list[str]) -> None:
            # Weakly: a resolver shared by many pipes (a GopherMap's) must not keep
            # a pipe nobody uses alive.
            pipe = ref()
            if pipe is not None:
                pipe._set_endpoints(endpoints)

        # Subscribed before asking, so that no change falls between the two.
        self._unsubscribe = resolver.subscribe(changed)
        self._set_endpoints(resolver.endpoints())

    def _set_endpoints(self, addresses: list[str]) -> None:
        """The resolver's new list (on its thread: nothing here blocks). Endpoints kept
        keep their connection and backoff; a removed one takes no new calls and its
        connection closes once the calls and streams in flight on it end."""
        with self._lock:
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
            removed = list(current.values())
            for endpoint in removed:
                endpoint.removed = True  # before reading its connection: see `_connect`
            self._generation += 1
            self._news.notify_all()
        for endpoint in removed:
            connection = endpoint.connection
            if connection is not None:
                self._retire(connection)

    def _retire(self, connection: _Connection) -> None:
        with self._lock:
            self._draining = {c for c in self._draining if c.closed_reason is None}
            self._draining.add(connection)
        connection.retire(f"{connection.address} was removed from {self.address}")

    @property
    def endpoints(self) -> list[str]:
        """The addresses calls are balanced over now (one for a plain address)."""
        return [endpoint.address for endpoint in self._endpoints]

    @property
    def _connection(self) -> _Connection | None:
        """The first endpoint's connection (for tests and debugging; the only one of a
        plain address)."""
        endpoints = self._endpoints
        return endpoints[0].connection if endpoints else None

    @property
    def _failures(self) -> int:
        """The first endpoint's failed connects in a row (for tests)."""
        endpoints = self._endpoints
        return endpoints[0].failures if endpoints else 0

    @property
    def codec(self) -> str | None:
        """The codec of the live connection (the first endpoint's that has one), if any."""
        for endpoint in self._endpoints:
            connection = endpoint.connection
            if connection is not None:
                return connection.settings.codec
        return None

    @property
    def connected(self) -> bool:
        """Whether the next call would go over the connection the Pipe holds now (as
        last learned; reads nothing): False before the first call, after `close()`,
        and once that connection closed, was declared dead by keepalive or got GOAWAY
        (the next call then reconnects). Over several endpoints: whether any has one."""
        for endpoint in self._endpoints:
            connection = endpoint.connection
            if connection is not None and connection.usable:
                return True
        return False

    def unary(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        idempotent: bool = False,
    ) -> Any:
        """Send one call and wait for its result (wire form); raises RpcError.

        The first attempt runs inline (`_unary`); only a failure with UNAVAILABLE
        goes on to `_again`, which resends the call when that is safe: at once if
        the server provably never saw it, after a backoff (`retry`) if the method is
        `idempotent`, once connected if the call waits for ready. Interceptors see
        the call once, around all of its attempts.
        """
        deadline = None if options.timeout is None else _deadline(options.timeout)
        served = serving_call()
        sink = current_capture()
        if (
            self._interceptors is not None
            or options.cancel is not None
            or served is not None
            or sink is not None
        ):
            return self._unary_intercepted(
                service, method, args, options, deadline, idempotent, served, sink
            )
        return self._unary(service, method, args, options, deadline, None, idempotent)

    def _unary_intercepted(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
        idempotent: bool,
        served: CallContext | None,
        sink: ResponseMetadata | None,
    ) -> Any:
        """A unary call with more to it than the plain path: interceptors, a cancel token,
        a `response_metadata()` block, or a call being served to inherit from."""
        if served is not None:
            options, deadline = _inherit(served, options, deadline, f"{service}.{method}")
        chain = self._interceptors
        if chain is None:
            return self._unary(service, method, args, options, deadline, sink, idempotent)
        call = self._client_call(service, method, MethodKind.UNARY, options, deadline)

        def proceed() -> Any:
            sent = _with_metadata(options, call.metadata)
            return self._unary(service, method, args, sent, deadline, sink, idempotent)

        result = chain.run_or_end(call, proceed)
        chain.end(call, StatusCode.OK, "")
        return result

    def _client_call(
        self,
        service: str,
        method: str,
        kind: MethodKind,
        options: CallOptions,
        deadline: float | None,
    ) -> ClientCall:
        """What the client's interceptors see of a call; their metadata is a copy of the
        options', since they may change it."""
        return ClientCall(
            service, method, kind, dict(options.metadata), deadline, self.address, time.monotonic()
        )

    def _unary(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
        sink: ResponseMetadata | None,
        idempotent: bool,
    ) -> Any:
        endpoint = self._single
        connection = None if endpoint is None else endpoint.connection
        if connection is not None and not connection.calls and not connection.streams:
            connection.poll_idle()
        try:
            if connection is None or connection.closed_reason is not None or connection.goaway:
                connection = self._ready(f"{service}.{method}", options.timeout, deadline)
            result = connection.unary(service, method, args, options, deadline, sink)
        except (_NotProcessed, UnavailableError) as exc:
            failure: Exception = exc  # retried below, outside the handler: no chained traceback
        else:
            budget = self._budget
            if budget.tokens < budget.max_tokens:
                budget.succeeded()
            return result
        return self._again(
            service,
            method,
            options,
            deadline,
            idempotent,
            failure,
            connection,
            lambda c: c.unary(service, method, args, options, deadline, sink),
        )

    def stream(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        *,
        source: Iterable[Any] | None = None,
        encode_item: Callable[[Any], Any] | None = None,
        decode_item: Callable[[Any], Any] | None = None,
        idempotent: bool = False,
    ) -> ClientStream:
        """Open a streaming call.

        `source` (with `encode_item`) is what the client streams, None for none;
        `decode_item` makes an output channel for what the server streams. The
        call is under way when this returns; its failures arrive on the stream,
        except that failing to connect raises (UNAVAILABLE, or DEADLINE_EXCEEDED
        when the call's deadline ran out first). Opening it is retried as a unary
        call is (`_again`); once its CALL is written, a stream is never retried.
        """
        deadline = _deadline(options.timeout)
        served = serving_call()
        if served is not None:
            options, deadline = _inherit(served, options, deadline, f"{service}.{method}")
        sink = current_capture()
        chain = self._interceptors
        if chain is None:
            stream = self._open(
                service,
                method,
                args,
                options,
                deadline,
                source,
                encode_item,
                decode_item,
                sink,
                idempotent,
            )
        else:
            if source is None:
                kind = MethodKind.SERVER_STREAM
            else:
                kind = MethodKind.CLIENT_STREAM if decode_item is None else MethodKind.BIDI
            call = self._client_call(service, method, kind, options, deadline)
            if encode_item is not None:
                encode_item = chain.observing_send(call, encode_item)
            if decode_item is not None:
                decode_item = chain.observing_receive(call, decode_item)
            observed_encode, observed_decode = encode_item, decode_item

            def proceed() -> ClientStream:
                return self._open(
                    service,
                    method,
                    args,
                    _with_metadata(options, call.metadata),
                    deadline,
                    source,
                    observed_encode,
                    observed_decode,
                    sink,
                    idempotent,
                )

            stream = chain.run_or_end(call, proceed)
            stream.on_end(lambda code, message: chain.end(call, code, message))
        cancel = options.cancel
        if cancel is not None:
            key = cancel._register(stream.cancel)
            if key is None:
                stream.cancel(f"{service}.{method}: {cancel.reason}")
            else:
                stream.on_end(lambda code, message: cancel._unregister(key))
        return stream

    def _open(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        deadline: float | None,
        source: Iterable[Any] | None,
        encode_item: Callable[[Any], Any] | None,
        decode_item: Callable[[Any], Any] | None,
        sink: ResponseMetadata | None,
        idempotent: bool,
    ) -> ClientStream:
        def open_on(connection: _Connection) -> ClientStream:
            return connection.open_stream(
                service, method, args, options, deadline, source, encode_item, decode_item, sink
            )

        endpoint = self._single
        connection = None if endpoint is None else endpoint.connection
        if connection is not None and not connection.calls and not connection.streams:
            connection.poll_idle()
        try:
            if connection is None or not connection.usable:
                connection = self._ready(f"{service}.{method}", options.timeout, deadline)
            stream = open_on(connection)
        except (_NotProcessed, UnavailableError) as exc:
            failure: Exception = exc
        else:
            budget = self._budget
            if budget.tokens < budget.max_tokens:
                budget.succeeded()  # it is open: the server is there
            return stream
        return self._again(
            service, method, options, deadline, idempotent, failure, connection, open_on
        )

    def _again(
        self,
        service: str,
        method: str,
        options: CallOptions,
        deadline: float | None,
        idempotent: bool,
        failure: Exception,
        connection: _Connection | None,
        send: Callable[[_Connection], _T],
    ) -> _T:
        """Resend a call whose attempt failed with UNAVAILABLE, while that is safe.

        How far the failed attempt got decides: `_Unreachable` (no connection: the
        call was not sent), `_NotProcessed` (refused unseen: GOAWAY named an older
        stream, or `connection` was found dead before the CALL was written), any
        other UnavailableError (the server may have seen the call). It goes again:
          - unreached, with wait_for_ready: as soon as a connection is made, waiting
            out the reconnect backoff (`_wait_for_ready`; no attempt or token spent);
          - refused unseen: once, at once, whatever the method (over several
            endpoints, once per endpoint: the next pick goes elsewhere);
          - any of them, if the method is idempotent and the pipe has a `retry`
            policy: after `RetryPolicy.backoff` (and no sooner than the next connect
            may be tried), up to `max_attempts` attempts in all, while the budget
            allows and the next attempt can start before the deadline;
        otherwise the last error is raised. Every failed attempt costs the budget a
        token; the pipe closing ends any wait with UNAVAILABLE.
        """
        name = f"{service}.{method}"
        policy = self._retry if idempotent else None
        budget = self._budget
        attempts = 1
        unseen_resends = 0
        while True:
            if isinstance(failure, _NotProcessed):
                assert connection is not None
                reason = (
                    str(failure)
                    or connection.closed_reason
                    or connection.draining
                    or "server going away"
                )
                refuser = connection.address or self.address
                error = UnavailableError(f"{name}: {refuser} refused the call ({reason})")
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
                    # No sooner than the next connect may be tried: an attempt made while
                    # the pipe backs off would fail at once, for nothing.
                    soonest = min((e.retry_at for e in self._endpoints), default=0.0)
                    delay = max(policy.backoff(attempts), soonest - now)
                    if deadline is not None and now + delay >= deadline:
                        raise _given_up(error, attempts, "no time left for another") from None
                    if delay > 0 and self._closed_event.wait(delay):
                        continue  # closed meanwhile: said at the top
                attempts += 1
            try:
                if options.wait_for_ready:
                    connection = self._wait_for_ready(name, options.timeout, deadline, error)
                else:
                    connection = self._ready(name, options.timeout, deadline)
                result = send(connection)
            except (_NotProcessed, UnavailableError) as exc:
                failure = exc
                continue
            if budget.tokens < budget.max_tokens:
                budget.succeeded()
            return result

    def _wait_for_ready(
        self, name: str, timeout: float | None, deadline: float | None, error: RpcError
    ) -> _Connection:
        """Connect, waiting out failures and the reconnect backoff, until the deadline.

        gRPC's wait-for-ready: while no endpoint can be reached the call waits (with
        no deadline, until the pipe is closed), trying each time an endpoint's
        reconnect backoff ends, and, with no endpoints at all, whenever the resolver
        brings a new list; the deadline passing meanwhile raises DEADLINE_EXCEEDED
        naming the last connect error.
        """
        while True:
            if self._closed:
                raise UnavailableError(f"{name}: pipe to {self.address} is closed") from None
            generation = self._generation
            try:
                return self._ready(name, timeout, deadline)
            except _Unreachable as exc:
                error = exc
            now = time.monotonic()
            endpoints = self._endpoints
            wait: float | None
            if endpoints:
                wait = max(0.0, min(endpoint.retry_at for endpoint in endpoints) - now)
                late = deadline is not None and now + wait >= deadline
            else:  # nothing to try before the resolver brings some
                wait = None if deadline is None else deadline - now
                late = wait is not None and wait <= 0
            if late:
                raise DeadlineExceededError(
                    f"{name}: deadline of {timeout:g}s passed while waiting for "
                    f"{self.address} to be ready ({error.message})"
                ) from None
            with self._news:
                if generation == self._generation and not self._closed:
                    self._news.wait(wait)

    def _ready(self, name: str, timeout: float | None, deadline: float | None) -> _Connection:
        """A usable connection to the endpoint the balancing policy picks now.

        With one endpoint: its connection, connecting if needed (`_connect`). With
        several, the candidates are tried in the policy's order -- round robin from
        the next turn, pick_first from the current endpoint -- skipping those backing
        off and moving on from one whose connect fails, so that a call fails (with
        `_Unreachable` naming every endpoint) only when none can be reached. Tried
        only if no other one works: an endpoint another call is connecting to, and
        one whose server sent GOAWAY on a connection still open (it is draining: a
        draining server answers new calls UNAVAILABLE, which a call cannot tell
        from a failure the server saw).
        """
        endpoints = self._endpoints
        count = len(endpoints)
        if count == 1:
            endpoint = endpoints[0]
            connection = endpoint.connection
            if connection is not None and connection.usable:
                if self._single is None and not connection.calls and not connection.streams:
                    connection.poll_idle()
                if connection.usable:
                    return connection
            connection = self._connect(endpoint, name, timeout, deadline, True)
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
                if connection.closed_reason is None and (
                    not connection.calls and not connection.streams
                ):
                    connection.poll_idle()  # a dead server's EOF may be waiting
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
                connection = self._connect(endpoint, name, timeout, deadline, False)
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
                connection = self._connect(endpoint, name, timeout, deadline, True)
            except _Unreachable:
                notes.append(endpoint.note(time.monotonic()))
                continue
            assert connection is not None
            self._sticky = endpoint
            return connection
        raise _Unreachable(f"no endpoint of {self.address} can be reached: {'; '.join(notes)}")

    def _connect(
        self,
        endpoint: _Endpoint,
        name: str,
        timeout: float | None,
        deadline: float | None,
        wait: bool,
    ) -> _Connection | None:
        """The endpoint's live connection, connecting if needed, within the call's `deadline`.

        The endpoint's lock is held for a whole connect, so that concurrent calls make
        one connection; a call waiting for it waits only until its own deadline, and
        one that would rather go elsewhere (not `wait`) gets None at once.
        """
        lock = endpoint.lock
        if not wait:
            if not lock.acquire(blocking=False):
                return None
        elif deadline is None:
            lock.acquire()
        elif not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise DeadlineExceededError(
                f"{name}: deadline of {timeout:g}s passed while another call was connecting "
                f"to {endpoint.address}"
            )
        try:
            if self._closed:
                raise UnavailableError(f"pipe to {self.address} is closed")
            connection = endpoint.connection
            if connection is not None and connection.usable:
                return connection
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
            try:
                sock, stack, settings, decoder, early_frames = _handshake(
                    endpoint.parsed,
                    self._tls,
                    self._codecs,
                    self._max_frame_size,
                    self._windows,
                    connect_timeout,
                    endpoint.compression,
                )
            except (OSError, ProtocolError, HandshakeError) as exc:
                detail = str(exc) or type(exc).__name__
                cut_short = (
                    isinstance(exc, TimeoutError) and connect_timeout < self._connect_timeout
                )
                if not cut_short or self._single is None:
                    # A connect the call's deadline cut short says nothing about the server:
                    # with one endpoint no backoff, which would fail calls that can afford
                    # the full connect_timeout. With several it does back off, or every
                    # n-th call would spend its whole deadline on a server that does not
                    # answer, when others do.
                    endpoint.failures += 1
                    backoff = self._backoff_base * 2 ** (endpoint.failures - 1)
                    endpoint.retry_at = now + min(self._backoff_max, backoff) * random.uniform(
                        0.8, 1.2
                    )
                    endpoint.last_error = detail
                if cut_short:
                    raise DeadlineExceededError(
                        f"{name}: deadline of {timeout:g}s passed while connecting to "
                        f"{endpoint.address} ({detail})"
                    ) from None
                raise _Unreachable(f"cannot reach {endpoint.address}: {detail}") from None
            endpoint.failures = 0
            endpoint.retry_at = 0.0
            if connection is not None and connection.too_many_pings:
                self._slow_down_pings()
            if connection is not None and not connection.calls and not connection.streams:
                connection.close("replaced after GOAWAY")
            codec = wrap(
                self._codec_table[settings.codec],
                settings.compression,
                self._compression_threshold,
                self._max_frame_size,
                settings.peer_max_frame_size,
            )
            connection = _Connection(
                sock,
                settings,
                self._write_timeout,
                decoder,
                self._windows,
                stack,
                codec,
                self._max_metadata_size,
                self._keepalive_interval,
                self._keepalive_timeout,
                endpoint.address,
            )
            if early_frames:  # nobody else holds the connection yet
                try:
                    connection._dispatch(early_frames)
                except ProtocolError as exc:
                    connection.close(f"protocol error from server: {exc}")
                    raise _Unreachable(f"cannot reach {endpoint.address}: {exc}") from None
            endpoint.connection = connection
        finally:
            lock.release()
        # Stored before looking: `_set_endpoints` and `close` set their flag before
        # looking at the connection, so one of the two sees the other.
        if endpoint.removed:
            self._retire(connection)  # the call goes elsewhere (`_NotProcessed`)
        if self._closed:
            connection.close()
            raise UnavailableError(f"pipe to {self.address} is closed")
        return connection

    def _slow_down_pings(self) -> None:
        """The server refused our PING rate: halve it for the connections to come, as
        gRPC's clients do (lock held)."""
        if self._keepalive_interval is None:
            return
        self._keepalive_interval *= 2
        log.warning(
            "%s refused our keepalive PINGs (too many pings); keepalive_interval is now %gs",
            self.address,
            self._keepalive_interval,
        )

    def close(self) -> None:
        """Close every connection; calls in flight end with UNAVAILABLE. Idempotent.

        The pipe closes the resolver it made for a discovery address."""
        with self._lock:
            self._closed = True
            endpoints, self._endpoints = self._endpoints, ()
            draining, self._draining = self._draining, set()
            self._generation += 1
            self._news.notify_all()
        self._closed_event.set()
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        resolver, self._resolver = self._resolver, None
        if resolver is not None:
            resolver.close()
        connections = list(draining)
        for endpoint in endpoints:
            connection, endpoint.connection = endpoint.connection, None
            if connection is not None:
                connections.append(connection)
        for connection in connections:
            connection.close()
        if connections:
            keepalive.settle()

    def _forget_after_fork(self) -> None:
        """In a child process after fork: the next call dials a connection of its own.

        Runs alone in the child (forksafe.py): no lock taken, new ones made (a parent
        thread may have held the old ones: connecting, or waiting on `_closed_event`).
        The parent's connections are dropped without a byte sent
        (`_Connection.forget_after_fork`); the parent goes on using them untouched.
        A resolver's own thread is the resolver's to restart (or not).
        """
        self._lock = threading.Lock()
        self._news = threading.Condition(self._lock)
        closed_event = threading.Event()
        if self._closed:
            closed_event.set()
        self._closed_event = closed_event
        draining, self._draining = self._draining, set()
        for endpoint in self._endpoints:
            endpoint.lock = threading.Lock()
            endpoint.failures = 0
            endpoint.retry_at = 0.0
            if endpoint.connection is not None:
                draining.add(endpoint.connection)
                endpoint.connection = None
        for connection in draining:
            connection.forget_after_fork()

    def __enter__(self) -> Pipe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_PIPES: weakref.WeakSet[Pipe] = weakref.WeakSet()
"""Every live Pipe, for `_forget_parent_connections`."""


@forksafe.reset_in_child
def _forget_parent_connections() -> None:
    """After fork, in the child: no Pipe keeps its parent's connection (forksafe.py)."""
    for pipe in list(_PIPES):
        pipe._forget_after_fork()


__all__ = ["CallOptions", "ClientStream", "Pipe"]

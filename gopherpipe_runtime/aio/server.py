"""Server on asyncio: listeners, connections and handlers as tasks on one event loop.

The threaded `gopherpipe_runtime.Server` with the same addresses, options, wire and
answers (its docstring is the reference; what differs is said here). The sans-IO
parts are the threaded server's own: first-bytes sniffing (`wire.frames.
classify_preamble`, `transport.sniff`), the HELLO choice (`wire.handshake`), call
preparation, STATUS bodies and stream outcomes (`server.prepare_call`, `status_body`,
`stream_status`), flow-control accounting (`flow.py`), transport layers (`transport/`).

Map:
  _ServerConnection  one accepted socket (an `aio.connection.Connection`, asyncio's
                     Protocol): sniffing (TLS first on tls:// and wss:// listeners, the
                     TCP_LITE preface, an HTTP request: WebSocket upgrade or the 400),
                     HELLO, then frames -> the server's `_on_frames`; its calls by id.
  _Call              one open call: its context, inbound stream, credit and task.
  Server             listeners (loop.create_server; memory:// by add_reader), the
                     per-call path, the sweep (timeouts, keepalive), stop and drain.

Tasks: none per connection (a connection is asyncio's Protocol callbacks, and one
timer sweeps them all); one per running call; a short one per memory:// accept.

Calls. Each CALL is prepared on the loop as it arrives (decoded, checked against the
limits, its method found and its arguments decoded: quick, and a refusal costs no
task), then runs as one task: the handler, and for a server or bidi stream the
sending of what it returned (`aio.stream.send_stream`, suspended on credit, on the
source and on the transport's buffer). The task's end (its done callback) writes
the STATUS, after the handler's response HEADERS if it set any. A deadline is an
`asyncio.timeout` around the handler (DEADLINE_EXCEEDED when it fires); a CANCEL
from the client, the connection's loss or the end of `stop`'s grace cancel the
task, so the handler sees `asyncio.CancelledError` where it awaits, and an async
generator it returned is closed. `current_call()` (aio/context.py) is set in the
task's own context.

Handlers (`MethodDef.call`): a coroutine function (unary, client stream); for server
and bidi streams anything returning an async iterator (an async generator), an
`aio.Chan`, any AsyncIterable or Iterable, or a coroutine returning one of those. A
threaded `Chan` is read without blocking the loop. A plain function (the built-in
Health and Reflection services, a sync handler) runs inline on the loop: it must be
quick and never block.

Options as the threaded Server, with these differences:
  max_workers         accepted and ignored: no threads; handlers are tasks
  max_pending_calls   calls running at once server-wide (handler tasks, open
                      streams included); one more gets RESOURCE_EXHAUSTED
  max_outbound_bytes  the transport's write buffer, checked as results are written
                      while it is above its high-water mark, and by the sweep
  write_timeout       checked by the sweep (the write buffer not shrinking)
  interceptors        `intercept` runs as the call starts, with the handler not yet
                      run: its `proceed()` returns the coroutine (or stream) that the
                      server then awaits, as a streaming call's `proceed()` does in
                      the threaded server; raising refuses the call; `on_end` sees
                      the outcome, `on_send`/`on_receive` the items. While
                      `intercept` runs, the threaded `current_call()` is set too
  gophermap / registry  announce and withdraw run in the loop's default executor
                      (an etcd registry does blocking I/O)

Connection lifecycle and stop as the threaded server: beyond `max_connections` a
connection gets GOAWAY (RESOURCE_EXHAUSTED) and is closed; a sweep every quarter
of the shortest timeout (at most 1 s) enforces the handshake, frame, idle and write
deadlines and keepalive; a connection that ends with a GOAWAY (or a 400) lingers,
reading and dropping, so the peer reads it before the close. `stop(grace)`: Health
NOT_SERVING, GOAWAY everywhere, new non-Health calls refused with GOAWAY, up to
`grace` for calls in progress, then listeners and connections close and the calls
left are cancelled. `serve_forever` does that on SIGTERM or SIGINT
(loop.add_signal_handler, where the loop allows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
)
from types import TracebackType
from typing import Any, Self

from .. import keepalive
from ..address import Address
from ..chan import Chan as ThreadedChan
from ..compression import ALGORITHMS, DEFAULT_THRESHOLD, supported, wrap
from ..context import CallContext, Peer
from ..context import set_current_call as set_threaded_call
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
from ..health import HEALTH_SERVICE, HealthState
from ..interceptors import Chain, Interceptor
from ..reflection import REFLECTION_SERVICE, reflection_service
from ..resolver import Announcer
from ..server import (
    DEFAULT_MAX_CONCURRENT_STREAMS,
    Refusal,
    checked_options,
    prepare_call,
    status_body,
    stream_status,
)
from ..service import MethodDef, ServiceDef
from ..status import CancelledError, InvalidArgumentError, RpcError, StatusCode, UnavailableError
from ..stream import message_frames
from ..transport import Stack, TransportClosed, TransportError, listen
from ..transport import memory as memory_transport
from ..transport.memory import MemoryListener
from ..transport.sniff import answer_http, transport_of
from ..transport.tls import TlsLayer
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
    decode_call,
    encode_headers,
)
from ..wire.frames import (
    PREFACE,
    Frame,
    FrameType,
    Preamble,
    ProtocolError,
    classify_preamble,
    encode_frame,
    encode_goaway,
    encode_stream_frame,
)
from ..wire.handshake import HandshakeError, server_choose
from .connection import Connection
from .context import set_current_call
from .stream import Inbound, send_stream

log = logging.getLogger("gopherpipe.aio.server")

_KEEPALIVE_PING = b"keepaliv"
"""The server's PING body (as the threaded server's: any answer counts)."""
_LINGER = 1.0
"""Seconds a connection ending with a GOAWAY (or refused) keeps being read and dropped."""
_HTTP_LINGER = 2.0
"""Seconds after the 400 to an HTTP request before the connection is closed."""
_STOP_CANCEL_WAIT = 0.5
"""Seconds stop() gives the handler tasks it cancelled to finish their cleanup."""
_CALL = int(FrameType.CALL)
_CALL_STREAM = int(FrameType.CALL_STREAM)
_MESSAGE = int(FrameType.MESSAGE)
_CREDIT = int(FrameType.CREDIT)
_HALF_CLOSE = int(FrameType.HALF_CLOSE)
_CANCEL = int(FrameType.CANCEL)
_PING = int(FrameType.PING)
_STATUS = int(FrameType.STATUS)
_HEADERS = int(FrameType.HEADERS)
_OK = int(StatusCode.OK)
_CLIENT_MAY_NOT_SEND = (int(FrameType.HELLO), int(FrameType.STATUS), int(FrameType.HEADERS))

_NO_TIMEOUT = contextlib.nullcontext()
"""A call without a deadline pays for no `asyncio.timeout` (reusable: it holds nothing)."""
Outcome = tuple[int, str, Any]
"""A call's end: STATUS code, message, and the wire result (unary, client stream)."""


def _discard(data: bytes) -> None:
    """`Connection.raw` of a connection on its way out: what the peer still sends is dropped."""


class _Call:
    """One open call: its context, its streams' state, and the task running it."""

    __slots__ = ("context", "credit", "inbound", "intercepted", "task")

    def __init__(self, context: CallContext) -> None:
        self.context = context
        self.inbound: Inbound[Any] | None = None
        """What the client streams (client and bidi streams)."""
        self.credit: Credit | None = None
        """What we may send (server and bidi streams)."""
        self.task: asyncio.Task[Outcome] | None = None
        self.intercepted = False
        """The interceptors saw the call start, so they see it end (`on_end`)."""

    def end(self, error: BaseException) -> None:
        """The call is over from outside (CANCEL, connection lost, stop): unblock it.
        The task's done callback then finds it gone from its connection: no STATUS."""
        self.context.cancel()
        if self.credit is not None:
            self.credit.abort()
        if self.inbound is not None:
            self.inbound.finish(error, discard=True)
        if self.task is not None:
            self.task.cancel()


class _ServerConnection(Connection):
    """One accepted connection: the shared `Connection` plus what the server tracks."""

    def __init__(self, server: Server, listening: Address) -> None:
        super().__init__(self._frames_in, self._gone_away)
        self.server = server
        self.listening = listening
        self.state = "preamble"  # -> hello -> open; -> http; -> discard; -> closed
        self.preamble = b""
        self.codec: Codec | None = None
        self.peer_max_frame_size = frames.MAX_HELLO_SIZE
        self.peer_windows = Windows()
        self.send_window = SendWindow(self.peer_windows.connection_bytes)
        self.receive_window = ReceiveWindow(1)
        self.streams: dict[int, _Call] = {}
        self.caller: Peer | str = ""
        """Who calls: a `Peer` once HELLO is done (what `current_call().peer` reads)."""
        now = time.monotonic()
        self.deadline = now + server._handshake_timeout
        """Before "open" (and while lingering): when the sweep closes it."""
        self.frame_deadline: float | None = None
        self.active = False
        """Bytes arrived since the last sweep (a store per read, not a clock call)."""
        self.got_frames = False
        self.heard_at = now
        self.called = False
        self.quiet_since = now
        self.ping_sent_at: float | None = None
        self.last_ping_at: float | None = None
        self.ping_strikes = 0
        self.stalled_since: float | None = None
        self.stalled_size = 0

    # -- asyncio's Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.listening.scheme not in ("unix", "memory"):
            # asyncio sets TCP_NODELAY only on sockets whose proto says TCP, which an
            # accepted socket of a listener made with proto 0 does not: without it,
            # a stream's small frames wait for the client's delayed ACK (40 ms).
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server._accepted(self)

    def data_received(self, data: bytes) -> None:
        self.active = True
        self.got_frames = False
        try:
            super().data_received(data)
        except Exception as exc:
            # A bug in sniffing what one peer sent costs that connection, not the loop
            # (frames are guarded in `_frames_in`; this is for the `raw` callbacks).
            log.exception("failed handling bytes from %s", self.peer)
            self.server._fail_connection(self, StatusCode.INTERNAL, f"server error: {exc!r}"[:200])
            return
        timeout = self.server._frame_timeout
        if self.state != "open" or not timeout:
            return
        if not self.decoder.buffered:
            self.frame_deadline = None
        elif self.got_frames or self.frame_deadline is None:
            # A frame began in this read: its clock starts now (per frame, not per
            # empty buffer: a busy stream may never leave the buffer empty).
            self.frame_deadline = time.monotonic() + timeout

    def fail(self, error: BaseException) -> None:
        # A frame the decoder refuses (beyond max_frame_size, a bad header) is told to
        # the peer in a GOAWAY before the connection closes, as by the threaded
        # server; a transport's failure is the shared Connection's to handle.
        if isinstance(error, ProtocolError) and self.state in ("hello", "open"):
            self.server._fail_connection(self, StatusCode.INTERNAL, f"protocol error: {error}")
            return
        super().fail(error)

    # -- callbacks from Connection ------------------------------------------------

    def _frames_in(self, received: list[Frame]) -> None:
        self.got_frames = True
        server = self.server
        try:
            server._on_frames(self, received)
        except ProtocolError as exc:
            server._fail_connection(self, StatusCode.INTERNAL, f"protocol error: {exc}")
        except HandshakeError as exc:
            server._fail_connection(self, StatusCode.UNIMPLEMENTED, str(exc))
        except TransportError as exc:
            server._drop_transport(self, exc)
        except Exception as exc:
            # A bug in handling what one peer sent costs that connection, not the loop.
            log.exception("failed handling frames from %s", self.peer)
            server._fail_connection(self, StatusCode.INTERNAL, f"server error: {exc!r}"[:200])

    def _gone_away(self, exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, TransportClosed | ConnectionError):
            log.info("connection from %s lost: %s", self.peer, exc)
        self.server._forget(self)

    # -- sniffing (Connection.raw) --------------------------------------------------

    def first_bytes_tls(self, data: bytes) -> None:
        """A TLS listener's first bytes, before any layer: the TCP_LITE preface in the
        clear gets a GOAWAY it can read; anything else starts TLS."""
        if data[:1] == PREFACE[:1]:
            log.info("closing connection from %s: plain TCP_LITE on a TLS port", self.peer)
            self.server._linger(
                self,
                encode_goaway(
                    0, StatusCode.UNAVAILABLE, "this port speaks TLS: dial tls:// or wss://"
                ),
            )
            return
        tls = self.server._tls
        assert tls is not None
        self.stack = Stack()
        self.stack.push(TlsLayer(tls))
        self.raw = self.sniff
        try:
            data = self.stack.receive(data)
        except TransportError as exc:
            self.server._drop_transport(self, exc)
            return
        finally:
            self.write(b"")  # the handshake's answer (or an alert)
        if data:
            self.sniff(data)

    def sniff(self, data: bytes) -> None:
        """The first bytes after the transport's own: the preface, HTTP, or garbage."""
        seen = self.preamble + data
        kind = classify_preamble(seen)
        if kind is Preamble.NEED_MORE:
            self.preamble = seen
        elif kind is Preamble.TCP_LITE:
            self.preamble = b""
            self.state = "hello"
            self.raw = None
            self.feed(seen[len(PREFACE) :])
        elif kind is Preamble.HTTP:
            self.preamble = b""
            self.state = "http"
            self.raw = self.http
            self.http(seen)
        else:
            log.info("closing connection from %s: not TCP_LITE or HTTP", self.peer)
            self.server._close(self)

    def http(self, data: bytes) -> None:
        head = self.preamble + data
        path = self.listening.path if self.listening.websocket else None
        try:
            answer = answer_http(head, path)
        except TransportError as exc:
            self.server._drop_transport(self, exc)
            return
        if answer is None:
            self.preamble = head
            return
        self.preamble = b""
        if answer.layer is not None:
            # The TCP_LITE connection starts again inside the WebSocket.
            if self.stack is None:
                self.stack = Stack()
            self.stack.push(answer.layer)
            self.write(b"")  # the 101 (or the 404)
            if not answer.accepted:
                log.info("closing connection from %s: WebSocket upgrade to a wrong path", self.peer)
                self.server._linger(self, b"")
                return
            self.state = "preamble"
            self.raw = self.sniff
            if answer.early:
                self.sniff(answer.early)
            return
        # Any other HTTP request: the 400, then read and drop until the client closes
        # (closing with its bytes unread would reset the connection, and could destroy
        # the 400 before the client reads it).
        self.server._linger(self, answer.reply, _HTTP_LINGER)
        transport = self.transport
        if self.stack is None and transport is not None and transport.can_write_eof():
            self.flush()
            transport.write_eof()


class Server:
    """Serves registered services on one or more addresses, on the running event loop.

    `Server(*addresses, **options)` takes the threaded Server's addresses and
    options (see the module docstring for the few that differ); ``await start()``,
    ``await stop(grace)``, ``await serve_forever()``, ``async with Server(...)``.
    `add_service` takes what generated ``register_x_async(server, impl)`` builds.
    Every server answers the built-in Health service, and Reflection unless
    ``reflection=False``. A server runs on the loop that started it.
    """

    def __init__(
        self,
        *addresses: str,
        max_workers: int = 32,
        max_pending_calls: int = 16384,
        max_frame_size: int = frames.DEFAULT_MAX_FRAME_SIZE,
        codecs: tuple[str, ...] = DEFAULT_CODECS,
        handshake_timeout: float = 10.0,
        write_timeout: float = 30.0,
        stream_window: int = DEFAULT_STREAM_WINDOW,
        stream_window_bytes: int = DEFAULT_STREAM_WINDOW_BYTES,
        connection_window_bytes: int = DEFAULT_CONNECTION_WINDOW_BYTES,
        max_outbound_bytes: int = 64 * 1024 * 1024,
        max_connections: int | None = None,
        idle_timeout: float | None = 300.0,
        frame_timeout: float | None = 30.0,
        tls: ssl.SSLContext | None = None,
        compression: tuple[str, ...] = tuple(ALGORITHMS),
        compression_threshold: int = DEFAULT_THRESHOLD,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
        max_decoded_size: int = DEFAULT_MAX_DECODED_SIZE,
        max_nesting_depth: int = DEFAULT_MAX_NESTING_DEPTH,
        interceptors: Iterable[Interceptor] = (),
        propagate_metadata: Iterable[str] = (),
        keepalive_interval: float | None = keepalive.DEFAULT_SERVER_INTERVAL,
        keepalive_timeout: float = keepalive.DEFAULT_TIMEOUT,
        min_ping_interval: float | None = keepalive.DEFAULT_MIN_PING_INTERVAL,
        reflection: bool = True,
        gophermap: Announcer | None = None,
        registry: Announcer | None = None,
        service_meta: Mapping[str, str] | None = None,
    ) -> None:
        # The threaded Server's checks, in the same words; write_timeout is the sweep's
        # here, so it must be positive too.
        self._requested, max_connections, self._sweep_interval = checked_options(
            addresses,
            codecs=codecs,
            max_workers=max_workers,
            max_pending_calls=max_pending_calls,
            max_concurrent_streams=max_concurrent_streams,
            max_metadata_size=max_metadata_size,
            max_frame_size=max_frame_size,
            tls=tls,
            max_connections=max_connections,
            handshake_timeout=handshake_timeout,
            idle_timeout=idle_timeout,
            frame_timeout=frame_timeout,
            keepalive_interval=keepalive_interval,
            keepalive_timeout=keepalive_timeout,
            min_ping_interval=min_ping_interval,
        )
        if write_timeout <= 0:
            raise ValueError("write_timeout must be positive")
        self._codec_table = codecs_with_limits(max_decoded_size, max_nesting_depth)
        self._codecs = tuple(codecs)
        self._max_frame_size = max_frame_size
        self._max_concurrent_streams = max_concurrent_streams
        self._max_metadata_size = max_metadata_size
        self._max_pending_calls = max_pending_calls
        chain = Chain(interceptors)
        self._interceptors: Chain | None = chain if chain.all else None
        self._propagate_metadata = frozenset(propagate_metadata)
        self._tls = tls
        self._compression = supported(tuple(compression), "Server")
        self._compression_threshold = compression_threshold
        self._handshake_timeout = handshake_timeout
        self._write_timeout = write_timeout
        self._windows = Windows(stream_window, stream_window_bytes, connection_window_bytes)
        self._max_outbound_bytes = max_outbound_bytes
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._frame_timeout = frame_timeout
        self._keepalive_interval = keepalive_interval
        self._keepalive_timeout = keepalive_timeout
        self._min_ping_interval = min_ping_interval or None
        self._refusal = encode_goaway(
            0,
            StatusCode.RESOURCE_EXHAUSTED,
            f"server is at its limit of {max_connections} connections",
        )
        self._refused = 0
        self._health = HealthState()
        self._services: dict[str, ServiceDef] = {HEALTH_SERVICE: self._health.service_def()}
        if reflection:
            self._services[REFLECTION_SERVICE] = reflection_service(self._services)
        self._announcers = [a for a in (gophermap, registry) if a is not None]
        self._service_meta = dict(service_meta or {})
        self._announced: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[asyncio.AbstractServer] = []
        self._memory_listeners: list[MemoryListener] = []
        self._bound: list[Address] = []
        self._connections: set[_ServerConnection] = set()
        self._running = 0
        """Calls with a task (handler running or stream sending), server-wide."""
        self._tasks: set[asyncio.Task[Any]] = set()
        """Tasks of the server's own (connection setup, announcing): held so that the
        loop does not collect them while they run."""
        self._idle = asyncio.Event()
        self._sweeper: asyncio.TimerHandle | None = None
        self._started = False
        self._stopping = False
        self._draining = False
        self._stopped = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None

    # -- public API -------------------------------------------------------------------

    def add_service(self, service: ServiceDef) -> None:
        """Register a service (generated ``register_x_async(server, impl)`` calls this)."""
        if service.name in self._services:
            raise ValueError(f"service {service.name!r} is already registered")
        self._services[service.name] = service
        self._health.add(service.name)
        if self._started and not self._stopping:
            self._spawn(self._announce())

    def set_serving(self, name: str, serving: bool) -> None:
        """What the built-in Health service answers for `name` ("" = the server overall);
        as the threaded `Server.set_serving`."""
        self._health.set(name, serving)

    @property
    def addresses(self) -> list[str]:
        """The addresses actually bound, as URLs (real ports when port 0 was asked)."""
        return [str(a) for a in self._bound]

    async def start(self) -> Self:
        """Bind every address and start serving on the running loop."""
        if self._started:
            return self
        loop = asyncio.get_running_loop()
        self._loop = loop
        try:
            for requested in self._requested:
                sock, bound = listen(requested)
                sock.setblocking(False)
                if isinstance(sock, MemoryListener):
                    self._memory_listeners.append(sock)
                    loop.add_reader(sock.fileno(), self._accept_memory, sock, bound)
                else:
                    factory = functools.partial(_ServerConnection, self, bound)
                    listener = await loop.create_server(factory, sock=sock)
                    self._listeners.append(listener)
                self._bound.append(bound)
        except BaseException:
            self._close_listeners()
            self._bound.clear()
            raise
        self._started = True
        self._sweeper = loop.call_later(self._sweep_interval, self._sweep)
        await self._announce()
        return self

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving, as the threaded `Server.stop`: Health turns NOT_SERVING, every
        connection gets GOAWAY, new calls other than Health's are refused (GOAWAY),
        calls in progress get up to `grace` seconds (None or 0: none), then the
        listeners and connections close and the calls left are cancelled. Idempotent;
        awaited on the server's loop."""
        running = asyncio.get_running_loop()
        if self._loop is not None and running is not self._loop:
            # Touching another loop's transports from here would corrupt them.
            raise RuntimeError(
                "Server.stop() must be awaited on the loop that started the server; from "
                "another thread: asyncio.run_coroutine_threadsafe(server.stop(), loop)"
            )
        if self._stop_task is None:
            self._stop_task = running.create_task(self._stop(grace))
        # Shielded: a caller cancelled while waiting does not cut the drain short.
        await asyncio.shield(self._stop_task)

    async def _stop(self, grace: float | None) -> None:
        self._stopping = True
        self._health.shut_down()
        await self._withdraw()
        if not self._started or self._stopped.is_set():
            self._stopped.set()
            return
        self._begin_drain()
        if grace and self._running:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        self._close_listeners()
        for address in self._bound:
            if address.scheme == "unix":
                with contextlib.suppress(OSError):
                    os.unlink(address.path)
        tasks = [call.task for conn in self._connections for call in conn.streams.values()]
        for conn in list(self._connections):
            self._close(conn)
        waiting = [t for t in tasks if t is not None and not t.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=_STOP_CANCEL_WAIT)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._tasks):
            task.cancel()
        self._stopped.set()

    async def serve_forever(self, grace: float | None = 5.0) -> None:
        """start(), then wait until the server stops: stop() awaited elsewhere, or
        SIGTERM or SIGINT, which drain with `stop(grace)`. The signal handlers are the
        loop's (loop.add_signal_handler: the main thread, a Unix loop), installed only
        while this runs; where the loop cannot have them, signals are left alone."""
        await self.start()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []

        def on_signal(signum: int) -> None:
            if self._stopping:
                return  # a second signal does not interrupt the drain
            name = signal.Signals(signum).name
            log.info("%s: draining, up to %ss for calls in progress", name, grace or 0)
            self._spawn(self.stop(grace))

        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append(signum)
        try:
            await self._stopped.wait()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            if not self._stopped.is_set():  # cancelled: still drain
                await self.stop(grace)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(1.0)

    # -- announcing -------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run a task of the server's own (accepting a memory:// connection, announcing,
        a signal's stop), held until it ends and its failure logged."""
        assert self._loop is not None
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._spawned_done)

    def _spawned_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("server task %s failed: %r", task.get_coro(), error)

    async def _announce(self) -> None:
        names = [n for n in self._services if n not in (HEALTH_SERVICE, REFLECTION_SERVICE)]
        if not self._announcers or not names:
            return
        services = {name: self.addresses for name in names}
        loop = asyncio.get_running_loop()
        for announcer in self._announcers:
            await loop.run_in_executor(None, announcer.announce, services, self._service_meta)
        self._announced = names

    async def _withdraw(self) -> None:
        names, self._announced = self._announced, []
        if not names:
            return
        loop = asyncio.get_running_loop()
        for announcer in self._announcers:
            try:
                await loop.run_in_executor(None, announcer.withdraw, names)
            except Exception:  # a registry out of reach must not stop the drain
                log.exception("withdrawing %s from %r failed", names, announcer)

    # -- listeners and connections ------------------------------------------------

    def _accept_memory(self, listener: MemoryListener, bound: Address) -> None:
        """memory:// has no listening socket asyncio could accept on: its doorbell is
        read here, and each waiting socketpair end becomes a connection."""
        loop = self._loop
        assert loop is not None
        for _ in range(64):
            try:
                sock, _peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                with contextlib.suppress(Exception):
                    loop.remove_reader(listener.fileno())
                return
            sock.setblocking(False)
            factory = functools.partial(_ServerConnection, self, bound)
            self._spawn(loop.connect_accepted_socket(factory, sock))

    def _accepted(self, conn: _ServerConnection) -> None:
        """A new connection (from connection_made): refused beyond max_connections,
        else tracked and sniffed."""
        scheme = conn.listening.scheme
        if scheme == "memory":
            conn.peer = memory_transport.PEER
        elif scheme == "unix" and not conn.peer:
            conn.peer = "unix"
        if self._stopped.is_set():
            conn.abort()
            return
        if len(self._connections) >= self._max_connections:
            if not self._refused:
                log.warning(
                    "refusing connections: at the limit of %d (max_connections)",
                    self._max_connections,
                )
            self._refused += 1
            self._linger(conn, self._refusal, track=False)
            return
        if self._refused:
            log.warning("under the connection limit again; refused %d", self._refused)
            self._refused = 0
        self._connections.add(conn)
        conn.raw = conn.first_bytes_tls if conn.listening.tls else conn.sniff

    def _forget(self, conn: _ServerConnection) -> None:
        """The connection is gone (Connection.on_lost): its calls end."""
        conn.state = "closed"
        self._connections.discard(conn)
        self._end_calls(conn, UnavailableError("connection to the client lost"))

    def _close(self, conn: _ServerConnection) -> None:
        if conn.state == "closed":
            return
        conn.close()
        self._forget(conn)

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        loop = self._loop
        for memory in self._memory_listeners:
            if loop is not None:
                with contextlib.suppress(Exception):
                    loop.remove_reader(memory.fileno())
            memory.close()
        self._memory_listeners.clear()

    def _linger(
        self,
        conn: _ServerConnection,
        last: bytes,
        seconds: float = _LINGER,
        *,
        track: bool = True,
    ) -> None:
        """Send `last` (a GOAWAY, a 400, nothing) and close `seconds` later, reading and
        dropping meanwhile: closing with input unread would reset the connection and
        could destroy `last` before the peer reads it. The peer's own close ends it
        sooner."""
        conn.state = "discard"
        conn.raw = _discard
        conn.frame_deadline = None
        if last:
            conn.write(last)
        conn.flush()
        if track:
            conn.deadline = time.monotonic() + seconds  # the sweep closes it
        else:
            assert self._loop is not None
            self._loop.call_later(seconds, conn.abort)

    def _fail_connection(self, conn: _ServerConnection, code: StatusCode, message: str) -> None:
        """GOAWAY naming the last stream, the calls end, and close after a linger (before
        HELLO: closed at once, as the peer reads no GOAWAY yet)."""
        if conn.state in ("discard", "closed"):
            return
        if conn.state not in ("hello", "open"):
            log.info("closing connection from %s: %s", conn.peer, message)
            self._close(conn)
            return
        log.info("closing connection from %s: %s", conn.peer, message)
        last = max(conn.streams, default=0)
        self._end_calls(conn, UnavailableError(message))
        self._linger(conn, encode_goaway(last, code, message))

    def _go_away(self, conn: _ServerConnection, message: str) -> None:
        self._fail_connection(conn, StatusCode.UNAVAILABLE, message)

    def _drop_transport(self, conn: _ServerConnection, exc: TransportError) -> None:
        """The transport failed (a TLS error, a WebSocket text message) or the peer
        closed it: send what the layer owes (an alert, a close), then close."""
        if not isinstance(exc, TransportClosed):
            log.info("closing connection from %s: %s", conn.peer, exc)
        self._end_calls(conn, UnavailableError(str(exc)))
        if isinstance(exc, TransportClosed):
            conn.write(b"")
            self._close(conn)
            return
        self._linger(conn, b"")

    @staticmethod
    def _end_calls(conn: _ServerConnection, error: BaseException) -> None:
        calls = list(conn.streams.values())
        conn.streams.clear()
        for call in calls:
            call.end(error)

    # -- frames ------------------------------------------------------------------

    def _on_frames(self, conn: _ServerConnection, received: list[Frame]) -> None:
        for frame in received:
            if conn.state != "open":
                if conn.state != "hello":
                    return  # failed or lingering: the rest is dropped
                self._on_hello(conn, frame)
                continue
            frame_type = frame.type
            if frame_type == _CALL:
                self._on_call(conn, frame.stream_id, frame.payload, False)
            elif frame_type == _MESSAGE:
                self._on_message(conn, frame.stream_id, frame.payload)
            elif frame_type == _CREDIT:
                call = conn.streams.get(frame.stream_id)
                if call is not None and call.credit is not None:
                    call.credit.grant(*frames.decode_credit(frame.payload))
            elif frame_type == _HALF_CLOSE:
                call = conn.streams.get(frame.stream_id)
                if call is not None and call.inbound is not None:
                    call.inbound.finish()
            elif frame_type == _CALL_STREAM:
                self._on_call(conn, frame.stream_id, frame.payload, True)
            elif frame_type == _CANCEL:
                call = conn.streams.pop(frame.stream_id, None)
                if call is not None:
                    call.end(CancelledError("the client cancelled the call"))
            elif frame_type == _PING:
                if self._ping_refused(conn):
                    return
                conn.write(encode_frame(FrameType.PONG, frame.payload))
            elif frame_type in _CLIENT_MAY_NOT_SEND:
                raise ProtocolError(f"unexpected {FrameType(frame_type).name} from a client")
            # PONG and GOAWAY need no action; unknown types are ignored (RFC: Extensibility).

    def _on_hello(self, conn: _ServerConnection, frame: Frame) -> None:
        if frame.type != FrameType.HELLO:
            raise ProtocolError("the first frame must be HELLO")
        settings, reply = server_choose(
            frame.payload, self._codecs, self._max_frame_size, self._windows, self._compression
        )
        conn.codec = wrap(
            self._codec_table[settings.codec],
            settings.compression,
            self._compression_threshold,
            self._max_frame_size,
            settings.peer_max_frame_size,
        )
        conn.peer_max_frame_size = settings.peer_max_frame_size
        conn.peer_windows = settings.peer_windows
        conn.send_window = SendWindow(settings.peer_windows.connection_bytes)
        conn.receive_window = ReceiveWindow(self._windows.connection_bytes)
        conn.decoder.max_frame_size = self._max_frame_size
        conn.state = "open"
        scheme = conn.listening.scheme
        base = scheme if scheme in ("unix", "memory") else "tcp"
        transport, identity = transport_of(conn.stack, base)
        conn.caller = Peer(conn.peer, transport, identity)
        conn.write(encode_frame(FrameType.HELLO, reply))

    def _ping_refused(self, conn: _ServerConnection) -> bool:
        """The ping policy (threaded server's `_ping_refused`): True once one early PING
        too many made the connection go away."""
        min_interval = self._min_ping_interval
        if min_interval is None:
            return False
        now = time.monotonic()
        last, conn.last_ping_at = conn.last_ping_at, now
        if last is None or now - last >= min_interval:
            conn.ping_strikes = 0
            return False
        conn.ping_strikes += 1
        if conn.ping_strikes <= keepalive.MAX_PING_STRIKES:
            return False
        self._fail_connection(conn, StatusCode.RESOURCE_EXHAUSTED, keepalive.TOO_MANY_PINGS)
        return True

    def _on_message(self, conn: _ServerConnection, stream_id: int, payload: bytes) -> None:
        call = conn.streams.get(stream_id)
        if call is None or call.inbound is None:
            return  # the call ended or was cancelled while this was in flight
        assert conn.codec is not None
        try:
            items = conn.codec.decode(payload)
        except CodecLimitError as exc:
            raise ProtocolError(f"MESSAGE on stream {stream_id} refused: {exc}") from None
        except CodecError as exc:
            raise ProtocolError(f"malformed MESSAGE on stream {stream_id}: {exc}") from None
        if type(items) is not list or not items:
            raise ProtocolError(f"MESSAGE on stream {stream_id} is not a non-empty array")
        if not call.inbound.deliver(items, len(payload)):
            raise ProtocolError(f"stream {stream_id} sent beyond its credit")

    def _reply(self, conn: _ServerConnection, stream_id: int, code: int, message: str) -> None:
        assert conn.codec is not None
        body = status_body(conn.codec, code, message, None, None, conn.peer_max_frame_size)
        conn.write(encode_stream_frame(_STATUS, stream_id, body))

    def _is_health_call(self, conn: _ServerConnection, payload: bytes) -> bool:
        assert conn.codec is not None
        try:
            return decode_call(conn.codec, payload).service == HEALTH_SERVICE
        except ProtocolError:
            return False

    def _begin_drain(self) -> None:
        """stop(), step 2: GOAWAY on every open connection. Listeners stay open, and so
        do connections in their handshake: either may be a health probe."""
        self._draining = True
        for conn in list(self._connections):
            if conn.state == "open":
                last = max(conn.streams, default=0)
                conn.write(encode_goaway(last, StatusCode.UNAVAILABLE, "server is shutting down"))

    # -- calls -------------------------------------------------------------------

    def _on_call(
        self, conn: _ServerConnection, stream_id: int, payload: bytes, client_streams: bool
    ) -> None:
        if stream_id in conn.streams:
            raise ProtocolError(f"stream {stream_id} is already open")
        conn.called = True  # not idle (the sweep)
        if self._draining and not self._is_health_call(conn, payload):
            # GOAWAY naming the streams accepted before this one, not a STATUS: the
            # client knows the call was not processed and may send it elsewhere.
            last = max(conn.streams, default=0)
            conn.write(encode_goaway(last, StatusCode.UNAVAILABLE, "server is shutting down"))
            return
        if len(conn.streams) >= self._max_concurrent_streams:
            self._reply(
                conn,
                stream_id,
                StatusCode.RESOURCE_EXHAUSTED,
                f"this connection has {len(conn.streams)} calls open, the server's limit "
                f"(max_concurrent_streams)",
            )
            return
        if self._running >= self._max_pending_calls:
            self._reply(
                conn,
                stream_id,
                StatusCode.RESOURCE_EXHAUSTED,
                f"server is at its limit of {self._max_pending_calls} pending calls",
            )
            return
        codec = conn.codec
        assert codec is not None
        context = CallContext("", "", {}, conn.caller, None, self._max_metadata_size)
        context.deadline = context.started  # arrival time until the header is read
        call = _Call(context)
        opened = prepare_call(
            codec, payload, context, self._services, self._max_metadata_size,
            self._propagate_metadata,
        )  # fmt: skip
        if isinstance(opened, Refusal):
            self._reply(conn, stream_id, opened.code, opened.message)
            return
        method, args = opened
        # MESSAGEs of a CALL_STREAM are handled after this returns (frames are taken in
        # order, on the loop), so the inbound stream is made in time for them; to a
        # method that takes no stream they go nowhere.
        if method.client_streams:
            decode = method.decode_item
            if decode is not None and self._interceptors is not None:
                decode = self._interceptors.observing_receive(context, decode)
            inbound = call.inbound = self._inbound(conn, stream_id, decode)
            if not client_streams:  # plain CALL: the client's stream is empty
                inbound.finish()
            position = len(args) if method.stream_param is None else method.stream_param
            args = (*args[:position], inbound, *args[position:])
        if method.server_streams:
            windows = conn.peer_windows
            call.credit = Credit(windows.items, windows.stream_bytes, conn.send_window)
        conn.streams[stream_id] = call
        self._running += 1
        loop = self._loop
        assert loop is not None
        task = loop.create_task(self._run(conn, stream_id, call, method, args))
        call.task = task
        task.add_done_callback(functools.partial(self._call_done, conn, stream_id, call))

    def _inbound(
        self, conn: _ServerConnection, stream_id: int, decode: Callable[[Any], Any] | None
    ) -> Inbound[Any]:
        def return_credit(items: int, nbytes: int) -> None:
            conn.write(frames.encode_credit(stream_id, items, nbytes))

        def stop_client() -> None:
            # The handler stopped reading its stream: the client may stop sending.
            conn.write(encode_stream_frame(_CANCEL, stream_id, b""))

        windows = self._windows
        inflow = Inflow(conn.receive_window, windows.items, windows.stream_bytes, return_credit)
        return Inbound(inflow, decode_item=decode, on_abandon=stop_client)

    async def _run(
        self,
        conn: _ServerConnection,
        stream_id: int,
        call: _Call,
        method: MethodDef,
        args: tuple[Any, ...],
    ) -> Outcome:
        """The call's task: the handler, and the stream it returns."""
        context = call.context
        name = f"{context.service}.{context.method}"
        set_current_call(context)
        remaining = context.time_remaining()
        timeout = None if remaining is None else asyncio.timeout(remaining)
        try:
            async with timeout or _NO_TIMEOUT:
                if self._interceptors is None:
                    result = method.call(*args)
                else:
                    call.intercepted = True
                    handler = method.call
                    # Interceptors are the threaded runtime's, and may read its
                    # thread-local current_call(): set while they run (synchronously).
                    set_threaded_call(context)
                    try:
                        result = self._interceptors.run(context, lambda: handler(*args))
                    finally:
                        set_threaded_call(None)
                if method.server_streams:
                    return await self._stream_out(conn, stream_id, call, method, result, name)
                if inspect.isawaitable(result):
                    result = await result
        except TimeoutError as exc:
            if timeout is None or not timeout.expired():  # the handler's own
                log.exception("handler %s raised", name)
                return StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}", None
            return StatusCode.DEADLINE_EXCEEDED, f"{name} did not finish by its deadline", None
        except RpcError as exc:
            return exc.code, exc.message, None
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the caller must always get an answer
            log.exception("handler %s raised", name)
            return StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}", None
        if context.deadline is not None and time.monotonic() > context.deadline:
            # A late success must not race the caller's DEADLINE_EXCEEDED (as gRPC).
            return StatusCode.DEADLINE_EXCEEDED, f"{name} finished after its deadline", None
        try:
            return _OK, "", method.encode_result(result)
        except InvalidArgumentError as exc:
            return StatusCode.INTERNAL, f"handler returned a wrong value: {exc.message}", None

    async def _stream_out(
        self,
        conn: _ServerConnection,
        stream_id: int,
        call: _Call,
        method: MethodDef,
        result: Any,
        name: str,
    ) -> Outcome:
        """Send what a server-streaming handler returned; the call's final status."""
        if inspect.isawaitable(result) and not isinstance(result, AsyncIterable):
            result = await result  # `async def f() -> AsyncIterator`: a coroutine first
        source: AsyncIterable[Any] | Iterable[Any]
        if isinstance(result, ThreadedChan):
            source = _threaded_chan_items(result)
        elif isinstance(result, AsyncIterable | Iterable):
            source = result
        else:
            return (
                StatusCode.INTERNAL,
                f"handler returned {type(result).__name__}, not an async iterator, Chan or "
                f"iterable",
                None,
            )
        context = call.context
        credit = call.credit
        encode_item = method.encode_item
        assert credit is not None and encode_item is not None
        # Headers go before the first item, or not at all: set_headers refuses from now on.
        self._send_headers(conn, stream_id, context)
        if self._interceptors is not None:
            encode_item = self._interceptors.observing_send(context, encode_item)
        codec = conn.codec
        assert codec is not None
        peer_max = conn.peer_max_frame_size

        def make_frames(batch: list[Any]) -> list[bytes]:
            return message_frames(codec, stream_id, batch, peer_max)

        try:
            outcome, error = await send_stream(
                source,
                encode_item=encode_item,
                make_frames=make_frames,
                credit=credit,
                connection=conn,
            )
        finally:
            if isinstance(result, ThreadedChan) and not result.closed:
                # Nobody reads it any more: its producer's next send raises ChanClosed.
                result.close()
        code, message = stream_status(outcome, error, name)
        return code, message, None

    @staticmethod
    def _send_headers(conn: _ServerConnection, stream_id: int, context: CallContext) -> None:
        """The handler's response headers (`set_headers`), once, before anything else."""
        context._headers_sent = True
        headers = context._headers
        if headers:
            assert conn.codec is not None
            conn.write(
                encode_stream_frame(_HEADERS, stream_id, encode_headers(conn.codec, headers))
            )

    def _call_done(
        self, conn: _ServerConnection, stream_id: int, call: _Call, task: asyncio.Task[Outcome]
    ) -> None:
        """The call's task ended: STATUS (unless the call ended from outside), then the
        bookkeeping."""
        if task.cancelled():
            outcome: Outcome = StatusCode.CANCELLED, "cancelled", None
        elif (error := task.exception()) is not None:
            # _run answers what it foresees; this is for a bug, so that it costs the
            # caller one call, not a wait for ever.
            log.error("serving stream %d from %s failed: %r", stream_id, conn.peer, error)
            outcome = StatusCode.INTERNAL, f"server error: {error!r}", None
        else:
            outcome = task.result()
        self._running -= 1
        try:
            self._finish_call(conn, stream_id, call, *outcome)
        finally:
            if not self._running:
                self._idle.set()

    def _finish_call(
        self,
        conn: _ServerConnection,
        stream_id: int,
        call: _Call,
        code: int,
        message: str,
        result: Any,
    ) -> None:
        if call.inbound is not None:
            call.inbound.finish(discard=True)  # what the handler did not read is dropped
        context = call.context
        if conn.streams.get(stream_id) is call:
            del conn.streams[stream_id]
            codec = conn.codec
            assert codec is not None
            if context._headers is not None and not context._headers_sent:
                self._send_headers(conn, stream_id, context)
            body = status_body(
                codec, code, message, result, context._trailers, conn.peer_max_frame_size
            )
            conn.write(encode_stream_frame(_STATUS, stream_id, body))
            if conn.paused:
                # Results do not wait for the peer to read (streams do, on drain()): a
                # client that sends calls and reads nothing is cut off here, not only
                # by the next sweep.
                transport = conn.transport
                queued = 0 if transport is None else transport.get_write_buffer_size()
                if queued > self._max_outbound_bytes:
                    self._outbound_overflow(conn, queued)
        elif context._cancelled and code == _OK:
            code, message = StatusCode.CANCELLED, "cancelled"
        if call.credit is not None:
            # After the STATUS: the client frees the stream's bytes when it reads it.
            call.credit.abort()
        if call.intercepted and self._interceptors is not None:
            call.intercepted = False
            self._interceptors.end(context, code, message)

    # -- the sweep ---------------------------------------------------------------

    def _sweep(self) -> None:
        """Every `_sweep_interval`: handshake, frame, idle and write deadlines, keepalive."""
        loop = self._loop
        assert loop is not None
        self._sweeper = loop.call_later(self._sweep_interval, self._sweep)
        now = time.monotonic()
        for conn in list(self._connections):
            try:
                self._expire(conn, now)
            except Exception:  # one connection's trouble must not stop the sweep
                log.exception("sweeping the connection from %s failed", conn.peer)
                conn.abort()

    def _outbound_overflow(self, conn: _ServerConnection, queued: int) -> None:
        log.info(
            "dropping connection from %s: %d bytes queued unread (max_outbound_bytes)",
            conn.peer,
            queued,
        )
        conn.abort()

    def _expire(self, conn: _ServerConnection, now: float) -> None:
        idle_timeout = self._idle_timeout
        keepalive_interval = self._keepalive_interval
        if conn.active:
            conn.active = False
            conn.heard_at = now
            conn.ping_sent_at = None  # anything read answers a PING
        if conn.state != "open":
            if now > conn.deadline:
                self._close(conn)
            return
        if conn.frame_deadline is not None and now > conn.frame_deadline:
            self._go_away(
                conn,
                f"frame not complete {self._frame_timeout:g}s after its first byte "
                f"(frame_timeout)",
            )
            return
        if conn.called or conn.streams:
            conn.called = False
            conn.quiet_since = now
            if conn.streams and keepalive_interval is not None:
                sent = conn.ping_sent_at
                if sent is None:
                    if now - conn.heard_at >= keepalive_interval:
                        conn.ping_sent_at = now
                        conn.write(encode_frame(FrameType.PING, _KEEPALIVE_PING))
                elif now - sent >= self._keepalive_timeout:
                    self._go_away(
                        conn,
                        f"keepalive: no answer from the client within "
                        f"{self._keepalive_timeout:g}s",
                    )
                    return
            else:
                conn.ping_sent_at = None
        elif idle_timeout is not None and now - conn.quiet_since > idle_timeout:
            self._go_away(conn, f"idle timeout ({idle_timeout:g}s without a call)")
            return
        else:
            conn.ping_sent_at = None  # an idle client reads only when it next calls
        transport = conn.transport
        if transport is None:
            return
        queued = transport.get_write_buffer_size()
        if queued > self._max_outbound_bytes:
            self._outbound_overflow(conn, queued)
        elif not queued:
            conn.stalled_since = None
        elif conn.stalled_since is None or queued < conn.stalled_size:
            conn.stalled_since, conn.stalled_size = now, queued
        elif now - conn.stalled_since > self._write_timeout:
            log.info(
                "dropping connection from %s: peer read nothing for %gs",
                conn.peer,
                self._write_timeout,
            )
            conn.abort()


async def _threaded_chan_items(chan: ThreadedChan[Any]) -> AsyncIterator[Any]:
    """A threaded `Chan`'s items on the loop, without blocking it: what it holds is
    taken at once; when it is empty the loop waits on the channel's ready hook (the
    one the threaded `Outbound` uses), which any thread's send fires. How the built-in
    Health service's watch streams (and a sync handler's Chan) are sent."""
    loop = asyncio.get_running_loop()
    while True:
        ready = asyncio.Event()

        def wake(_here: bool, ready: asyncio.Event = ready) -> None:
            loop.call_soon_threadsafe(ready.set)

        with chan._lock:
            taken, value = chan._try_recv_locked()
            armed = not taken and not chan._closed
            if armed:
                # Counted as a receiver, as Outbound is, so that senders notify.
                chan._receivers += 1
                chan._on_ready = wake
            error = chan._error
        if taken:
            chan._after_take()
            yield value
            continue
        if not armed:
            if error is not None:
                raise error
            return
        try:
            await ready.wait()
        finally:
            with chan._lock:
                chan._receivers -= 1
                if chan._on_ready is wake:
                    chan._on_ready = None

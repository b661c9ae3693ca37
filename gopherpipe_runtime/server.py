"""Server: listeners, a selector over every connection, and a bounded set of threads.

Threads take turns as the poller (leader/followers, see pool.py). The poller
accepts, reads, sniffs the first bytes, runs the HELLO exchange and splits
frames; each CALL becomes a task. The poller never runs user code: it hands the
polling role on before it runs a task. Task threads decode arguments, run the
user's method and queue the STATUS frame themselves.

No thread ever waits on a socket write: frames are queued on the connection's
writer, which sends what the socket takes and leaves the rest to the poller for
when the socket turns writable (writer.py). A server-streaming handler's thread
is free once the handler has returned its Chan or iterable: the stream's
`Outbound` (stream.py) sends it in short steps, parked between them on credit,
on its source or on a full write queue. So open streams hold no thread and
cannot starve unary calls.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from queue import Empty, SimpleQueue
from types import TracebackType
from typing import Any, Self

from . import frames
from .address import Address, listen, parse_address, tune_accepted
from .chan import ChanClosed
from .codec import CODECS, DEFAULT_CODECS, Codec, CodecError
from .context import CallContext, set_current_call
from .envelope import decode_call, encode_status
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
from .frames import (
    PREFACE,
    FrameDecoder,
    FrameType,
    Preamble,
    ProtocolError,
    classify_preamble,
    encode_frame,
    encode_goaway,
    encode_stream_frame,
)
from .handshake import HandshakeError, server_choose
from .pool import LeaderFollowerPool
from .service import MethodDef, ServiceDef
from .status import (
    CancelledError,
    InvalidArgumentError,
    RpcError,
    StatusCode,
    UnavailableError,
)
from .stream import InboundChan, Outbound, PumpOutcome, message_frames, stop_source
from .writer import FrameWriter

log = logging.getLogger("gopherpipe.server")

_READ_SIZE = 256 * 1024
_MAX_HTTP_HEAD = 16 * 1024
HTTP_400 = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s"
)
HTTP_400_BODY = (
    b"This port speaks GopherPipe (TCP_LITE), not HTTP: use a GopherPipe client "
    b"(tcp://host:port).\n"
)


class _Connection:
    """Per-connection state; owned by the I/O thread except `writer` and `streams`."""

    __slots__ = (
        "codec",
        "decoder",
        "handshake_deadline",
        "lock",
        "peer",
        "peer_max_frame_size",
        "peer_windows",
        "preamble",
        "queued_call_bytes",
        "receive_window",
        "send_window",
        "sock",
        "state",
        "streams",
        "wants_write",
        "writer",
    )

    writer: FrameWriter

    def __init__(self, sock: socket.socket, peer: str, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.state = "preamble"  # -> hello -> open, or -> http -> discard; then closed
        self.preamble = b""
        self.decoder = FrameDecoder(frames.MAX_HELLO_SIZE)
        self.codec: Codec | None = None
        self.peer_max_frame_size = frames.MAX_HELLO_SIZE
        self.peer_windows = Windows()
        self.send_window = SendWindow(self.peer_windows.connection_bytes)
        self.receive_window = ReceiveWindow(1)
        self.queued_call_bytes = 0
        """Bytes of CALL bodies waiting for a handler thread (`lock` held to touch)."""
        self.lock = threading.Lock()
        self.wants_write = False
        """Polling for writability: the writer has bytes the socket did not take."""
        self.handshake_deadline = deadline
        # Open calls by stream id. The polling thread adds and cancels entries, the
        # handler thread removes its own; single dict operations are atomic.
        self.streams: dict[int, _Call] = {}


class _Call:
    """One open call: its context, and for streams the channels and credit."""

    __slots__ = ("context", "credit", "inbound", "outbound")

    def __init__(self, context: CallContext, inbound: InboundChan[Any] | None) -> None:
        self.context = context
        self.inbound = inbound
        """Items from the client (client and bidi streams); made when CALL_STREAM arrives,
        because MESSAGE frames may follow before a handler thread has read the header."""
        self.credit: Credit | None = None
        """What we may send (server and bidi streams); made before the handler runs."""
        self.outbound: Iterable[Any] | None = None
        """What the handler returned to stream; stopped if the client cancels."""

    def end(self, error: BaseException, reason: str) -> None:
        """The call is over from outside (CANCEL, connection lost): unblock everyone."""
        self.context.cancel()
        if self.credit is not None:
            self.credit.abort()
        if self.inbound is not None:
            self.inbound.finish(error, discard=True)
        if self.outbound is not None:
            stop_source(self.outbound, reason)


class Server:
    """Serves registered services on one or more addresses.

    Options:
      max_workers         handler threads (the pool is bounded; default 32)
      max_pending_calls   calls queued or running before new ones get RESOURCE_EXHAUSTED
      max_frame_size      largest frame accepted, announced in HELLO (default 4 MiB)
      codecs              codecs accepted, in preference order (default msgpack, json)
      handshake_timeout   seconds a new connection has to finish HELLO (default 10)
      write_timeout       seconds a peer may stop reading before it is dropped (default 30)
      stream_window       items buffered per inbound stream before the client must wait
                          (flow control; default 1024)
      stream_window_bytes     bytes of items buffered per inbound stream (default 1 MiB)
      connection_window_bytes bytes of items buffered across a connection's inbound
                          streams, and of its calls waiting for a thread (default 16 MiB)
      max_outbound_bytes  bytes queued for one client that does not read them before its
                          connection is dropped (default 64 MiB; keep it above the
                          largest result)

    A handler runs on a pool thread while its user code runs: a unary call until it
    returns, a client stream while it reads its input. A server-streaming or bidi
    handler gives its thread back once it returns its Chan: open streams hold no
    thread, so `max_workers` bounds running user code, not open streams.
    """

    def __init__(
        self,
        *addresses: str,
        max_workers: int = 32,
        max_pending_calls: int = 4096,
        max_frame_size: int = frames.DEFAULT_MAX_FRAME_SIZE,
        codecs: tuple[str, ...] = DEFAULT_CODECS,
        handshake_timeout: float = 10.0,
        write_timeout: float = 30.0,
        stream_window: int = DEFAULT_STREAM_WINDOW,
        stream_window_bytes: int = DEFAULT_STREAM_WINDOW_BYTES,
        connection_window_bytes: int = DEFAULT_CONNECTION_WINDOW_BYTES,
        max_outbound_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        unknown = [c for c in codecs if c not in CODECS]
        if unknown:
            raise ValueError(f"unknown codecs {unknown}; available: {sorted(CODECS)}")
        if max_frame_size < frames.MAX_HELLO_SIZE or max_frame_size > 0xFFFF_FFFF:
            raise ValueError(f"max_frame_size must be in {frames.MAX_HELLO_SIZE}..2**32-1")
        self._requested = [parse_address(a) for a in (addresses or ("tcp://127.0.0.1:0",))]
        self._max_frame_size = max_frame_size
        self._codecs = tuple(codecs)
        self._handshake_timeout = handshake_timeout
        self._write_timeout = write_timeout
        self._windows = Windows(stream_window, stream_window_bytes, connection_window_bytes)
        self._max_outbound_bytes = max_outbound_bytes
        self._pool = LeaderFollowerPool(
            max_workers, max(max_pending_calls, max_workers), self._poll_once, self._wake
        )
        self._services: dict[str, ServiceDef] = {}
        self._selector = selectors.DefaultSelector()
        self._listeners: list[socket.socket] = []
        self._bound: list[Address] = []
        self._connections: set[_Connection] = set()
        self._commands: SimpleQueue[Callable[[], None]] = SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._started = False
        self._draining = False
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    # -- public API -------------------------------------------------------------

    def add_service(self, service: ServiceDef) -> None:
        """Register a service (generated `register_x(server, impl)` calls this)."""
        if service.name in self._services:
            raise ValueError(f"service {service.name!r} is already registered")
        self._services[service.name] = service

    @property
    def addresses(self) -> list[str]:
        """The addresses actually bound (real ports when port 0 was asked); after start()."""
        return [str(a) for a in self._bound]

    def start(self) -> Self:
        with self._lock:
            if self._started:
                return self
            try:
                for requested in self._requested:
                    sock, bound = listen(requested)
                    sock.setblocking(False)
                    self._listeners.append(sock)
                    self._bound.append(bound)
                    self._selector.register(sock, selectors.EVENT_READ, None)
            except BaseException:
                for sock in self._listeners:
                    sock.close()
                self._listeners.clear()
                self._bound.clear()
                raise
            self._wake_r.setblocking(False)
            self._selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
            self._started = True
            self._pool.start()
        return self

    def serve_forever(self) -> None:
        """start(), then block until stop() is called (Ctrl-C stops with 5 s grace)."""
        self.start()
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            self.stop(5.0)

    def stop(self, grace: float | None = None) -> None:
        """Stop serving.

        Listeners close at once and every connection gets GOAWAY, so clients stop
        sending new calls here (calls that still arrive get UNAVAILABLE). Calls in
        progress get up to `grace` seconds to finish (None: no wait, like gRPC);
        then every connection is closed. Idempotent.
        """
        with self._lock:
            if not self._started or self._stopped.is_set():
                self._stopped.set()
                return
        self._run_on_io(self._begin_drain)
        if grace:
            # A call counts from when it is queued, so this also waits for calls
            # accepted but not yet started, and for streams, which hold no thread.
            deadline = time.monotonic() + grace
            while (self._pool.pending or self._open_calls()) and time.monotonic() < deadline:
                time.sleep(0.005)
        self._run_on_io(self._close_everything)
        self._pool.join(timeout=0.5)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self._stopped.set()

    def _open_calls(self) -> int:
        # Read from outside the polling thread, which may change the set meanwhile:
        # a retry is cheaper than a lock on every connection event.
        for _ in range(100):
            try:
                return sum(len(conn.streams) for conn in list(self._connections))
            except RuntimeError:
                continue
        return 1

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(1.0)

    # -- the polling thread -------------------------------------------------------------

    def _run_on_io(self, command: Callable[[], None]) -> None:
        """Run `command` on the polling thread, which owns the selector and connections."""
        self._commands.put(command)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _poll_once(self) -> bool:
        """One selector round (run by the current leader); False once the server is closed."""
        timeout = 1.0 if self._connections else None
        for key, events in self._selector.select(timeout):
            target = key.data
            if isinstance(target, _Connection):
                if events & selectors.EVENT_WRITE:
                    self._on_writable(target)
                if events & selectors.EVENT_READ and target.state != "closed":
                    self._on_readable(target)
            elif target is None:
                self._accept(key.fileobj)  # type: ignore[arg-type]
            elif not self._run_commands():
                return False
        self._expire_handshakes()
        return True

    def _run_commands(self) -> bool:
        """Run queued commands; False once the loop must end."""
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        while True:
            try:
                command = self._commands.get_nowait()
            except Empty:
                return True
            command()
            if command == self._close_everything:
                return False

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(64):  # bounded so a connect flood cannot starve reads
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: keep serving who we have
                log.warning("accept failed: %s", exc)
                return
            if self._draining:
                sock.close()
                continue
            sock.setblocking(False)
            tune_accepted(sock)
            peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix"
            conn = _Connection(sock, peer_text, time.monotonic() + self._handshake_timeout)
            conn.writer = FrameWriter(
                sock,
                self._write_timeout,
                on_error=functools.partial(self._on_write_error, conn),
                offload=functools.partial(self._want_write, conn),
                max_pending=self._max_outbound_bytes,
                event_driven=True,
            )
            self._connections.add(conn)
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _on_write_error(self, conn: _Connection, exc: BaseException) -> None:
        # Called on whichever thread was writing. Shutting the socket down makes it
        # readable (EOF), so the I/O thread does the actual cleanup.
        log.info("dropping connection from %s: %s", conn.peer, exc)
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)

    def _want_write(self, conn: _Connection, _finish: Callable[[], None]) -> bool:
        """The writer's offload: poll `conn` for writability, then finish its write there."""
        if self._pool.is_leader():
            self._watch_writes(conn, True)
        else:
            self._run_on_io(functools.partial(self._watch_writes, conn, True))
        return True

    def _watch_writes(self, conn: _Connection, on: bool) -> None:
        if conn.state == "closed" or conn.wants_write == on:
            return
        conn.wants_write = on
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.modify(conn.sock, events, conn)

    def _on_writable(self, conn: _Connection) -> None:
        conn.writer.flush_nowait()
        if conn.writer.idle:
            self._watch_writes(conn, False)

    def _expire_handshakes(self) -> None:
        now = time.monotonic()
        for conn in [
            c for c in self._connections if c.state in ("preamble", "hello", "http", "discard")
        ]:
            if now > conn.handshake_deadline:
                self._close(conn)
        for conn in [c for c in self._connections if c.wants_write]:
            stalled = conn.writer.stalled_since
            if stalled is not None and now - stalled > self._write_timeout:
                conn.writer.fail(f"peer read nothing for {self._write_timeout:g}s")

    def _close(self, conn: _Connection) -> None:
        if conn.state == "closed":
            return
        conn.state = "closed"
        self._connections.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.writer.close()
        conn.sock.close()
        calls = list(conn.streams.values())
        conn.streams.clear()
        for call in calls:
            call.end(UnavailableError("connection to the client lost"), "the client went away")

    def _on_readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        try:
            if conn.state == "open" or conn.state == "hello":
                self._on_frames(conn, conn.decoder.feed(data))
            elif conn.state == "preamble":
                self._on_preamble(conn, data)
            elif conn.state == "http":
                self._on_http(conn, data)
            # "discard": the 400 is sent; the rest of the request is dropped unread
        except ProtocolError as exc:
            self._fail_connection(conn, StatusCode.INTERNAL, f"protocol error: {exc}")
        except HandshakeError as exc:
            self._fail_connection(conn, StatusCode.UNIMPLEMENTED, str(exc))

    def _fail_connection(self, conn: _Connection, code: StatusCode, message: str) -> None:
        log.info("closing connection from %s: %s", conn.peer, message)
        last = max(conn.streams, default=0)
        conn.writer.write_nowait(encode_goaway(last, code, message))
        self._close(conn)

    def _on_preamble(self, conn: _Connection, data: bytes) -> None:
        seen = conn.preamble + data
        kind = classify_preamble(seen)
        if kind is Preamble.NEED_MORE:
            conn.preamble = seen
        elif kind is Preamble.TCP_LITE:
            conn.preamble = b""
            conn.state = "hello"
            self._on_frames(conn, conn.decoder.feed(seen[len(PREFACE) :]))
        elif kind is Preamble.HTTP:
            conn.preamble = b""
            conn.state = "http"
            self._on_http(conn, seen)
        else:
            log.info("closing connection from %s: not TCP_LITE or HTTP", conn.peer)
            self._close(conn)

    def _on_http(self, conn: _Connection, data: bytes) -> None:
        # Answer once the request head is complete, so the client is reading by
        # then; a head that never ends is cut off at a fixed size or by the
        # handshake deadline.
        head = conn.preamble + data
        if b"\r\n\r\n" not in head and len(head) < _MAX_HTTP_HEAD:
            conn.preamble = head
            return
        conn.writer.write_nowait(HTTP_400 % (len(HTTP_400_BODY), HTTP_400_BODY))
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)
        # Keep reading (and discarding) until the client closes or the deadline
        # passes: closing with unread bytes would reset the connection and could
        # destroy the 400 before the client reads it.
        conn.preamble = b""
        conn.state = "discard"
        conn.handshake_deadline = min(conn.handshake_deadline, time.monotonic() + 2.0)

    def _on_frames(self, conn: _Connection, received: list[frames.Frame]) -> None:
        for frame in received:
            if conn.state == "hello":
                self._on_hello(conn, frame)
                continue
            frame_type = frame.type
            if frame_type == FrameType.CALL:
                self._on_call(conn, frame.stream_id, frame.payload, False)
            elif frame_type == FrameType.MESSAGE:
                self._on_message(conn, frame.stream_id, frame.payload)
            elif frame_type == FrameType.CREDIT:
                call = conn.streams.get(frame.stream_id)
                if call is not None and call.credit is not None:
                    call.credit.grant(*frames.decode_credit(frame.payload))
            elif frame_type == FrameType.HALF_CLOSE:
                call = conn.streams.get(frame.stream_id)
                if call is not None and call.inbound is not None:
                    call.inbound.finish(release=False)
            elif frame_type == FrameType.CALL_STREAM:
                self._on_call(conn, frame.stream_id, frame.payload, True)
            elif frame_type == FrameType.CANCEL:
                call = conn.streams.pop(frame.stream_id, None)
                if call is not None:
                    call.end(
                        CancelledError("the client cancelled the call"), "the client cancelled"
                    )
            elif frame_type == FrameType.PING:
                conn.writer.write_nowait(encode_frame(FrameType.PONG, frame.payload))
            elif frame_type in (FrameType.HELLO, FrameType.STATUS):
                raise ProtocolError(f"unexpected {FrameType(frame_type).name} from a client")
            # PONG and GOAWAY need no action; unknown types are ignored so later
            # versions can add frames (RFC: Extensibility).
            if conn.state == "closed":
                return

    def _on_hello(self, conn: _Connection, frame: frames.Frame) -> None:
        if frame.type != FrameType.HELLO:
            raise ProtocolError("the first frame must be HELLO")
        settings, reply = server_choose(
            frame.payload, self._codecs, self._max_frame_size, self._windows
        )
        conn.codec = CODECS[settings.codec]
        conn.peer_max_frame_size = settings.peer_max_frame_size
        conn.peer_windows = settings.peer_windows
        conn.send_window = SendWindow(settings.peer_windows.connection_bytes)
        conn.receive_window = ReceiveWindow(self._windows.connection_bytes)
        conn.decoder.max_frame_size = self._max_frame_size
        conn.state = "open"
        conn.writer.write_nowait(encode_frame(FrameType.HELLO, reply))

    def _on_call(
        self, conn: _Connection, stream_id: int, payload: bytes, client_streams: bool
    ) -> None:
        if stream_id in conn.streams:
            raise ProtocolError(f"stream {stream_id} is already open")
        if self._draining:
            self._reply_nowait(conn, stream_id, StatusCode.UNAVAILABLE, "server is shutting down")
            return
        with conn.lock:
            waiting = conn.queued_call_bytes
            admitted = waiting + len(payload) <= self._windows.connection_bytes
            if admitted:
                conn.queued_call_bytes += len(payload)
        if not admitted:
            # Calls arrive faster than handlers take them: holding more bodies would
            # let one connection's backlog grow without bound.
            self._reply_nowait(
                conn,
                stream_id,
                StatusCode.RESOURCE_EXHAUSTED,
                f"this connection has {waiting} bytes of calls waiting for a handler "
                f"(limit {self._windows.connection_bytes})",
            )
            return
        context = CallContext("", "", {}, conn.peer, None)
        context.deadline = time.monotonic()  # arrival time until the header is read
        inbound = self._inbound(conn, stream_id) if client_streams else None
        call = _Call(context, inbound)
        conn.streams[stream_id] = call
        if not self._pool.try_submit(self._serve_call, conn, stream_id, payload, call):
            conn.streams.pop(stream_id, None)
            with conn.lock:
                conn.queued_call_bytes -= len(payload)
            self._reply_nowait(
                conn,
                stream_id,
                StatusCode.RESOURCE_EXHAUSTED,
                f"server is at its limit of {self._pool.max_pending} pending calls",
            )

    def _inbound(self, conn: _Connection, stream_id: int) -> InboundChan[Any]:
        writer = conn.writer

        def return_credit(items: int, nbytes: int) -> None:
            writer.write_nowait(frames.encode_credit(stream_id, items, nbytes))

        def stop_client() -> None:
            # The handler closed its inbound channel: the client may stop sending.
            writer.write_nowait(encode_stream_frame(FrameType.CANCEL, stream_id, b""))

        windows = self._windows
        inflow = Inflow(conn.receive_window, windows.items, windows.stream_bytes, return_credit)
        return InboundChan(inflow, windows.items, stop_client)

    def _on_message(self, conn: _Connection, stream_id: int, payload: bytes) -> None:
        call = conn.streams.get(stream_id)
        if call is None or call.inbound is None:
            return  # the call ended or was cancelled while this was in flight
        assert conn.codec is not None
        try:
            items = conn.codec.decode(payload)
        except CodecError as exc:
            raise ProtocolError(f"malformed MESSAGE on stream {stream_id}: {exc}") from None
        if type(items) is not list or not items:
            raise ProtocolError(f"MESSAGE on stream {stream_id} is not a non-empty array")
        if not call.inbound.deliver(items, len(payload)):
            raise ProtocolError(f"stream {stream_id} sent beyond its credit")

    def _reply_nowait(
        self, conn: _Connection, stream_id: int, code: StatusCode, message: str
    ) -> None:
        assert conn.codec is not None
        body = encode_status(conn.codec, code, message, None)
        conn.writer.write_nowait(encode_stream_frame(FrameType.STATUS, stream_id, body))

    def _begin_drain(self) -> None:
        self._draining = True
        for sock in self._listeners:
            self._selector.unregister(sock)
            sock.close()
        for address in self._bound:
            if address.scheme == "unix":
                with contextlib.suppress(OSError):
                    os.unlink(address.path)
        for conn in list(self._connections):
            if conn.state == "open":
                last = max(conn.streams, default=0)
                conn.writer.write_nowait(
                    encode_goaway(last, StatusCode.UNAVAILABLE, "server is shutting down")
                )
            else:
                self._close(conn)

    def _close_everything(self) -> None:
        for conn in list(self._connections):
            self._close(conn)

    # -- handler threads --------------------------------------------------------

    def _serve_call(self, conn: _Connection, stream_id: int, payload: bytes, call: _Call) -> None:
        with conn.lock:
            conn.queued_call_bytes -= len(payload)
        codec = conn.codec
        assert codec is not None
        try:
            outcome = self._dispatch(conn, stream_id, payload, call, codec)
        except Exception as exc:
            # _dispatch answers every failure it foresees; this is for the ones it
            # does not, so that a bug costs the caller one call, not a wait forever.
            log.exception("serving stream %d from %s failed", stream_id, conn.peer)
            outcome = StatusCode.INTERNAL, f"server error: {exc!r}", None
        if outcome is not None:  # else a stream took over: it ends the call
            self._finish_call(conn, stream_id, call, *outcome)

    def _finish_call(
        self,
        conn: _Connection,
        stream_id: int,
        call: _Call,
        code: int,
        message: str,
        result: Any,
    ) -> None:
        """Queue the call's STATUS (unless it was cancelled) and forget the stream."""
        if call.inbound is not None:
            # Whatever the handler did not read is dropped; later MESSAGEs too.
            call.inbound.finish(discard=True)
        if conn.streams.pop(stream_id, None) is not None:
            codec = conn.codec
            assert codec is not None
            try:
                body = encode_status(codec, code, message, result)
            except CodecError as exc:
                body = encode_status(
                    codec, StatusCode.INTERNAL, f"cannot encode result: {exc}", None
                )
            if len(body) + frames.STREAM_ID_SIZE > conn.peer_max_frame_size:
                body = encode_status(
                    codec,
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"result of {len(body)} bytes exceeds the client's max frame size "
                    f"of {conn.peer_max_frame_size}",
                    None,
                )
            conn.writer.write_nowait(encode_stream_frame(FrameType.STATUS, stream_id, body))
        if call.credit is not None:
            # After the STATUS is queued: the client frees the stream's bytes when it
            # reads the STATUS, so ours must not be reused on the wire before it.
            call.credit.abort()

    def _dispatch(
        self, conn: _Connection, stream_id: int, payload: bytes, state: _Call, codec: Codec
    ) -> tuple[int, str, Any] | None:
        """Decode, dispatch and run one call: its (code, message, wire result), or None
        when a stream was started that will end the call itself."""
        call = state.context
        try:
            header = decode_call(codec, payload)
        except ProtocolError as exc:
            return StatusCode.INVALID_ARGUMENT, f"malformed CALL: {exc}", None
        call.service = header.service
        call.method = header.method
        call.metadata = header.metadata
        arrival = call.deadline
        assert arrival is not None
        call.deadline = None if header.timeout_ms is None else arrival + header.timeout_ms / 1000
        service = self._services.get(header.service)
        if service is None:
            return StatusCode.UNIMPLEMENTED, f"unknown service {header.service!r}", None
        method = service.methods.get(header.method)
        if method is None:
            return (
                StatusCode.UNIMPLEMENTED,
                f"service {header.service!r} has no method {header.method!r}",
                None,
            )
        if call.cancelled:
            return StatusCode.DEADLINE_EXCEEDED, "deadline passed before the call started", None
        name = f"{header.service}.{header.method}"
        try:
            args = method.decode_args(header.args)
        except InvalidArgumentError as exc:
            return StatusCode.INVALID_ARGUMENT, exc.message, None
        except Exception as exc:
            log.exception("decoding arguments of %s failed", name)
            return StatusCode.INTERNAL, f"cannot decode arguments: {exc}", None
        if method.client_streams:
            if state.inbound is None:  # plain CALL: the client's stream is empty
                state.inbound = self._inbound(conn, stream_id)
                state.inbound.finish()
            state.inbound.decode_item = method.decode_item
            position = len(args) if method.stream_param is None else method.stream_param
            args = (*args[:position], state.inbound, *args[position:])
        if method.server_streams:
            windows = conn.peer_windows
            state.credit = Credit(windows.items, windows.stream_bytes, conn.send_window)
        set_current_call(call)
        try:
            result = method.call(*args)
        except RpcError as exc:
            return exc.code, exc.message, None
        except BaseException as exc:  # the caller must always get an answer
            log.exception("handler %s raised", name)
            return StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}", None
        finally:
            set_current_call(None)
        if method.server_streams:
            return self._stream_out(conn, stream_id, state, method, result, codec, name)
        if call.deadline is not None and time.monotonic() > call.deadline:
            # The caller has given up (or is about to): a late success must not
            # race its DEADLINE_EXCEEDED, as in gRPC.
            return StatusCode.DEADLINE_EXCEEDED, f"{name} finished after its deadline", None
        try:
            return StatusCode.OK, "", method.encode_result(result)
        except InvalidArgumentError as exc:
            return StatusCode.INTERNAL, f"handler returned a wrong value: {exc.message}", None

    def _stream_out(
        self,
        conn: _Connection,
        stream_id: int,
        state: _Call,
        method: MethodDef,
        source: Any,
        codec: Codec,
        name: str,
    ) -> tuple[int, str, Any] | None:
        """Start sending what a server-streaming handler returned; None once started
        (the stream's last step ends the call), else the call's final status."""
        if not isinstance(source, Iterable):
            return (
                StatusCode.INTERNAL,
                f"handler returned {type(source).__name__}, not a Chan or iterable",
                None,
            )
        assert state.credit is not None and method.encode_item is not None
        state.outbound = source
        if state.context._cancelled:  # cancelled while the handler ran
            stop_source(source, "the client cancelled the call")
            return StatusCode.CANCELLED, "cancelled", None

        def make_frames(batch: list[Any]) -> list[bytes]:
            return message_frames(codec, stream_id, batch, conn.peer_max_frame_size)

        def schedule(step: Callable[[], None]) -> bool:
            return self._pool.try_submit(step, admitted=True)

        def on_done(outcome: str, error: BaseException | None) -> None:
            code, message = self._stream_status(source, outcome, error, name)
            self._finish_call(conn, stream_id, state, code, message, None)

        Outbound(
            source,
            method.encode_item,
            make_frames,
            state.credit,
            conn.writer.write_nowait,
            conn.writer.park_until_drained,
            schedule,
            on_done,
        ).start()
        return None

    @staticmethod
    def _stream_status(
        source: Iterable[Any], outcome: str, error: BaseException | None, name: str
    ) -> tuple[int, str]:
        """The final status of a server stream that ended with `outcome`."""
        if outcome == PumpOutcome.DONE:
            return StatusCode.OK, ""
        if outcome == PumpOutcome.ABORTED:
            stop_source(source, "the client cancelled the call")
            return StatusCode.CANCELLED, "cancelled"
        stop_source(source, "the stream failed")
        if outcome == PumpOutcome.BAD_ITEM:
            detail = error.message if isinstance(error, RpcError) else str(error)
            return StatusCode.INTERNAL, f"handler sent a wrong value: {detail}"
        if isinstance(error, RpcError):
            return error.code, error.message
        if isinstance(error, ChanClosed):
            return StatusCode.CANCELLED, str(error)
        log.error("stream of %s failed: %r", name, error)
        return StatusCode.INTERNAL, f"{type(error).__name__}: {error}"

"""Server: listeners, a selector over every connection, and a bounded set of threads.

Threads take turns as the poller (leader/followers, see pool.py; with epoll,
idle threads wait in the kernel for the selector's descriptor and a round never
blocks, pool.py "Waiting"). The poller accepts, reads, passes the bytes through
the connection's transport layers if it has any (TLS on tls:// and wss://
listeners; a WebSocket once an HTTP upgrade is sniffed, on any listener: see
transport/), sniffs the first bytes, runs the HELLO exchange and splits frames;
each CALL becomes a task. The poller never runs user code: it hands the
polling role on before it runs a task. Task threads decode arguments, run the
user's method -- inside the interceptors' `intercept`, when the server has any
(interceptors.py) -- and queue the STATUS frame themselves, after the handler's
response headers (a HEADERS frame) if it set any and with its trailers.

No thread ever waits on a socket write: frames are queued on the connection's
writer, which sends what the socket takes and leaves the rest to the poller for
when the socket turns writable (writer.py). A server-streaming handler's thread
is free once the handler has returned its Chan or iterable: the stream's
`Outbound` (stream.py) sends it in short steps, parked between them on credit,
on its source or on a full write queue. So open streams hold no thread and
cannot starve unary calls.

Connection lifecycle, all on the polling thread:
- accept: beyond `max_connections` a new connection is refused at once with
  GOAWAY (RESOURCE_EXHAUSTED) and closed, so the process keeps file descriptors
  for its handlers. When accept itself fails for lack of resources (EMFILE and
  the like) the listeners leave the selector for a backoff period (10 ms,
  doubling to 1 s, reset by the next successful accept): retrying at once would
  spin, since the pending connection keeps the listener readable.
- timers: one sweep over the connections every `_sweep_interval` (a quarter of
  the shortest timeout, at most 1 s; not every selector round, which would cost
  O(connections) per read) enforces the handshake deadline, the frame
  deadline (a frame's body must arrive within `frame_timeout` of its first
  byte), `idle_timeout` (no call open and none opened; PINGs do not count, so
  keepalive cannot hold an unused connection), `write_timeout` (bytes queued for
  the peer and none taken) and keepalive (keepalive.py: a PING once nothing has
  been read for `keepalive_interval`, sent only while a call is open, since a
  client reads an idle connection only when it uses it; silence for
  `keepalive_timeout` after it drops the connection). Expiring a
  connection that finished HELLO sends GOAWAY, then lingers briefly in
  "discard", reading and dropping, so closing does not reset the connection
  and destroy the GOAWAY before the client reads it.
- ping policy: a PING sooner than `min_ping_interval` after the client's
  previous one is a strike; after MAX_PING_STRIKES in a row the next early one
  gets GOAWAY RESOURCE_EXHAUSTED "too many pings" and the connection closes.
- close: `_close` is the one way out; it drops the read buffers at once, since a
  handler still running keeps the `_Connection` itself alive. Nothing on the
  connection path refers back to its `_Connection` (the writer's callbacks hold
  the socket, not the connection; an idle pool thread forgets its last task; an
  open stream's `Outbound` does, until the stream ends, which `_close` makes
  happen), so a closed connection is freed by reference counting when its last
  call ends, not whenever the cycle collector next runs.
- stop (`Server.stop`): the built-in Health service (health.py) turns
  NOT_SERVING first; then every open connection gets GOAWAY, while the listeners
  keep accepting through the grace period so that health probes still get an
  answer: a draining server admits only Health calls (`_on_call`), every other
  new call gets UNAVAILABLE at once. At the end the listeners close, then every
  connection.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import selectors
import signal
import socket
import ssl
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from queue import Empty, SimpleQueue
from types import TracebackType
from typing import Any, NamedTuple, Self

from . import keepalive
from .address import Address, parse_address
from .chan import Chan, ChanClosed
from .compression import ALGORITHMS, DEFAULT_THRESHOLD, supported, wrap
from .context import CallContext, Peer, set_current_call
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
from .health import HEALTH_SERVICE, HealthState
from .interceptors import Chain, Interceptor
from .pool import LeaderFollowerPool, StepRunner
from .reflection import REFLECTION_SERVICE, reflection_service
from .resolver import Announcer
from .service import MethodDef, ServiceDef
from .status import (
    CancelledError,
    InvalidArgumentError,
    RpcError,
    StatusCode,
    UnavailableError,
)
from .stream import InboundChan, Outbound, PumpOutcome, message_frames, stop_source
from .transport import Stack, TransportClosed, TransportError, listen, tune_accepted
from .transport import memory as memory_transport
from .transport.sniff import HTTP_400 as HTTP_400
from .transport.sniff import HTTP_400_BODY as HTTP_400_BODY
from .transport.sniff import answer_http, transport_of
from .transport.tls import TlsLayer
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
    METADATA_ENTRY_OVERHEAD,
    LimitExceeded,
    decode_call,
    encode_headers,
    encode_status,
    metadata_size,
)
from .wire.frames import (
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
from .wire.handshake import HandshakeError, server_choose
from .writer import FrameWriter

log = logging.getLogger("gopherpipe.server")
# HTTP_400 and HTTP_400_BODY (imported above, from transport/sniff.py) were defined
# here before the sniffing moved out: still importable from this module.

_READ_SIZE = 64 * 1024
"""Bytes asked of each `recv`. `recv(n)` allocates n bytes before it knows how many
arrive; at 128 KiB and above glibc serves that with mmap (and the shrink with
mremap, the free with munmap) unless its adaptive threshold happens to have
risen, so a 256 KiB read cost three extra syscalls per call in some processes
and not others (measured: +30 µs on the unary p50). 64 KiB stays on the heap
and still takes a stream's backlog in few reads."""
DEFAULT_MAX_CONCURRENT_STREAMS = 16384
"""A server's default `max_concurrent_streams`: as many as its default `max_pending_calls`,
so one connection may use the whole queue but open streams (which hold no thread) stay
bounded per connection, at about 6 KiB of server memory each."""
_KEEPALIVE_PING = b"keepaliv"
"""The server's PING body: 8 opaque bytes (any answer counts, the PONG is not matched)."""
_LINGER = 1.0
"""Seconds an expired connection keeps being read (and dropped) after its GOAWAY."""
_ACCEPT_BACKOFF_FIRST = 0.01
_ACCEPT_BACKOFF_MAX = 1.0
_PEER_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
        "EPERM",
    )
    if hasattr(errno, name)
)
"""accept() errors that belong to one pending connection (Linux reports its network
errors this way): skip it and accept the next."""
# The frame types and the code the per-call path compares with, as plain ints: an
# IntEnum member lookup costs about 0.2 us on Python 3.11, a global a third of that.
_CALL = int(FrameType.CALL)
_CALL_STREAM = int(FrameType.CALL_STREAM)
_MESSAGE = int(FrameType.MESSAGE)
_CREDIT = int(FrameType.CREDIT)
_HALF_CLOSE = int(FrameType.HALF_CLOSE)
_STATUS = int(FrameType.STATUS)
_HEADERS = int(FrameType.HEADERS)
_OK = int(StatusCode.OK)


class _Terminated(BaseException):
    """SIGTERM arrived while serve_forever() waited (a BaseException, as
    KeyboardInterrupt is: nothing between the handler and serve_forever may catch it)."""


class _Connection:
    """Per-connection state; owned by the I/O thread except `writer` and `streams`."""

    __slots__ = (
        "__weakref__",
        "active",
        "called",
        "codec",
        "decoder",
        "frame_deadline",
        "handshake_deadline",
        "heard_at",
        "last_ping_at",
        "lock",
        "peer",
        "peer_max_frame_size",
        "peer_windows",
        "ping_sent_at",
        "ping_strikes",
        "preamble",
        "queued_call_bytes",
        "quiet_since",
        "receive_window",
        "send_window",
        "sock",
        "stack",
        "state",
        "streams",
        "wants_write",
        "writer",
        "ws_path",
    )

    writer: FrameWriter

    def __init__(self, sock: socket.socket, peer: str, now: float, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        """The address as text; a `Peer` with what the transport proved once HELLO is done."""
        self.stack: Stack | None = None
        """Transport layers (TLS, WebSocket) between the socket and the frames; None
        for TCP_LITE straight on the socket."""
        self.ws_path: str | None = None
        """The only path a WebSocket upgrade may ask for (a ws:// listener's); None: any."""
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
        """In "preamble", "hello", "http" and "discard": when the sweep closes it."""
        self.frame_deadline: float | None = None
        """When the frame now partly buffered must be complete; None when none is."""
        self.active = False
        """Bytes arrived since the last sweep; the sweep turns it into `heard_at`, so a
        read costs a store, not a clock call."""
        self.heard_at = now
        """The last sweep that saw bytes arrive: the client was alive then (keepalive)."""
        self.called = False
        """A call opened since the last sweep; the sweep turns it into `quiet_since`."""
        self.quiet_since = now
        """The last sweep that saw a call open or opened: idleness starts there."""
        self.ping_sent_at: float | None = None
        """When our unanswered keepalive PING went out (sweep time)."""
        self.last_ping_at: float | None = None
        """When the client's last PING arrived, and the strikes in a row (ping policy)."""
        self.ping_strikes = 0
        # Open calls by stream id. The polling thread adds and cancels entries, the
        # handler thread removes its own; single dict operations are atomic.
        self.streams: dict[int, _Call] = {}


def _drop_after_write_error(sock: socket.socket, peer: str, exc: BaseException) -> None:
    # Called on whichever thread was writing. Shutting the socket down makes it
    # readable (EOF), so the I/O thread does the actual cleanup. A plain function
    # of the socket: a callback holding the _Connection would make a reference
    # cycle (connection -> writer -> callback -> connection) that only the cycle
    # collector could free, with all its buffers.
    log.info("dropping connection from %s: %s", peer, exc)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def default_max_connections() -> int:
    """`Server(max_connections=None)`: the soft RLIMIT_NOFILE less headroom.

    The headroom (an eighth of the limit, at least 64) is for the listeners, the
    selector, and files and sockets the handlers open themselves.
    """
    if sys.platform == "win32":
        return 1024
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > 1 << 20:
        soft = 1 << 20
    return max(1, soft - max(64, soft // 8))


class _Call:
    """One open call: its context, and for streams the channels and credit."""

    __slots__ = ("context", "credit", "inbound", "intercepted", "outbound")

    def __init__(self, context: CallContext, inbound: InboundChan[Any] | None) -> None:
        self.context = context
        self.inbound = inbound
        """Items from the client (client and bidi streams); made when CALL_STREAM arrives,
        because MESSAGE frames may follow before a handler thread has read the header."""
        self.credit: Credit | None = None
        """What we may send (server and bidi streams); made before the handler runs."""
        self.outbound: Iterable[Any] | None = None
        """What the handler returned to stream; stopped if the client cancels."""
        self.intercepted = False
        """The interceptors saw the call start, so they see it end (`on_end`)."""

    def end(self, error: BaseException, reason: str) -> None:
        """The call is over from outside (CANCEL, connection lost): unblock everyone."""
        self.context.cancel()
        if self.credit is not None:
            self.credit.abort()
        if self.inbound is not None:
            self.inbound.finish(error, discard=True)
        if self.outbound is not None:
            stop_source(self.outbound, reason)


def checked_options(
    addresses: tuple[str, ...],
    *,
    codecs: tuple[str, ...],
    max_workers: int,
    max_pending_calls: int,
    max_concurrent_streams: int,
    max_metadata_size: int,
    max_frame_size: int,
    tls: ssl.SSLContext | None,
    max_connections: int | None,
    handshake_timeout: float,
    idle_timeout: float | None,
    frame_timeout: float | None,
    keepalive_interval: float | None,
    keepalive_timeout: float,
    min_ping_interval: float | None,
) -> tuple[list[Address], int, float]:
    """The checks both servers (this one and `aio.Server`) make of their options, in
    the same words; returns the addresses to bind, the connection limit (its default
    resolved) and the interval of the timeout sweep (a quarter of the shortest timeout,
    between 10 ms and 1 s)."""
    unknown = [c for c in codecs if c not in CODECS]
    if unknown:
        raise ValueError(f"unknown codecs {unknown}; available: {sorted(CODECS)}")
    if max_concurrent_streams < 1:
        raise ValueError("max_concurrent_streams must be at least 1")
    if max_metadata_size < METADATA_ENTRY_OVERHEAD:
        raise ValueError(f"max_metadata_size must be at least {METADATA_ENTRY_OVERHEAD}")
    if max_frame_size < frames.MAX_HELLO_SIZE or max_frame_size > 0xFFFF_FFFF:
        raise ValueError(f"max_frame_size must be in {frames.MAX_HELLO_SIZE}..2**32-1")
    if max_workers < 1:
        raise ValueError("max_workers must be at least 1")
    if max_pending_calls < 1:
        raise ValueError("max_pending_calls must be at least 1")
    requested = [parse_address(a) for a in (addresses or ("tcp://127.0.0.1:0",))]
    needing_tls = [str(a) for a in requested if a.tls]
    if needing_tls and tls is None:
        raise ValueError(
            f"{', '.join(needing_tls)} need a certificate: Server(..., tls=ssl.SSLContext), "
            "e.g. gopherpipe_runtime.transport.tls.server_context(cert, key)"
        )
    if tls is not None and not isinstance(tls, ssl.SSLContext):
        raise TypeError(f"tls must be an ssl.SSLContext, not {type(tls).__name__}")
    if max_connections is None:
        max_connections = default_max_connections()
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    for name, value in (
        ("handshake_timeout", handshake_timeout),
        ("idle_timeout", idle_timeout),
        ("frame_timeout", frame_timeout),
        ("keepalive_interval", keepalive_interval),
        ("keepalive_timeout", keepalive_timeout),
    ):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive")
    if min_ping_interval is not None and min_ping_interval < 0:
        raise ValueError("min_ping_interval must not be negative")
    timeouts: tuple[float | None, ...] = (handshake_timeout, idle_timeout, frame_timeout)
    if keepalive_interval is not None:
        timeouts += (keepalive_interval, keepalive_timeout)
    shortest = min(t for t in timeouts if t)
    return requested, max_connections, min(1.0, max(0.01, shortest / 4))


class Server:
    """Serves registered services on one or more addresses.

    Options:
      max_workers         handler threads (the pool is bounded; default 32)
      max_pending_calls   calls queued or running before new ones get RESOURCE_EXHAUSTED
                          (default 16384: a fan-out service's subscribers arrive in
                          bursts, 10,000 at once after a restart; a queued call costs
                          about a KiB, its body bounded per connection)
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
      max_connections     connections held at once; one more is refused with GOAWAY
                          (RESOURCE_EXHAUSTED) and closed. Default (None): the soft
                          RLIMIT_NOFILE less an eighth of it, at least 64, kept for
                          the handlers' own files (`default_max_connections()`)
      idle_timeout        seconds a connection may go without an open call before it
                          gets GOAWAY (UNAVAILABLE) and is closed; clients reconnect on
                          their next call (default 300; None: never). PINGs do not
                          count: keepalive checks a peer lives, it does not keep an
                          unused connection open (as gRPC's MAX_CONNECTION_IDLE)
      keepalive_interval  seconds of reading nothing on a connection with an open call
                          before the server sends PING (default 7200, gRPC's; None:
                          never). Idle connections are not pinged: the client reads
                          them only when it uses them, and idle_timeout ends them
      keepalive_timeout   seconds the client has to send anything after that PING,
                          else GOAWAY (UNAVAILABLE, "keepalive: no answer from the
                          client within 20s") and close; its calls end (default 20)
      min_ping_interval   the ping policy: a client PING sooner than this after its
                          previous one is a strike, and the third strike in a row gets
                          GOAWAY (RESOURCE_EXHAUSTED, "too many pings") and close;
                          open calls or not, the same (default 10; None: no policy)
      frame_timeout       seconds one frame may take to arrive once its first byte
                          is in, else GOAWAY (UNAVAILABLE) and close, which frees its
                          buffer (default 30; None: never)
      max_concurrent_streams  calls open at once on one connection (unary calls and
                          streams alike, gRPC's MAX_CONCURRENT_STREAMS); one more gets
                          RESOURCE_EXHAUSTED at once (default 16384)
      max_metadata_size   bytes of a CALL's metadata: each entry's key and value in
                          UTF-8 plus 32 (HTTP/2's count, as gRPC's limit); beyond it the
                          call gets RESOURCE_EXHAUSTED (default 8 KiB, gRPC's default)
      max_decoded_size    bytes the arrays and maps of one CALL or MESSAGE may take once
                          decoded (as sys.getsizeof counts them; default 64 MiB): a CALL
                          beyond it gets RESOURCE_EXHAUSTED, a MESSAGE is a protocol
                          error (GOAWAY)
      max_nesting_depth   how deep arrays and maps may nest in one CALL or MESSAGE,
                          counting the envelope's own (default 100); beyond it, as
                          max_decoded_size
      reflection          answer the built-in Reflection service (reflection.py), which
                          tells any client the registered services' methods, types and
                          docstrings (``gopherpipe describe``/``call`` use it); False: the
                          service is not there, its calls get UNIMPLEMENTED (default True)
      compression         algorithms a client may choose in HELLO (default: every one
                          installed, zstd then zlib; () refuses all); clients offer
                          them only off the local host by default (compression.py)
      compression_threshold   payloads of at least this many bytes are compressed
                          when a connection negotiated compression (default 1 KiB)
      tls                 the `ssl.SSLContext` of every tls:// and wss:// address
                          (`transport.tls.server_context` builds one from PEM files,
                          with mTLS when given the clients' CA); required by them
      interceptors        `interceptors.Interceptor`s run around every call, outermost
                          first (interceptors.py: order, hooks, the shipped ones)
      propagate_metadata  request metadata keys that calls made from a handler pass on
                          to the services they call, with the deadline (default none;
                          a handler adds more with `current_call().propagate(key)`)
      gophermap / registry   where to announce the services (resolver.py's `Announcer`:
                          a `discovery.GopherMap`, a `discovery.EtcdRegistry`): each
                          service with every bound address, from start() until stop()
                          begins (default: none)
      service_meta        metadata announced with the services, e.g. {"version":
                          "1.4", "zone": "eu-1"} (default none)

    Addresses may mix schemes (tcp, unix, tls, ws, wss). Every listener also
    upgrades WebSocket requests, so a tcp:// port serves ws:// clients too and a
    ws:// port serves native TCP_LITE clients (transport/).

    A handler runs on a pool thread while its user code runs: a unary call until it
    returns, a client stream while it reads its input. A server-streaming or bidi
    handler gives its thread back once it returns its Chan: open streams hold no
    thread, so `max_workers` bounds running user code, not open streams.

    Timeouts are enforced by a sweep every quarter of the shortest one (at most
    every second), so a connection may outlive its timeout by that much, never by
    less.

    When accept() fails for lack of file descriptors or memory the server stops
    accepting for a while (10 ms, doubling to 1 s) instead of retrying at once,
    and logs once per episode; connections already open keep being served.

    Every server answers the built-in Health service, "gopherpipe.Health"
    (health.py): `set_serving` sets what it says, `stop` turns it NOT_SERVING
    before draining, and `serve_forever` drains on SIGTERM as on Ctrl-C. Unless
    ``reflection=False``, it answers "gopherpipe.Reflection" (reflection.py) too.
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
        self._codec_table = codecs_with_limits(max_decoded_size, max_nesting_depth)
        self._max_concurrent_streams = max_concurrent_streams
        self._max_metadata_size = max_metadata_size
        chain = Chain(interceptors)
        self._interceptors: Chain | None = chain if chain.all else None
        self._propagate_metadata = frozenset(propagate_metadata)
        self._tls = tls
        self._compression = supported(tuple(compression), "Server")
        self._compression_threshold = compression_threshold
        self._max_frame_size = max_frame_size
        self._codecs = tuple(codecs)
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
        self._next_sweep = 0.0
        self._refusal = encode_goaway(
            0,
            StatusCode.RESOURCE_EXHAUSTED,
            f"server is at its limit of {max_connections} connections",
        )
        self._refused = 0
        """Connections refused since the server was last under its limit (for the log)."""
        self._accept_backoff = 0.0
        """Current pause after a failed accept; 0 once an accept succeeds."""
        self._accept_failures = 0
        self._accepting_at: float | None = None
        """While accepting is paused: when the listeners rejoin the selector."""
        self._selector = selectors.DefaultSelector()
        # With epoll, idle pool threads wait for the selector's own descriptor and
        # every round is a non-blocking poll (pool.py, "Waiting").
        self._rounds_block = not isinstance(self._selector, getattr(selectors, "EpollSelector", ()))
        self._pool = LeaderFollowerPool(
            max_workers,
            max(max_pending_calls, max_workers),
            self._poll_once,
            self._wake,
            poll_fd=None if self._rounds_block else self._selector.fileno(),
            poll_timeout=self._poll_timeout,
        )
        self._sender = StepRunner()
        self._health = HealthState()
        self._services: dict[str, ServiceDef] = {HEALTH_SERVICE: self._health.service_def()}
        if reflection:
            self._services[REFLECTION_SERVICE] = reflection_service(self._services)
        self._listeners: list[socket.socket] = []
        self._bound: list[Address] = []
        self._listening_on: dict[socket.socket, Address] = {}
        self._connections: set[_Connection] = set()
        self._commands: SimpleQueue[Callable[[], None]] = SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._started = False
        self._stopping = False
        """stop() has begun (health is NOT_SERVING); `_draining` follows on the I/O thread."""
        self._draining = False
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._announcers = [a for a in (gophermap, registry) if a is not None]
        self._service_meta = dict(service_meta or {})
        self._announced: list[str] = []

    # -- public API -------------------------------------------------------------

    def add_service(self, service: ServiceDef) -> None:
        """Register a service (generated `register_x(server, impl)` calls this)."""
        if service.name in self._services:
            raise ValueError(f"service {service.name!r} is already registered")
        self._services[service.name] = service
        self._health.add(service.name)
        if self._started and not self._stopping:
            self._announce()

    def set_serving(self, name: str, serving: bool) -> None:
        """Set what the built-in Health service ("gopherpipe.Health", health.py) answers
        for the service `name`, or for the server overall when `name` is "".

        Every registered service and the server overall are SERVING until set
        otherwise (also before start(): a server can start NOT_SERVING and turn
        SERVING once warm). A name not registered is a ValueError. Once stop() has
        begun everything is NOT_SERVING and this does nothing.
        """
        self._health.set(name, serving)

    @property
    def addresses(self) -> list[str]:
        """The addresses actually bound, as URLs (real ports when port 0 was asked:
        ``wss://127.0.0.1:40123/gp``); after start()."""
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
                    self._listening_on[sock] = bound
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
        self._announce()
        return self

    def _announce(self) -> None:
        names = [n for n in self._services if n not in (HEALTH_SERVICE, REFLECTION_SERVICE)]
        if not self._announcers or not names:
            return
        services = {name: self.addresses for name in names}
        for announcer in self._announcers:
            announcer.announce(services, self._service_meta)
        self._announced = names

    def _withdraw(self) -> None:
        names, self._announced = self._announced, []
        for announcer in self._announcers if names else ():
            try:
                announcer.withdraw(names)
            except Exception:  # a registry out of reach must not stop the drain
                log.exception("withdrawing %s from %r failed", names, announcer)

    def serve_forever(self, grace: float | None = 5.0) -> None:
        """start(), then block until the server stops: stop() called from another
        thread, or Ctrl-C or SIGTERM (what orchestrators send), either of which
        drains with `stop(grace)` and returns.

        SIGTERM is caught only when called from the main thread (Python runs signal
        handlers there), and only while this runs: the previous handler is put back
        on return. A second SIGTERM while draining is ignored (an orchestrator kills
        with SIGKILL after its own grace period); a second Ctrl-C interrupts the
        drain, as Ctrl-C does.
        """
        self.start()
        armed = True

        def on_sigterm(signum: int, frame: types.FrameType | None) -> None:
            # Raising is how a handler ends the wait below at once; a bare flag
            # would be seen only when the wait times out. Only the first SIGTERM,
            # and only before stop() began, so that nothing interrupts a drain.
            nonlocal armed
            if armed and not self._stopping:
                armed = False
                raise _Terminated

        # getsignal() before installing, so that the handler is put back whatever
        # point a signal interrupts (None: a handler not set from Python, which
        # could not be restored, so leave it).
        previous = (
            signal.getsignal(signal.SIGTERM)
            if threading.current_thread() is threading.main_thread()
            else None
        )
        try:
            try:
                if previous is not None:
                    signal.signal(signal.SIGTERM, on_sigterm)
                while not self._stopped.wait(0.5):
                    pass
            except (KeyboardInterrupt, _Terminated) as exc:
                armed = False
                why = "SIGTERM" if isinstance(exc, _Terminated) else "interrupted"
                log.info("%s: draining, up to %ss for calls in progress", why, grace or 0)
                self.stop(grace)
        finally:
            armed = False
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def stop(self, grace: float | None = None) -> None:
        """Stop serving: health first, then a drain of up to `grace` seconds.

        1. The Health service answers NOT_SERVING for the server and every service
           (for good: set_serving no longer changes it), and its watch streams end.
        2. Every open connection gets GOAWAY (UNAVAILABLE "server is shutting
           down"), so well-behaved clients send no new calls on it. The listeners
           stay open during the grace period so that health probes still reach the
           server and read NOT_SERVING: new connections are accepted, Health calls
           are answered, and every other new call is refused unprocessed at once: a
           GOAWAY naming the streams before it (UNAVAILABLE "server is shutting
           down"), so a client sends it to another endpoint.
        3. Calls in progress get up to `grace` seconds to finish (None or 0: no
           wait, like gRPC); stop returns sooner once none is left.
        4. The listeners close (a Unix socket's path is removed) and so does every
           connection; calls still running get UNAVAILABLE on the client.

        Idempotent.
        """
        self._stopping = True
        self._health.shut_down()
        self._withdraw()
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
        self._pool.close()
        self._sender.stop()
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

    def _poll_timeout(self) -> float:
        """Seconds until a round is due without any event (the next sweep, or accepting
        again), at most a sweep interval: idle pool threads wait this long."""
        wake_at = self._next_sweep
        if self._accepting_at is not None:
            wake_at = min(wake_at, self._accepting_at)
        return min(self._sweep_interval, max(0.0, wake_at - time.monotonic()))

    def _poll_once(self) -> bool:
        """One selector round (run by the current leader); False once the server is closed.

        It waits for events only where the pool has no idle threads waiting for them
        (`_rounds_block`: no epoll); with epoll it is called once there are events
        or a sweep is due, and does not wait."""
        timeout: float | None = 0
        if self._rounds_block:
            timeout = None
            if self._connections or self._accepting_at is not None:
                wake_at = self._next_sweep
                if self._accepting_at is not None:
                    wake_at = min(wake_at, self._accepting_at)
                timeout = max(0.0, wake_at - time.monotonic())
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
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval
            self._expire(now)
        if self._accepting_at is not None and now >= self._accepting_at:
            self._resume_accepting()
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
            except OSError as exc:
                if exc.errno in _PEER_ERRNOS:
                    continue
                # EMFILE, ENFILE, ENOBUFS, ENOMEM (or anything unforeseen): the
                # connection stays pending, so the listener stays readable and
                # retrying at once would spin.
                self._pause_accepting(exc)
                return
            if self._accept_backoff:
                log.warning("accepting again after %d failed attempts", self._accept_failures)
                self._accept_backoff = 0.0
                self._accept_failures = 0
            if len(self._connections) >= self._max_connections:
                self._refuse(sock)
                continue
            if self._refused:
                log.warning("under the connection limit again; refused %d", self._refused)
                self._refused = 0
            sock.setblocking(False)
            tune_accepted(sock)
            peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else peer or "unix"
            now = time.monotonic()
            conn = _Connection(sock, peer_text, now, now + self._handshake_timeout)
            conn.writer = FrameWriter(
                sock,
                self._write_timeout,
                on_error=functools.partial(_drop_after_write_error, sock, peer_text),
                offload=functools.partial(self._want_write, sock),
                max_pending=self._max_outbound_bytes,
                event_driven=True,
            )
            listening_on = self._listening_on[listener]
            if listening_on.tls:
                assert self._tls is not None
                conn.stack = Stack()
                conn.stack.push(TlsLayer(self._tls))
                conn.writer.transform = conn.stack.send
            if listening_on.websocket:
                conn.ws_path = listening_on.path
            self._connections.add(conn)
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _refuse(self, sock: socket.socket) -> None:
        """Tell a connection beyond `max_connections` why, and close it at once."""
        if not self._refused:
            log.warning(
                "refusing connections: at the limit of %d (max_connections)",
                self._max_connections,
            )
        self._refused += 1
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(self._refusal)  # a few bytes into an empty buffer: never partial
            sock.shutdown(socket.SHUT_WR)
            # Take in what the client already sent (its preface and HELLO), so that
            # closing sends FIN, not a reset that could destroy the GOAWAY unread.
            sock.recv(_READ_SIZE)
        sock.close()

    def _want_write(self, sock: socket.socket, _finish: Callable[[], None]) -> bool:
        """The writer's offload: poll the socket for writability, and finish the write
        there. It names the socket, not the connection: the writer must not refer
        back to its connection (see "close" above)."""
        if self._pool.is_leader():
            self._watch_writes(sock, True)
        else:
            self._run_on_io(functools.partial(self._watch_writes, sock, True))
        return True

    def _watch_writes(self, sock: socket.socket, on: bool) -> None:
        try:
            conn = self._selector.get_key(sock).data
        except (KeyError, ValueError):
            return  # closed meanwhile
        if conn.wants_write == on:
            return
        conn.wants_write = on
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.modify(conn.sock, events, conn)

    def _on_writable(self, conn: _Connection) -> None:
        conn.writer.flush_nowait()
        if conn.writer.sealed and conn.writer.idle and conn.state == "discard":
            self._close(conn)  # its last frame (a GOAWAY) is out
            return
        if conn.writer.idle and conn.state != "closed":
            self._watch_writes(conn.sock, False)

    def _pause_accepting(self, exc: OSError) -> None:
        self._accept_failures += 1
        if not self._accept_backoff:
            log.warning(
                "accept failed (%s) with %d connections open; pausing accept, "
                "backing off up to %gs",
                exc,
                len(self._connections),
                _ACCEPT_BACKOFF_MAX,
            )
            self._accept_backoff = _ACCEPT_BACKOFF_FIRST
        else:
            self._accept_backoff = min(_ACCEPT_BACKOFF_MAX, self._accept_backoff * 2)
        self._accepting_at = time.monotonic() + self._accept_backoff
        for listener in self._listeners:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(listener)

    def _resume_accepting(self) -> None:
        self._accepting_at = None
        for listener in self._listeners:
            with contextlib.suppress(KeyError):
                self._selector.register(listener, selectors.EVENT_READ, None)

    def _expire(self, now: float) -> None:
        """The sweep: handshake, frame, idle and write deadlines, and keepalive."""
        idle_timeout = self._idle_timeout
        keepalive_interval = self._keepalive_interval
        for conn in list(self._connections):
            state = conn.state
            if conn.active:
                conn.active = False
                conn.heard_at = now
                conn.ping_sent_at = None  # anything read answers a PING
            if state != "open":
                if now > conn.handshake_deadline:
                    self._close(conn)
            elif conn.frame_deadline is not None and now > conn.frame_deadline:
                self._go_away(
                    conn,
                    f"frame not complete {self._frame_timeout:g}s after its first byte "
                    f"(frame_timeout)",
                )
            elif conn.called or conn.streams:
                conn.called = False
                conn.quiet_since = now
                if conn.streams and keepalive_interval is not None:
                    self._keepalive(conn, now, keepalive_interval)
                else:
                    conn.ping_sent_at = None  # as below
            elif idle_timeout is not None and now - conn.quiet_since > idle_timeout:
                self._go_away(conn, f"idle timeout ({idle_timeout:g}s without a call)")
            else:
                # No call open: the client may not be reading, and would answer a PING
                # only when it next uses the connection (pipe.py). Not a dead peer.
                conn.ping_sent_at = None
            stalled = conn.writer.stalled_since if conn.wants_write else None
            if stalled is not None and now - stalled > self._write_timeout:
                conn.writer.fail(f"peer read nothing for {self._write_timeout:g}s")

    def _keepalive(self, conn: _Connection, now: float, interval: float) -> None:
        """Ping a connection with calls open that has been silent for `interval`; drop
        it when the PING has gone unanswered for the keepalive timeout."""
        sent = conn.ping_sent_at
        if sent is None:
            if now - conn.heard_at >= interval:
                conn.ping_sent_at = now
                conn.writer.write_nowait(encode_frame(FrameType.PING, _KEEPALIVE_PING))
        elif now - sent >= self._keepalive_timeout:
            self._go_away(
                conn, f"keepalive: no answer from the client within {self._keepalive_timeout:g}s"
            )

    def _ping_refused(self, conn: _Connection) -> bool:
        """The ping policy, for a PING that just arrived: True when it was one early
        PING too many and the connection is going away."""
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

    def _go_away(self, conn: _Connection, message: str) -> None:
        """GOAWAY (UNAVAILABLE), end the calls, and close after a short linger."""
        log.info("closing connection from %s: %s", conn.peer, message)
        last = max(conn.streams, default=0)
        self._end_calls(conn)
        conn.writer.write_nowait(encode_goaway(last, StatusCode.UNAVAILABLE, message), last=True)
        self._linger(conn)

    @staticmethod
    def _linger(conn: _Connection) -> None:
        """Read and drop for `_LINGER`, then close (the sweep does): closing with unread
        input would reset the connection and could destroy what we sent last (a
        GOAWAY, a TLS alert, a WebSocket close, a 404) before the peer reads it. Runs
        from the last write, whatever deadline the connection had before (an open
        one's handshake deadline is long past)."""
        conn.state = "discard"
        conn.decoder = FrameDecoder(0)  # frees a partial frame's buffer now
        conn.frame_deadline = None
        conn.handshake_deadline = time.monotonic() + _LINGER

    def _close(self, conn: _Connection) -> None:
        if conn.state == "closed":
            return
        conn.state = "closed"
        self._connections.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        if conn.stack is not None and conn.writer.idle:
            # A polite end (TLS close_notify, WebSocket close) where it fits in the
            # socket now; a peer that is not reading gets the plain close.
            with contextlib.suppress(OSError):
                conn.sock.send(conn.stack.close())
        conn.writer.close()
        conn.sock.close()
        # A handler still running keeps the connection alive; its buffers need not live
        # as long.
        conn.decoder = FrameDecoder(0)
        conn.preamble = b""
        self._end_calls(conn)

    @staticmethod
    def _end_calls(conn: _Connection) -> None:
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
        conn.active = True
        stack = conn.stack
        if stack is not None and conn.state != "discard":
            if (
                conn.state == "preamble"
                and data[:1] == PREFACE[:1]
                and not stack.layers[0].established
            ):
                self._refuse_plaintext(conn)
                return
            try:
                data = stack.receive(data)
            except TransportError as exc:
                self._drop_transport(conn, exc)
                return
            if stack.pending:
                conn.writer.write_nowait(b"")
            if not data:
                return
        try:
            if conn.state == "open" or conn.state == "hello":
                self._on_frames(conn, self._feed(conn, data))
            elif conn.state == "preamble":
                self._on_preamble(conn, data)
            elif conn.state == "http":
                self._on_http(conn, data)
            # "discard": the 400 is sent; the rest of the request is dropped unread
        except ProtocolError as exc:
            self._fail_connection(conn, StatusCode.INTERNAL, f"protocol error: {exc}")
        except HandshakeError as exc:
            self._fail_connection(conn, StatusCode.UNIMPLEMENTED, str(exc))
        except TransportError as exc:  # e.g. a WebSocket text message behind the upgrade
            self._drop_transport(conn, exc)
        except Exception as exc:
            # A bug in handling what one peer sent must cost that connection, not the
            # polling thread (and with it everyone's service).
            log.exception("failed handling bytes from %s", conn.peer)
            self._fail_connection(conn, StatusCode.INTERNAL, f"server error: {exc!r}"[:200])

    def _feed(self, conn: _Connection, data: bytes) -> list[frames.Frame]:
        """Split frames, and keep the deadline of the frame left incomplete, if any."""
        decoder = conn.decoder
        received = decoder.feed(data)
        if not decoder.buffered:
            conn.frame_deadline = None
        elif (received or conn.frame_deadline is None) and self._frame_timeout:
            # A frame began in this read: its clock starts now. Reset per frame, not
            # per empty buffer, since a busy stream may never leave the buffer empty.
            conn.frame_deadline = time.monotonic() + self._frame_timeout
        return received

    def _refuse_plaintext(self, conn: _Connection) -> None:
        """A TCP_LITE client on a TLS port: say so in plain TCP_LITE, which it reads,
        rather than close on it with a TLS error it cannot see."""
        log.info("closing connection from %s: plain TCP_LITE on a TLS port", conn.peer)
        conn.writer.transform = None
        conn.writer.write_nowait(
            encode_goaway(0, StatusCode.UNAVAILABLE, "this port speaks TLS: dial tls:// or wss://")
        )
        self._linger(conn)

    def _drop_transport(self, conn: _Connection, exc: TransportError) -> None:
        """The transport failed (a TLS error, a WebSocket text message) or the peer
        closed it: send what the layer owes (an alert, a close) and close after a
        short linger, as `_go_away` does, so the peer can read it."""
        if not isinstance(exc, TransportClosed):
            log.info("closing connection from %s: %s", conn.peer, exc)
        if conn.stack is not None and conn.stack.pending:
            conn.writer.write_nowait(b"")
        self._end_calls(conn)
        if isinstance(exc, TransportClosed):
            self._close(conn)
            return
        self._linger(conn)

    def _fail_connection(self, conn: _Connection, code: StatusCode, message: str) -> None:
        """GOAWAY and close. The calls end first and the GOAWAY seals the writer, so
        it is the last frame even while a stream is sending; if frames queued before
        it are still going out, the connection lingers until they are (at most
        `_LINGER`), reading and dropping, rather than dropping them and the GOAWAY."""
        log.info("closing connection from %s: %s", conn.peer, message)
        last = max(conn.streams, default=0)
        self._end_calls(conn)
        conn.writer.write_nowait(encode_goaway(last, code, message), last=True)
        if conn.writer.idle:
            self._close(conn)
            return
        self._linger(conn)

    def _on_preamble(self, conn: _Connection, data: bytes) -> None:
        seen = conn.preamble + data
        kind = classify_preamble(seen)
        if kind is Preamble.NEED_MORE:
            conn.preamble = seen
        elif kind is Preamble.TCP_LITE:
            conn.preamble = b""
            conn.state = "hello"
            self._on_frames(conn, self._feed(conn, seen[len(PREFACE) :]))
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
        answer = answer_http(head, conn.ws_path)
        if answer is None:
            conn.preamble = head
            return
        conn.preamble = b""
        if answer.layer is not None:
            # The TCP_LITE connection starts again inside the WebSocket: preface, HELLO.
            if conn.stack is None:
                conn.stack = Stack()
                conn.writer.transform = conn.stack.send
            conn.stack.push(answer.layer)
            conn.writer.write_nowait(b"")
            if not answer.accepted:
                log.info("closing connection from %s: WebSocket upgrade to a wrong path", conn.peer)
                self._linger(conn)
                return
            conn.state = "preamble"
            if answer.early:
                self._on_preamble(conn, answer.early)
            return
        conn.writer.write_nowait(answer.reply)
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)
        # Keep reading (and discarding) until the client closes or the deadline
        # passes: closing with unread bytes would reset the connection and could
        # destroy the 400 before the client reads it.
        conn.state = "discard"
        conn.handshake_deadline = min(conn.handshake_deadline, time.monotonic() + 2.0)

    def _on_frames(self, conn: _Connection, received: list[frames.Frame]) -> None:
        for frame in received:
            if conn.state == "hello":
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
                    call.inbound.finish(release=False)
            elif frame_type == _CALL_STREAM:
                self._on_call(conn, frame.stream_id, frame.payload, True)
            elif frame_type == FrameType.CANCEL:
                call = conn.streams.pop(frame.stream_id, None)
                if call is not None:
                    call.end(
                        CancelledError("the client cancelled the call"), "the client cancelled"
                    )
            elif frame_type == FrameType.PING:
                if self._ping_refused(conn):
                    return
                conn.writer.write_nowait(encode_frame(FrameType.PONG, frame.payload))
            elif frame_type in (FrameType.HELLO, FrameType.STATUS, FrameType.HEADERS):
                raise ProtocolError(f"unexpected {FrameType(frame_type).name} from a client")
            # PONG and GOAWAY need no action; unknown types are ignored so later
            # versions can add frames (RFC: Extensibility).
            if conn.state == "closed":
                return

    def _on_hello(self, conn: _Connection, frame: frames.Frame) -> None:
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
        conn.peer = self._peer_of(conn)
        conn.writer.write_nowait(encode_frame(FrameType.HELLO, reply))

    @staticmethod
    def _peer_of(conn: _Connection) -> Peer:
        if conn.sock.family != socket.AF_UNIX:
            base = "tcp"
        else:
            base = "memory" if conn.peer == memory_transport.PEER else "unix"
        transport, identity = transport_of(conn.stack, base)
        return Peer(conn.peer, transport, identity)

    def _on_call(
        self, conn: _Connection, stream_id: int, payload: bytes, client_streams: bool
    ) -> None:
        if stream_id in conn.streams:
            raise ProtocolError(f"stream {stream_id} is already open")
        conn.called = True  # not idle (the sweep)
        if self._draining and not self._is_health_call(conn, payload):
            # GOAWAY naming the streams accepted before this one, rather than a STATUS:
            # it tells the client that this call was not processed, so the client
            # may resend it elsewhere (another endpoint) whatever its method.
            last = max(conn.streams, default=0)
            conn.writer.write_nowait(
                encode_goaway(last, StatusCode.UNAVAILABLE, "server is shutting down")
            )
            return
        if len(conn.streams) >= self._max_concurrent_streams:
            self._reply_nowait(
                conn,
                stream_id,
                StatusCode.RESOURCE_EXHAUSTED,
                f"this connection has {len(conn.streams)} calls open, the server's limit "
                f"(max_concurrent_streams)",
            )
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
        context = CallContext("", "", {}, conn.peer, None, self._max_metadata_size)
        context.deadline = context.started  # arrival time until the header is read
        inbound = self._inbound(conn, stream_id) if client_streams else None
        call = _Call(context, inbound)
        conn.streams[stream_id] = call
        if not self._pool.try_submit(self._serve_call, conn, stream_id, payload, call, owner=conn):
            conn.streams.pop(stream_id, None)
            with conn.lock:
                conn.queued_call_bytes -= len(payload)
            self._reply_nowait(
                conn,
                stream_id,
                StatusCode.RESOURCE_EXHAUSTED,
                f"server is at its limit of {self._pool.max_pending} pending calls",
            )

    @staticmethod
    def _is_health_call(conn: _Connection, payload: bytes) -> bool:
        """A CALL to the Health service, which a draining server still answers. It
        decodes the CALL here, on the I/O thread, but only while draining."""
        assert conn.codec is not None
        try:
            return decode_call(conn.codec, payload).service == HEALTH_SERVICE
        except ProtocolError:
            return False

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
        except CodecLimitError as exc:
            raise ProtocolError(f"MESSAGE on stream {stream_id} refused: {exc}") from None
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
        """stop(), step 2: GOAWAY on every open connection. The listeners stay, and
        so do connections still in their handshake: either may be a health probe."""
        self._draining = True
        for conn in list(self._connections):
            if conn.state == "open":
                last = max(conn.streams, default=0)
                conn.writer.write_nowait(
                    encode_goaway(last, StatusCode.UNAVAILABLE, "server is shutting down")
                )

    def _close_everything(self) -> None:
        """stop(), step 4: the listeners, then every connection."""
        self._accepting_at = None
        for sock in self._listeners:
            with contextlib.suppress(KeyError):  # not registered while accepting is paused
                self._selector.unregister(sock)
            sock.close()
        self._listeners.clear()
        for address in self._bound:
            if address.scheme == "unix":
                with contextlib.suppress(OSError):
                    os.unlink(address.path)
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
        context = call.context
        if conn.streams.pop(stream_id, None) is not None:
            codec = conn.codec
            assert codec is not None
            if context._headers is not None and not context._headers_sent:
                self._send_headers(conn, stream_id, context)
            body = status_body(
                codec, code, message, result, context._trailers, conn.peer_max_frame_size
            )
            conn.writer.write_nowait(encode_stream_frame(_STATUS, stream_id, body))
        elif context._cancelled and code == _OK:
            code, message = StatusCode.CANCELLED, "cancelled"
        if call.credit is not None:
            # After the STATUS is queued: the client frees the stream's bytes when it
            # reads the STATUS, so ours must not be reused on the wire before it.
            call.credit.abort()
        if call.intercepted and self._interceptors is not None:
            call.intercepted = False
            self._interceptors.end(context, code, message)

    @staticmethod
    def _send_headers(conn: _Connection, stream_id: int, context: CallContext) -> None:
        """The handler's response headers (`set_headers`), once, before anything else of
        the response."""
        context._headers_sent = True
        headers = context._headers
        if headers:
            assert conn.codec is not None
            body = encode_headers(conn.codec, headers)
            conn.writer.write_nowait(encode_stream_frame(_HEADERS, stream_id, body))

    def _dispatch(
        self, conn: _Connection, stream_id: int, payload: bytes, state: _Call, codec: Codec
    ) -> tuple[int, str, Any] | None:
        """Decode, dispatch and run one call: its (code, message, wire result), or None
        when a stream was started that will end the call itself."""
        call = state.context
        opened = prepare_call(
            codec, payload, call, self._services, self._max_metadata_size, self._propagate_metadata
        )
        if isinstance(opened, Refusal):
            return opened.code, opened.message, None
        method, args = opened
        if method.client_streams:
            if state.inbound is None:  # plain CALL: the client's stream is empty
                state.inbound = self._inbound(conn, stream_id)
                state.inbound.finish()
            state.inbound.decode_item = method.decode_item
            if self._interceptors is not None and method.decode_item is not None:
                state.inbound.decode_item = self._interceptors.observing_receive(
                    call, method.decode_item
                )
            position = len(args) if method.stream_param is None else method.stream_param
            args = (*args[:position], state.inbound, *args[position:])
        if method.server_streams:
            windows = conn.peer_windows
            state.credit = Credit(windows.items, windows.stream_bytes, conn.send_window)
        set_current_call(call)
        try:
            if self._interceptors is None:
                result = method.call(*args)
            else:
                state.intercepted = True
                handler = method.call
                result = self._interceptors.run(call, lambda: handler(*args))
        except RpcError as exc:
            return exc.code, exc.message, None
        except BaseException as exc:  # the caller must always get an answer
            log.exception("handler %s.%s raised", call.service, call.method)
            return StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}", None
        finally:
            set_current_call(None)
        if method.server_streams:
            name = f"{call.service}.{call.method}"
            return self._stream_out(conn, stream_id, state, method, result, codec, name)
        if call.deadline is not None and time.monotonic() > call.deadline:
            # The caller has given up (or is about to): a late success must not
            # race its DEADLINE_EXCEEDED, as in gRPC.
            return (
                StatusCode.DEADLINE_EXCEEDED,
                f"{call.service}.{call.method} finished after its deadline",
                None,
            )
        try:
            return _OK, "", method.encode_result(result)
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
        context = state.context
        if context._cancelled:  # cancelled while the handler ran
            stop_source(source, "the client cancelled the call")
            return StatusCode.CANCELLED, "cancelled", None
        # Headers go before the first item, or not at all: set_headers refuses from now on.
        self._send_headers(conn, stream_id, context)
        encode_item = method.encode_item
        if self._interceptors is not None:
            encode_item = self._interceptors.observing_send(context, encode_item)

        def make_frames(batch: list[Any]) -> list[bytes]:
            return message_frames(codec, stream_id, batch, conn.peer_max_frame_size)

        def schedule(step: Callable[[], None]) -> bool:
            if isinstance(source, Chan | list | tuple):
                return self._sender.submit(step)  # its steps never block
            # A generator is user code: it waits its connection's turn for a pool thread.
            return self._pool.try_submit(step, admitted=True, owner=conn)

        def on_done(outcome: str, error: BaseException | None) -> None:
            code, message = self._stream_status(source, outcome, error, name)
            self._finish_call(conn, stream_id, state, code, message, None)

        Outbound(
            source,
            encode_item,
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
        if outcome == PumpOutcome.ABORTED:
            stop_source(source, "the client cancelled the call")
        elif outcome != PumpOutcome.DONE:
            stop_source(source, "the stream failed")
        return stream_status(outcome, error, name)


class Refusal(NamedTuple):
    """A call answered before its handler runs: the STATUS code and message."""

    code: int
    message: str


def prepare_call(
    codec: Codec,
    payload: bytes,
    call: CallContext,
    services: Mapping[str, ServiceDef],
    max_metadata_size: int,
    propagate_metadata: frozenset[str],
) -> tuple[MethodDef, tuple[Any, ...]] | Refusal:
    """A CALL's body -> the method to run and its decoded arguments, filling in `call`
    (service, method, metadata, kind, deadline, propagated metadata); or the Refusal that
    answers it (malformed, over a limit, unknown, past its deadline, bad arguments).

    Sans-IO, shared by both servers so that they answer alike. `call.deadline` holds the
    arrival time on entry (the CALL's timeout counts from it).
    """
    try:
        header = decode_call(codec, payload)
    except LimitExceeded as exc:
        return Refusal(StatusCode.RESOURCE_EXHAUSTED, f"CALL refused: {exc}")
    except ProtocolError as exc:
        return Refusal(StatusCode.INVALID_ARGUMENT, f"malformed CALL: {exc}")
    if header.metadata:
        size = metadata_size(header.metadata)
        if size > max_metadata_size:
            return Refusal(
                StatusCode.RESOURCE_EXHAUSTED,
                f"{header.service}.{header.method}: metadata of {size} bytes exceeds the "
                f"server's limit of {max_metadata_size} (max_metadata_size; each "
                f"entry counts its key and value in UTF-8 plus {METADATA_ENTRY_OVERHEAD})",
            )
    call.service = header.service
    call.method = header.method
    call.metadata = header.metadata
    arrival = call.deadline
    assert arrival is not None
    call.deadline = None if header.timeout_ms is None else arrival + header.timeout_ms / 1000
    service = services.get(header.service)
    if service is None:
        return Refusal(StatusCode.UNIMPLEMENTED, f"unknown service {header.service!r}")
    method = service.methods.get(header.method)
    if method is None:
        return Refusal(
            StatusCode.UNIMPLEMENTED,
            f"service {header.service!r} has no method {header.method!r}",
        )
    call.kind = method.kind
    if propagate_metadata and header.metadata:
        propagated = {k: v for k, v in header.metadata.items() if k in propagate_metadata}
        if propagated:
            call.propagated = propagated
    if call.cancelled:
        return Refusal(StatusCode.DEADLINE_EXCEEDED, "deadline passed before the call started")
    try:
        args = method.decode_args(header.args)
    except InvalidArgumentError as exc:
        return Refusal(StatusCode.INVALID_ARGUMENT, exc.message)
    except Exception as exc:
        log.exception("decoding arguments of %s.%s failed", header.service, header.method)
        return Refusal(StatusCode.INTERNAL, f"cannot decode arguments: {exc}")
    return method, args


def status_body(
    codec: Codec,
    code: int,
    message: str,
    result: Any,
    trailers: dict[str, str] | None,
    peer_max_frame_size: int,
) -> bytes:
    """A STATUS frame's body; INTERNAL when the result cannot be encoded, and
    RESOURCE_EXHAUSTED when it is more than the client takes in one frame."""
    try:
        body = encode_status(codec, code, message, result, trailers)
    except CodecError as exc:
        body = encode_status(codec, StatusCode.INTERNAL, f"cannot encode result: {exc}", None)
    if len(body) + frames.STREAM_ID_SIZE > peer_max_frame_size:
        body = encode_status(
            codec,
            StatusCode.RESOURCE_EXHAUSTED,
            f"result of {len(body)} bytes exceeds the client's max frame size "
            f"of {peer_max_frame_size}",
            None,
        )
    return body


def stream_status(outcome: str, error: BaseException | None, name: str) -> tuple[int, str]:
    """The final status of a server stream whose sending ended with `outcome`
    (`stream.PumpOutcome`) and `error`; `name` ("Service.method") is for the log."""
    if outcome == PumpOutcome.DONE:
        return StatusCode.OK, ""
    if outcome == PumpOutcome.ABORTED:
        return StatusCode.CANCELLED, "cancelled"
    if outcome == PumpOutcome.BAD_ITEM:
        detail = error.message if isinstance(error, RpcError) else str(error)
        return StatusCode.INTERNAL, f"handler sent a wrong value: {detail}"
    if isinstance(error, RpcError):
        return error.code, error.message
    if isinstance(error, ChanClosed):
        return StatusCode.CANCELLED, str(error)
    log.error("stream of %s failed: %r", name, error)
    return StatusCode.INTERNAL, f"{type(error).__name__}: {error}"

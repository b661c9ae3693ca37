"""Transports: how TCP_LITE's bytes travel between two sockets.

The address scheme picks the transport; the frames, handshake and calls above
never know which one they run on (RFC-TCP_LITE §3):

  tcp://host:port        tcp.py   TCP_LITE straight on a TCP socket
  unix:///path           unix.py  the same on a Unix socket
  tls://host:port        tls.py   TLS (stdlib `ssl`), TCP_LITE inside it
  ws://host:port/path    ws.py    TCP_LITE inside WebSocket binary messages
  wss://host:port/path   ws.py over tls.py
  memory://name          memory.py  an in-process socketpair, for tests

The one interface is `Layer`: sans-IO, like wire/frames.py -- bytes from the wire
in, TCP_LITE bytes out (`receive`), and the reverse (`send`). A connection has a
`Stack` of layers: none for tcp and unix (the hot path pays nothing), TLS, a
WebSocket, or TLS under a WebSocket. Sockets, blocking and clocks stay in the
server's and the client's thin I/O layer; the blocking client handshake of
every layer is `dial` here.

Threads. One thread at a time receives (the server's poller, the client's
reading leader); any thread may send, but only under the connection writer's
lock, which orders the wire. `Stack` holds its own lock across each whole
`receive` and `send` as well, since a layer's state (an `ssl.SSLObject`, a
`wsproto` connection) is shared by both directions and not thread-safe. Lock
order: writer, then stack. Bytes a layer must send on its own (TLS handshake
records and session tickets, a WebSocket pong or close) wait in the layer until
the next `send`; `Stack.pending` says so, and the owner then sends b"".

Server side, a listener's scheme says what comes first: TLS listeners (tls://,
wss://) run TLS before anything; then every listener sniffs the first bytes
(server.py): the TCP_LITE preface, or an HTTP request -- a WebSocket upgrade
(ws.py) on any listener, anything else the 400 of RFC §4.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from ..address import Address
from ..wire.frames import FrameDecoder, FrameType, ProtocolError, decode_goaway
from . import memory, tcp, unix


class TransportError(ConnectionError):
    """A transport failed (a TLS error, a WebSocket protocol violation, an upgrade
    refused): the connection is unusable. A ConnectionError, so code that handles
    a lost connection handles this too."""


class TransportClosed(TransportError):
    """The peer closed the transport cleanly (TLS close_notify, WebSocket close)."""


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who the peer proved to be: its verified TLS certificate."""

    subject: str
    """The certificate's subject as RFC 4514 writes it (its RDNs in reverse order):
    'CN=billing,O=Acme' for a certificate issued to O=Acme, CN=billing."""
    sans: tuple[str, ...]
    """Subject alternative names as 'DNS:x', 'IP Address:x', 'URI:x' (as `ssl` names them)."""


class Layer(Protocol):
    """One sans-IO transport layer (see the module docstring)."""

    @property
    def established(self) -> bool:
        """Its handshake is done: application bytes flow."""

    @property
    def pending(self) -> bool:
        """It holds bytes to send that only `send` hands out."""

    def receive(self, data: bytes) -> bytes:
        """Bytes from below -> bytes for above (b"" when none yet).

        Raises TransportError when the peer broke the transport's rules (what the
        layer must say back, e.g. a TLS alert, is then `pending`), TransportClosed
        when the peer closed it."""

    def send(self, data: bytes) -> bytes:
        """Bytes from above (b"" to flush) -> bytes for below, after what was pending.

        Never raises: a layer that has failed drops `data` (its `receive` reports
        the failure), since the writer calls it under its lock."""

    def identity(self) -> PeerIdentity | None:
        """The peer's verified identity, if this layer authenticates one."""

    def close(self) -> None:
        """We are closing: queue what says so (TLS close_notify, WebSocket close 1001),
        if the layer is established and has not closed yet."""


class Stack:
    """A connection's layers, bottom first; thread-safe (see "Threads")."""

    __slots__ = ("_layers", "_lock")

    def __init__(self) -> None:
        self._layers: list[Layer] = []
        self._lock = threading.Lock()

    def push(self, layer: Layer) -> None:
        with self._lock:
            self._layers.append(layer)

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(self._layers)

    @property
    def pending(self) -> bool:
        return any(layer.pending for layer in self._layers)

    def receive(self, data: bytes) -> bytes:
        with self._lock:
            for layer in self._layers:
                data = layer.receive(data)
                if not data:
                    break
            return data

    def send(self, data: bytes) -> bytes:
        with self._lock:
            for layer in reversed(self._layers):
                data = layer.send(data)
            return data

    def close(self) -> bytes:
        """Close every layer, top first; the bytes to send before closing the socket."""
        with self._lock:
            data = b""
            for layer in reversed(self._layers):
                layer.close()
                data = layer.send(data)
            return data

    def identity(self) -> PeerIdentity | None:
        for layer in self._layers:
            found = layer.identity()
            if found is not None:
                return found
        return None


def listen(address: Address, backlog: int = 512) -> tuple[socket.socket, Address]:
    """Bind and listen; returns the socket and the address actually bound."""
    if address.scheme == "unix":
        return unix.listen(address, backlog)
    if address.scheme == "memory":
        return memory.listen(address)
    return tcp.listen(address, backlog)


def tune_accepted(sock: socket.socket) -> None:
    if sock.family != socket.AF_UNIX:
        tcp.tune(sock)


def client_tls_context(address: Address, tls: ssl.SSLContext | None) -> ssl.SSLContext | None:
    """The context a client uses for `address`: `tls`, or the system's default
    (certificates checked against the system CAs) for tls:// and wss://."""
    if not address.tls:
        return None
    return tls if tls is not None else ssl.create_default_context()


def dial(
    address: Address, tls: ssl.SSLContext | None, timeout: float
) -> tuple[socket.socket, Stack | None, bytes]:
    """Connect and run every layer's handshake (blocking, within `timeout`).

    Returns the socket (blocking, its timeout set), the stack (None for tcp,
    unix and memory), and any application bytes that arrived with the last handshake.
    """
    # Imported here: both import this package for Layer's types and errors.
    from . import tls as tls_layer
    from . import ws as ws_layer

    deadline = time.monotonic() + timeout
    if address.scheme == "unix":
        sock = unix.connect(address, timeout)
    elif address.scheme == "memory":
        sock = memory.connect(address, timeout)
    else:
        sock = tcp.connect(address, timeout)
    if address.scheme in ("tcp", "unix", "memory"):
        return sock, None, b""
    try:
        stack = Stack()
        early = b""
        context = client_tls_context(address, tls)
        if context is not None:
            early = _establish(sock, stack, tls_layer.TlsLayer(context, address.host), deadline)
        if address.websocket:
            early = _establish(sock, stack, ws_layer.client_layer(address), deadline)
        return sock, stack, early
    except BaseException:
        sock.close()
        raise


def _establish(sock: socket.socket, stack: Stack, layer: Layer, deadline: float) -> bytes:
    stack.push(layer)
    out = stack.send(b"")
    early = b""
    while not layer.established:
        if out:
            sock.sendall(out)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{type(layer).__name__} handshake did not finish in time")
        sock.settimeout(remaining)
        data = sock.recv(64 * 1024)
        if not data:
            raise TransportError(f"server closed the connection during the {layer} handshake")
        try:
            early += stack.receive(data)
        except TransportError:
            refusal = _plain_goaway(data)
            if refusal is None:
                raise
            raise TransportError(f"server refused the connection: {refusal}") from None
        out = stack.send(b"")
    if out:
        sock.sendall(out)
    return early


def _plain_goaway(data: bytes) -> str | None:
    """The message of a GOAWAY sent in the clear where a handshake was expected: a
    server at its connection limit refuses before any TLS (server.py `_refuse`)."""
    try:
        frames = FrameDecoder().feed(data)
        if frames and frames[0].type == FrameType.GOAWAY:
            return decode_goaway(frames[0].payload)[2]
    except ProtocolError:
        pass
    return None


__all__ = [
    "Layer",
    "PeerIdentity",
    "Stack",
    "TransportClosed",
    "TransportError",
    "client_tls_context",
    "dial",
    "listen",
    "tune_accepted",
]

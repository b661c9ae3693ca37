"""What a server does with the HTTP that a connection opened with (RFC-TCP_LITE §2, §4).

Sans-IO, shared by the threaded server (server.py) and the asyncio one (aio/server.py):
they sniff the first bytes with `wire.frames.classify_preamble`, and once it says HTTP
they collect the request head and ask `answer_http` what to do with it: upgrade to a
WebSocket (transport/ws.py; TCP_LITE starts again inside it) or answer the 400 that
tells a browser or curl this port speaks TCP_LITE. `transport_of` names the transport
a connection's layers amount to, for `current_call().peer`.
"""

from __future__ import annotations

from typing import NamedTuple

from . import Layer, PeerIdentity, Stack
from . import ws as ws_transport
from .tls import TlsLayer

MAX_HTTP_HEAD = 16 * 1024
"""Bytes of an HTTP request head a server reads before it answers anyway: a head that
never ends costs a bounded buffer."""
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
HTTP_400_RESPONSE = HTTP_400 % (len(HTTP_400_BODY), HTTP_400_BODY)


class HttpAnswer(NamedTuple):
    """What to do with a complete HTTP request head.

    An upgrade: `layer` (a WebSocket, its answer pending: push it on the connection's
    stack and flush) with `early` TCP_LITE bytes that came behind the request, and
    `accepted` False when the path was wrong (the answer is a 404: linger, then close).
    Anything else: `layer` None and `reply` the 400 to send before closing.
    """

    layer: Layer | None
    early: bytes
    accepted: bool
    reply: bytes


def answer_http(head: bytes, ws_path: str | None) -> HttpAnswer | None:
    """The answer to the HTTP request that `head` starts; None while the head is not
    complete and still under `MAX_HTTP_HEAD` (read more). `ws_path` is the only path a
    WebSocket upgrade may ask for (a ws:// listener's), None for any."""
    if b"\r\n\r\n" not in head and len(head) < MAX_HTTP_HEAD:
        return None
    try:
        layer, early, accepted = ws_transport.accept(head, ws_path)
    except ws_transport.UpgradeUnavailable:
        return HttpAnswer(None, b"", False, HTTP_400_RESPONSE)
    return HttpAnswer(layer, early, accepted, b"")


def transport_of(stack: Stack | None, base: str) -> tuple[str, PeerIdentity | None]:
    """The transport a connection came over ("tls", "ws", "wss", or `base`: "tcp",
    "unix", "memory" when it has no layers) and the identity its TLS proved, if any."""
    if stack is None:
        return base, None
    layers = stack.layers
    tls = any(isinstance(layer, TlsLayer) for layer in layers)
    websocket = any(isinstance(layer, ws_transport.WsLayer) for layer in layers)
    transport = ("wss" if tls else "ws") if websocket else ("tls" if tls else base)
    return transport, stack.identity()

"""ws:// and wss://: TCP_LITE inside WebSocket binary messages (RFC-TCP_LITE §3.4).

The payloads of the binary messages, in order, are the TCP_LITE byte stream:
message boundaries mean nothing (a peer may put one frame per message, several,
or split one), so a plain WebSocket client only has to send and read bytes.
Text messages are refused: close code 1003 (unsupported data). Pings are
answered; a close is answered and ends the connection.

HTTP and WebSocket parsing is wsproto's (sans-IO, with h11 for the upgrade),
imported only when a WebSocket is used: it is the `ws` extra, and a server
without it answers an upgrade with the 400 it gives any other HTTP request.

Server side, any listener upgrades (server.py sniffs the HTTP request); a ws://
or wss:// listener whose address has a path other than "/" accepts only that
path (404 otherwise). The subprotocol "tcp_lite" is selected when a client
offers it; offering none is fine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..address import Address
from . import PeerIdentity, TransportClosed, TransportError

if TYPE_CHECKING:
    from wsproto import WSConnection

SUBPROTOCOL = "tcp_lite"
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
POLICY_VIOLATION = 1008


class UpgradeUnavailable(Exception):
    """The request is not a WebSocket upgrade (or wsproto is not installed)."""


def _wsproto() -> Any:
    try:
        import wsproto
        import wsproto.connection
        import wsproto.events
        import wsproto.utilities
    except ImportError:  # pragma: no cover - the `ws` extra not installed
        raise UpgradeUnavailable("WebSocket support needs the 'ws' extra (wsproto)") from None
    return wsproto


class WsLayer:
    """A WebSocket as a `Layer`, over a `wsproto.WSConnection`."""

    __slots__ = ("_events", "_out", "_state_open", "_ws", "established")

    def __init__(self, connection: WSConnection) -> None:
        self._ws = connection
        self._out: list[bytes] = []
        self.established = False
        self._events = _wsproto().events
        self._state_open = _wsproto().connection.ConnectionState.OPEN

    def __str__(self) -> str:
        return "WebSocket"

    @property
    def pending(self) -> bool:
        return bool(self._out)

    def identity(self) -> PeerIdentity | None:
        return None

    def close(self) -> None:
        if self.established:
            self._close(GOING_AWAY, "closing")

    def receive(self, data: bytes) -> bytes:
        events = self._events
        try:
            self._ws.receive_data(data)
            received: list[bytes] = []
            for event in self._ws.events():
                if isinstance(event, events.BytesMessage):
                    received.append(event.data)
                elif isinstance(event, events.Ping):
                    self._out.append(self._ws.send(event.response()))
                elif isinstance(event, events.AcceptConnection):
                    self.established = True
                elif isinstance(event, events.TextMessage):
                    self._close(UNSUPPORTED_DATA, "TCP_LITE travels in binary messages")
                    raise TransportError(
                        "WebSocket text message: TCP_LITE travels in binary messages "
                        f"(closed with {UNSUPPORTED_DATA})"
                    )
                elif isinstance(event, events.CloseConnection):
                    with _suppress_ws_errors():
                        self._out.append(self._ws.send(event.response()))
                    raise TransportClosed(
                        f"WebSocket closed by the peer ({event.code}"
                        f"{': ' + event.reason if event.reason else ''})"
                    )
                elif isinstance(event, events.RejectConnection):
                    raise TransportError(f"WebSocket upgrade refused: HTTP {event.status_code}")
                # Pong, RejectData (a refusal's body) and Request (the server's
                # layer is made from it, see `accept`) need nothing here.
        except _wsproto().utilities.RemoteProtocolError as exc:
            raise TransportError(f"WebSocket protocol error: {exc}") from None
        return b"".join(received)

    def send(self, data: bytes) -> bytes:
        # Never raises (writer.transform): once closing, data is dropped; `receive`
        # is what reports the end.
        if data and self.established:
            with _suppress_ws_errors():
                self._out.append(self._ws.send(self._events.BytesMessage(data=data)))
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _close(self, code: int, reason: str) -> None:
        if self._ws.state is not self._state_open:
            return
        with _suppress_ws_errors():
            self._out.append(self._ws.send(self._events.CloseConnection(code=code, reason=reason)))


class _suppress_ws_errors:
    """A close or its answer that wsproto's state machine no longer allows is moot."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        return exc_type is not None and issubclass(
            exc_type, _wsproto().utilities.LocalProtocolError
        )


def client_layer(address: Address) -> WsLayer:
    """The client's layer; its upgrade request is pending (transport.dial sends it)."""
    wsproto = _wsproto()
    connection = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    host = f"[{address.host}]" if ":" in address.host else address.host
    layer = WsLayer(connection)
    layer._out.append(
        connection.send(
            wsproto.events.Request(
                host=f"{host}:{address.port}", target=address.path, subprotocols=[SUBPROTOCOL]
            )
        )
    )
    return layer


def accept(head: bytes, path: str | None) -> tuple[WsLayer, bytes, bool]:
    """Answer an HTTP request that arrived on a server connection.

    Returns the layer (its answer pending), the TCP_LITE bytes that came after the
    request, and whether it was accepted (a wrong `path` gets a 404; None accepts
    any). Raises UpgradeUnavailable when `head` is not a WebSocket upgrade, which
    the server answers as any other HTTP request.
    """
    wsproto = _wsproto()
    events = wsproto.events
    connection = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    try:
        connection.receive_data(head)
        request = next(connection.events(), None)
    except wsproto.utilities.RemoteProtocolError as exc:
        raise UpgradeUnavailable(str(exc)) from None
    if not isinstance(request, events.Request):
        raise UpgradeUnavailable("no complete upgrade request")
    layer = WsLayer(connection)
    if path is not None and path not in ("", "/") and request.target.split("?")[0] != path:
        layer._out.append(connection.send(events.RejectConnection(status_code=404, has_body=False)))
        return layer, b"", False
    subprotocol = SUBPROTOCOL if SUBPROTOCOL in request.subprotocols else None
    layer._out.append(connection.send(events.AcceptConnection(subprotocol=subprotocol)))
    layer.established = True
    # Bytes the client sent right behind its request are WebSocket frames already.
    early = layer.receive(b"")
    return layer, early, True

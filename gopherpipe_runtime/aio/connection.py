"""One socket's bytes <-> TCP_LITE frames on an event loop: the thin I/O layer of both
the asyncio Server and Pipe.

Everything below and above is shared with the threaded runtime and sans-IO: transport
layers (`transport.Stack`: TLS, WebSocket) turn socket bytes into TCP_LITE bytes and
back, `wire.frames.FrameDecoder` splits frames. `Connection` is the asyncio `Protocol`
between the two, and what its owner (a server connection, a client endpoint) sees is
`on_frames(list)` per read and `on_lost(error)` once.

Writes are corked per loop iteration: `write` queues, and the queue goes out as one
`transport.write` from a `call_soon` callback, so the frames many tasks write in one
iteration (a burst of STATUS frames, a stream's MESSAGE and CREDIT) cost one send. A
layer's transform runs at the moment of that send, because its output is ordered (TLS
records are numbered): transform order is wire order, and nothing else calls
`stack.send` in between (bytes a layer must send on its own after a receive -- TLS
tickets, a WebSocket pong -- go out right after that receive).

Backpressure: asyncio's transport buffers what the socket does not take and calls
`pause_writing` above its high-water mark; `drain()` is where a producer then
suspends, so a peer that stops reading holds tasks, not memory without bound.

`open_connection` dials every scheme: tcp and unix with the loop's own connect,
memory:// over a socketpair end (transport/memory.py), and tls://, ws://, wss:// by
pushing their layers on the stack and driving each handshake through the same
`data_received` path the frames take later.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Any, cast

from ..address import Address
from ..transport import Layer, Stack, TransportError, _plain_goaway, client_tls_context, memory
from ..wire.frames import MAX_HELLO_SIZE, Frame, FrameDecoder, ProtocolError


class Connection(asyncio.Protocol):
    """bytes <-> frames for one socket; see the module docstring."""

    def __init__(
        self,
        on_frames: Callable[[list[Frame]], None],
        on_lost: Callable[[BaseException | None], None],
    ) -> None:
        self.on_frames = on_frames
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.stack: Stack | None = None
        self.decoder = FrameDecoder(MAX_HELLO_SIZE)
        self.raw: Callable[[bytes], None] | None = None
        """While set, bytes (after the stack) go here instead of the decoder: a
        server sniffing the preamble, a layer's handshake in `establish`."""
        self.peer = ""
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._lost: asyncio.Future[None] | None = None
        self._reported = False
        self._error: BaseException | None = None
        self._gone = False
        self._handshake: tuple[Layer, asyncio.Future[None]] | None = None
        self._raw_seen = b""
        """The first socket bytes of a layer handshake that failed: a server at its
        connection limit refuses with a plain GOAWAY where TLS was expected."""

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports have asyncio.Transport's
        # methods without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        name = transport.get_extra_info("peername")
        if isinstance(name, tuple) and len(name) >= 2:
            self.peer = f"[{name[0]}]:{name[1]}" if ":" in str(name[0]) else f"{name[0]}:{name[1]}"
        elif name:
            self.peer = str(name)
        else:
            self.peer = "memory" if not transport.get_extra_info("sockname") else "unix"

    def data_received(self, data: bytes) -> None:
        if self._reported:
            return
        try:
            stack = self.stack
            if stack is not None:
                handshake = self._handshake
                if handshake is not None and not self._raw_seen:
                    self._raw_seen = data[:4096]
                data = stack.receive(data)
                if stack.pending:
                    self._send_through_layers(b"")
                if handshake is not None and handshake[0].established and not handshake[1].done():
                    handshake[1].set_result(None)
                if not data:
                    return
            raw = self.raw
            if raw is not None:
                raw(data)
                return
            frames = self.decoder.feed(data)
            if frames:
                self.on_frames(frames)
        except (ProtocolError, TransportError) as exc:
            self.fail(exc)

    def eof_received(self) -> bool | None:
        return None  # close our side too: a half-closed TCP_LITE peer cannot go on

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drainers(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._gone = True
        self._paused = False
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._queue.clear()
        error = self._error or exc
        self._wake_drainers(ConnectionResetError("connection lost") if error is None else error)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._report(error)

    # -- reading

    def feed(self, data: bytes) -> None:
        """TCP_LITE bytes into the frame decoder (leftovers after `raw` is unset)."""
        if not data or self._reported:
            return
        try:
            frames = self.decoder.feed(data)
            if frames:
                self.on_frames(frames)
        except ProtocolError as exc:
            self.fail(exc)

    # -- writing

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        self._queue.append(data)
        if self._flush_handle is None:
            loop = self._loop
            assert loop is not None
            self._flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_handle = None
        queue = self._queue
        if not queue or self.transport is None:
            return
        data = queue[0] if len(queue) == 1 else b"".join(queue)
        queue.clear()
        self._send_through_layers(data)

    def _send_through_layers(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.stack is not None:
            data = self.stack.send(data)
        if data:
            transport.write(data)

    @property
    def paused(self) -> bool:
        """The transport asked us to stop writing (its buffer is above high water)."""
        return self._paused

    async def drain(self) -> None:
        """Suspend while the transport's buffer is above its high-water mark."""
        if self._reported:
            raise ConnectionResetError("connection lost")
        if not self._paused:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._drain_waiters:
                self._drain_waiters.remove(waiter)

    def _wake_drainers(self, error: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)

    # -- ending

    def close(self, final: bytes = b"") -> None:
        """Write `final` (a GOAWAY), what is queued and the layers' goodbyes, then close."""
        if self.closed:
            return
        if final:
            self._queue.append(final)
        self.flush()
        self.closed = True
        transport = self.transport
        if transport is None:
            return
        if self.stack is not None and not transport.is_closing():
            goodbye = self.stack.close()
            if goodbye:
                transport.write(goodbye)
        transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def fail(self, error: BaseException) -> None:
        """A protocol or transport error: report it once, then drop the connection
        (after what a layer must still say, e.g. a TLS alert)."""
        if self._error is None:
            self._error = error
        stack = self.stack
        if stack is not None and stack.pending:
            self._send_through_layers(b"")
            self.closed = True
            if self.transport is not None:
                self.transport.close()  # lets the alert out; an abort would drop it
        else:
            self.abort()
        self._report(error)

    def _report(self, error: BaseException | None) -> None:
        if self._reported:
            return
        self._reported = True
        handshake = self._handshake
        if handshake is not None and not handshake[1].done():
            handshake[1].set_exception(
                error if error is not None else ConnectionResetError("closed during the handshake")
            )
        self.on_lost(error)

    async def wait_lost(self) -> None:
        """Until `connection_lost` ran."""
        if self.transport is None or self._gone:
            return
        if self._lost is None:
            self._lost = asyncio.get_running_loop().create_future()
        await self._lost

    # -- transport layers

    async def establish(self, layer: Layer) -> bytes:
        """Push `layer` and run its handshake; the application bytes that came with it.

        The handshake's bytes take the same path frames take later (`data_received`
        through the stack); until the layer is established, what comes out on top
        is collected rather than parsed.
        """
        if self.stack is None:
            self.stack = Stack()
        self.stack.push(layer)
        early = bytearray()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handshake = (layer, waiter)
        self.raw = early.extend
        try:
            self._send_through_layers(b"")
            if not layer.established:
                await waiter
        except TransportError:
            refusal = _plain_goaway(self._raw_seen) if self._raw_seen else None
            if refusal is not None:
                raise TransportError(f"server refused the connection: {refusal}") from None
            raise
        finally:
            self._handshake = None
            self.raw = None
        return bytes(early)


async def open_connection(
    address: Address,
    factory: Callable[[], Connection],
    *,
    tls: ssl.SSLContext | None,
    timeout: float,
) -> tuple[Connection, bytes]:
    """Connect to `address` and run every transport layer's handshake, within `timeout`.

    Returns the connection and any TCP_LITE bytes that arrived with the last handshake
    (feed them once the frame handlers are in place). TimeoutError, OSError or
    TransportError when it cannot.
    """
    # Imported here, as transport.dial does: they import transport for Layer.
    from ..transport import tls as tls_layer
    from ..transport import ws as ws_layer

    loop = asyncio.get_running_loop()
    connection: Connection | None = None
    try:
        async with asyncio.timeout(timeout):
            made: tuple[Any, Connection]
            if address.scheme == "unix":
                made = await loop.create_unix_connection(factory, address.path)
            elif address.scheme == "memory":
                sock = memory.connect(address, timeout)
                sock.setblocking(False)
                made = await loop.create_unix_connection(factory, sock=sock)
            else:
                made = await loop.create_connection(
                    factory, address.host, address.port, family=address.family
                )
                sock = made[0].get_extra_info("socket")
                if sock is not None and sock.family != socket.AF_UNIX:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = made[1]
            early = b""
            context = client_tls_context(address, tls)
            if context is not None:
                early = await connection.establish(tls_layer.TlsLayer(context, address.host))
            if address.websocket:
                early = await connection.establish(ws_layer.client_layer(address))
            return connection, early
    except BaseException:
        if connection is not None:
            connection.abort()
        raise


__all__ = ["Connection", "open_connection"]

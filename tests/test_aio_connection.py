"""The asyncio I/O layer (aio/connection.py, aio/stream.py) against the threaded server.

Raw frames over every transport: dial, each layer's handshake, HELLO, a unary call;
then a server stream read through `Inbound` (credit returned as items are taken) and
a client stream sent by `send_stream` within the server's credit.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gopherpipe_runtime import MethodDef, MethodKind, Server, ServiceDef
from gopherpipe_runtime.address import parse_address
from gopherpipe_runtime.aio.connection import Connection, open_connection
from gopherpipe_runtime.aio.stream import Inbound, send_stream
from gopherpipe_runtime.flow import Credit, Inflow, ReceiveWindow, SendWindow
from gopherpipe_runtime.stream import PumpOutcome, message_frames
from gopherpipe_runtime.testing import memory_address
from gopherpipe_runtime.transport import tls as tls_transport
from gopherpipe_runtime.wire.codec import CODECS
from gopherpipe_runtime.wire.envelope import decode_status, encode_call
from gopherpipe_runtime.wire.frames import (
    DEFAULT_MAX_FRAME_SIZE,
    PREFACE,
    Frame,
    FrameType,
    decode_credit,
    encode_credit,
    encode_frame,
    encode_stream_frame,
)
from gopherpipe_runtime.wire.handshake import client_accept, client_hello
from gopherpipe_runtime.wire.windows import Windows

CERTS = Path(__file__).resolve().parent.parent / "examples" / "certs"
CODEC = CODECS["msgpack"]


def _identity(value: Any) -> Any:
    return value


def _service(produced: list[int]) -> ServiceDef:
    def count(n: int) -> Any:
        for i in range(n):
            produced.append(i)
            yield i

    def total(items: Any) -> int:
        return sum(items)

    return ServiceDef(
        "Raw",
        {
            "echo": MethodDef(MethodKind.UNARY, tuple, lambda text: text, _identity),
            "count": MethodDef(
                MethodKind.SERVER_STREAM, tuple, count, _identity, encode_item=_identity
            ),
            "total": MethodDef(
                MethodKind.CLIENT_STREAM,
                tuple,
                total,
                _identity,
                stream_param=0,
                decode_item=_identity,
            ),
        },
    )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[list[str], list[int]]]:
    produced: list[int] = []
    with tempfile.TemporaryDirectory() as scratch:
        context = tls_transport.server_context(str(CERTS / "server.pem"), str(CERTS / "server.key"))
        srv = Server(
            "tcp://127.0.0.1:0",
            f"unix://{scratch}/raw.sock",
            memory_address(),
            "tls://127.0.0.1:0",
            "ws://127.0.0.1:0/gp",
            "wss://127.0.0.1:0/gp",
            tls=context,
        )
        srv.add_service(_service(produced))
        with srv:
            yield srv.addresses, produced


class _Peer:
    """A client connection driven by hand: frames collected per stream."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.lost: BaseException | None = None
        self.connection = Connection(self._on_frames, self._on_lost)
        self.streams: dict[int, Any] = {}

    def _on_frames(self, frames: list[Frame]) -> None:
        for frame in frames:
            handler = self.streams.get(frame.stream_id)
            if handler is not None and handler(frame):
                continue
            self.frames.put_nowait(frame)

    def _on_lost(self, error: BaseException | None) -> None:
        self.lost = error or ConnectionResetError("closed")

    async def dial(self, address: str, windows: Windows | None = None) -> Any:
        tls = tls_transport.client_context(str(CERTS / "ca.pem"))
        connection, early = await open_connection(
            parse_address(address), lambda: self.connection, tls=tls, timeout=5
        )
        assert connection is self.connection
        connection.write(
            PREFACE
            + encode_frame(
                FrameType.HELLO,
                client_hello(("msgpack",), DEFAULT_MAX_FRAME_SIZE, windows or Windows()),
            )
        )
        connection.feed(early)
        hello = await asyncio.wait_for(self.frames.get(), 5)
        assert hello.type == FrameType.HELLO
        settings = client_accept(hello.payload, ("msgpack",))
        connection.decoder.max_frame_size = DEFAULT_MAX_FRAME_SIZE
        return settings

    async def next_frame(self) -> Frame:
        return await asyncio.wait_for(self.frames.get(), 5)


def _call(method: str, args: list[Any], stream_id: int, streaming: bool = False) -> bytes:
    frame_type = FrameType.CALL_STREAM if streaming else FrameType.CALL
    return encode_stream_frame(
        frame_type, stream_id, encode_call(CODEC, "Raw", method, 5000, {}, args)
    )


@pytest.mark.parametrize("scheme", ["tcp", "unix", "memory", "tls", "ws", "wss"])
def test_a_unary_call_over(scheme: str, server: tuple[list[str], list[int]]) -> None:
    address = next(a for a in server[0] if a.startswith(f"{scheme}://"))

    async def main() -> None:
        peer = _Peer()
        await peer.dial(address)
        for stream_id in (1, 3, 5):  # three frames written in one loop iteration
            peer.connection.write(_call("echo", [f"hi {stream_id}"], stream_id))
        replies = [await peer.next_frame() for _ in range(3)]
        assert sorted((f.stream_id, decode_status(CODEC, f.payload)) for f in replies) == [
            (1, (0, "", "hi 1")),
            (3, (0, "", "hi 3")),
            (5, (0, "", "hi 5")),
        ]
        peer.connection.close()
        await asyncio.wait_for(peer.connection.wait_lost(), 5)

    asyncio.run(main())


def test_inbound_returns_credit_as_items_are_taken(server: tuple[list[str], list[int]]) -> None:
    address = server[0][0]
    produced = server[1]
    produced.clear()
    window = Windows(16, 1 << 20, 1 << 24)

    async def main() -> None:
        peer = _Peer()
        await peer.dial(address, window)
        connection = peer.connection

        def send_credit(items: int, nbytes: int) -> None:
            connection.write(encode_credit(1, items, nbytes))

        inflow = Inflow(ReceiveWindow(window.connection_bytes), 16, 1 << 20, send_credit)
        inbound: Inbound[int] = Inbound(inflow)
        status: list[Frame] = []

        def on_stream(frame: Frame) -> bool:
            if frame.type == FrameType.MESSAGE:
                assert inbound.deliver(CODEC.decode(frame.payload), len(frame.payload))
            elif frame.type == FrameType.STATUS:
                status.append(frame)
                inbound.finish()
            return True

        peer.streams[1] = on_stream
        connection.write(_call("count", [2000], 1, streaming=True))
        await asyncio.sleep(0.3)
        # Nothing taken yet: the server may have produced at most one window ahead.
        assert len(produced) <= 16 + 1
        received = [item async for item in inbound]
        assert received == list(range(2000))
        assert decode_status(CODEC, status[0].payload)[0] == 0
        connection.close()

    asyncio.run(main())


def test_send_stream_keeps_within_the_servers_credit(server: tuple[list[str], list[int]]) -> None:
    address = server[0][0]

    async def main() -> None:
        peer = _Peer()
        settings = await peer.dial(address)
        connection = peer.connection
        windows = settings.peer_windows
        credit = Credit(windows.items, windows.stream_bytes, SendWindow(windows.connection_bytes))

        def on_stream(frame: Frame) -> bool:
            if frame.type == FrameType.CREDIT:
                credit.grant(*decode_credit(frame.payload))
                return True
            return False

        peer.streams[1] = on_stream
        connection.write(_call("total", [], 1, streaming=True))

        async def numbers() -> Any:
            for i in range(5000):
                yield i

        outcome = await send_stream(
            numbers(),
            encode_item=_identity,
            make_frames=lambda batch: message_frames(CODEC, 1, batch, DEFAULT_MAX_FRAME_SIZE),
            credit=credit,
            connection=connection,
        )
        assert outcome == (PumpOutcome.DONE, None)
        connection.write(encode_stream_frame(FrameType.HALF_CLOSE, 1, b""))
        reply = await peer.next_frame()
        assert reply.type == FrameType.STATUS
        assert decode_status(CODEC, reply.payload) == (0, "", sum(range(5000)))
        connection.close()

    asyncio.run(main())


def test_a_tls_client_that_does_not_trust_the_server_is_told(
    server: tuple[list[str], list[int]],
) -> None:
    address = next(a for a in server[0] if a.startswith("tls://"))

    async def main() -> None:
        connection = Connection(lambda frames: None, lambda error: None)
        with pytest.raises(Exception, match="certificate"):
            await open_connection(
                parse_address(address),
                lambda: connection,
                tls=ssl.create_default_context(),
                timeout=5,
            )

    asyncio.run(main())

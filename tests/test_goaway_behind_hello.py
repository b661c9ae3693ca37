"""A server that begins draining as a client connects sends its GOAWAY right behind its
HELLO, often in the same segment. Both clients take it as a GOAWAY (the call goes on a
new connection), not as a broken handshake. (An aio server drains so: its HELLO and the
drain's GOAWAY leave in one write when stop() comes in the same loop iteration.)"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import msgpack
import pytest

from gopherpipe_runtime import CallOptions, Pipe, StatusCode, aio
from gopherpipe_runtime.wire.frames import (
    PREFACE,
    FrameDecoder,
    FrameType,
    encode_frame,
    encode_goaway,
    encode_stream_frame,
)

SERVER_HELLO = encode_frame(
    FrameType.HELLO,
    msgpack.packb({"version": 2, "codec": "msgpack", "max_frame_size": 1 << 20}),
)


def _serve_one(conn: socket.socket, drain_at_once: bool) -> None:
    conn.settimeout(10)
    decoder = FrameDecoder()
    buffered = b""
    while len(buffered) < len(PREFACE):
        buffered += conn.recv(4096)
    frames = decoder.feed(buffered[len(PREFACE) :])
    while not frames:
        frames = decoder.feed(conn.recv(4096))
    if drain_at_once:
        conn.sendall(
            SERVER_HELLO + encode_goaway(0, StatusCode.UNAVAILABLE, "server is shutting down")
        )
        conn.recv(4096)  # until the client drops it
        return
    conn.sendall(SERVER_HELLO)
    decoder.max_frame_size = 1 << 20
    calls = frames[1:]
    while not calls:
        calls = decoder.feed(conn.recv(4096))
    call = calls[0]
    status = msgpack.packb([0, "", "answered"])
    conn.sendall(encode_stream_frame(FrameType.STATUS, call.stream_id, status))
    conn.recv(4096)


@pytest.fixture
def draining_then_serving() -> Iterator[tuple[str, list[int]]]:
    """Its first connection gets HELLO+GOAWAY in one send, the next ones an answer."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve(conn: socket.socket, number: int) -> None:
        with conn:
            _serve_one(conn, drain_at_once=number == 0)

    def run() -> None:
        with listener:
            for number in range(2):
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                accepted.append(number)
                threading.Thread(target=serve, args=(conn, number), daemon=True).start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}", accepted
    listener.close()
    thread.join(10)


def test_the_threaded_pipe_calls_again_on_a_new_connection(
    draining_then_serving: tuple[str, list[int]],
) -> None:
    address, accepted = draining_then_serving
    with Pipe(address) as pipe:
        assert pipe.unary("S", "m", [], CallOptions(timeout=10)) == "answered"
    assert accepted == [0, 1]


def test_the_asyncio_pipe_calls_again_on_a_new_connection(
    draining_then_serving: tuple[str, list[int]],
) -> None:
    address, accepted = draining_then_serving

    async def main() -> object:
        pipe = aio.Pipe(address)
        try:
            return await pipe.unary("S", "m", [], CallOptions(timeout=10))
        finally:
            await pipe.close()

    assert asyncio.run(main()) == "answered"
    assert accepted == [0, 1]

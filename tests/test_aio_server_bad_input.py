"""Bad input against gopherpipe_runtime.aio.Server, the rows of the threaded server's
bad-input matrix (test_bad_input_matrix.py) that concern the per-connection protocol:
each gets the answer the RFC prescribes (GOAWAY and its code, a STATUS, a plain close,
or the frame ignored), and a well-behaved client calling meanwhile on its own
connection sees nothing of it."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator

import msgpack
import pytest
from e2e_harness import (
    call_body,
    frames_until_closed,
    host_port,
    next_frame,
    raw_handshake,
)
from test_aio_server import LoopThread, Served

from gopherpipe_runtime import StatusCode
from gopherpipe_runtime.wire.frames import (
    PREFACE,
    FrameDecoder,
    FrameType,
    decode_goaway,
    encode_credit,
    encode_frame,
    encode_stream_frame,
)
from gopherpipe_runtime.wire.handshake import client_hello


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    runner = LoopThread()
    s = Served(runner, frame_timeout=0.3, stream_window=4)
    yield s
    s.stop()
    runner.close()


def goaway(sock: socket.socket, decoder: FrameDecoder) -> tuple[int, str]:
    received = frames_until_closed(sock, decoder)
    assert received and received[-1].type == FrameType.GOAWAY, received
    _, code, message = decode_goaway(received[-1].payload)
    return code, message


def status(sock: socket.socket, decoder: FrameDecoder, stream_id: int) -> tuple[int, str]:
    frame = next_frame(sock, decoder, FrameType.STATUS)
    assert frame.stream_id == stream_id
    code, message, *_ = msgpack.unpackb(frame.payload)
    return code, message


def still_serving(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    sock.sendall(encode_stream_frame(FrameType.CALL, 101, call_body("Lab", "echo", ["ok"])))
    frame = next_frame(sock, decoder, FrameType.STATUS)
    assert msgpack.unpackb(frame.payload)[:3] == [0, "", "ok"]


Attack = Callable[[Served, socket.socket, FrameDecoder], None]


def unknown_frame_type(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    sock.sendall(encode_frame(0x7E, b"whatever"))  # type: ignore[arg-type]
    still_serving(served, sock, decoder)


def frame_for_an_unknown_stream(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    sock.sendall(encode_stream_frame(FrameType.MESSAGE, 77, msgpack.packb([1])))
    sock.sendall(encode_stream_frame(FrameType.CREDIT, 77, struct.pack(">IQ", 1, 1)))
    sock.sendall(encode_stream_frame(FrameType.CANCEL, 79, b""))
    still_serving(served, sock, decoder)


def duplicate_stream_id(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    body = call_body("Lab", "sleep", [30])
    sock.sendall(encode_stream_frame(FrameType.CALL, 1, body) * 2)
    code, message = goaway(sock, decoder)
    assert code == StatusCode.INTERNAL and "already open" in message


def bad_msgpack_call(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    sock.sendall(encode_stream_frame(FrameType.CALL, 1, b"\xc1\xc1\xc1"))
    assert status(sock, decoder, 1)[0] == StatusCode.INVALID_ARGUMENT
    sock.sendall(encode_stream_frame(FrameType.CALL, 3, msgpack.packb({"a": 1})))
    assert status(sock, decoder, 3)[0] == StatusCode.INVALID_ARGUMENT
    still_serving(served, sock, decoder)


def bad_msgpack_message(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    sock.sendall(encode_stream_frame(FrameType.CALL_STREAM, 1, call_body("Lab", "total", [])))
    sock.sendall(encode_stream_frame(FrameType.MESSAGE, 1, b"\xc1"))
    code, message = goaway(sock, decoder)
    assert code == StatusCode.INTERNAL and "malformed MESSAGE" in message


def message_beyond_credit(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    sock.sendall(encode_stream_frame(FrameType.CALL_STREAM, 1, call_body("Lab", "first", [])))
    # The server announced a window of 4 items; the first handler reads one and stops.
    sock.sendall(encode_stream_frame(FrameType.MESSAGE, 1, msgpack.packb(list(range(50)))))
    code, message = goaway(sock, decoder)
    assert code == StatusCode.INTERNAL and "beyond its credit" in message


def credit_never_spent(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    sock.sendall(encode_stream_frame(FrameType.CALL, 1, call_body("Lab", "count", [10**9])))
    next_frame(sock, decoder, FrameType.MESSAGE)
    sock.sendall(encode_credit(1, 10**6, 10**9))
    code, message = goaway(sock, decoder)
    assert code == StatusCode.INTERNAL and "more than was sent" in message


def status_from_a_client(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    sock.sendall(encode_stream_frame(FrameType.STATUS, 1, msgpack.packb([0, "", None])))
    code, message = goaway(sock, decoder)
    assert code == StatusCode.INTERNAL and "STATUS" in message


def truncated_frame(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    sock.sendall(encode_stream_frame(FrameType.CALL, 1, call_body("Lab", "echo", ["x"]))[:-3])
    code, message = goaway(sock, decoder)
    assert code == StatusCode.UNAVAILABLE and "frame_timeout" in message


def oversized_length(served: Served, sock: socket.socket, decoder: FrameDecoder) -> None:
    sock.sendall(struct.pack(">BI", FrameType.CALL, 0xFFFF_FFFF) + b"\x00" * 8)
    code, message = goaway(sock, decoder)
    assert code == StatusCode.INTERNAL and "protocol error" in message


ATTACKS: list[Attack] = [
    unknown_frame_type,
    frame_for_an_unknown_stream,
    duplicate_stream_id,
    bad_msgpack_call,
    bad_msgpack_message,
    message_beyond_credit,
    credit_never_spent,
    status_from_a_client,
    truncated_frame,
    oversized_length,
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.__name__ for a in ATTACKS])
def test_bad_input(served: Served, attack: Attack) -> None:
    with served.client() as bystander:
        assert bystander.echo("before") == "before"
        sock, decoder = raw_handshake(served.address)
        with sock:
            attack(served, sock, decoder)
        assert bystander.echo("after") == "after"
        assert list(bystander.stream("count", 20)) == list(range(20))


@pytest.mark.parametrize(
    ("hello", "code", "words"),
    [
        (client_hello(("nope",), 1 << 20), StatusCode.UNIMPLEMENTED, "codec"),
        (b"\xc1", StatusCode.INTERNAL, "protocol error"),
        (msgpack.packb([1, 2]), StatusCode.INTERNAL, "protocol error"),
    ],
    ids=["no-common-codec", "bad-msgpack", "not-a-map"],
)
def test_a_bad_hello_gets_goaway(served: Served, hello: bytes, code: int, words: str) -> None:
    with socket.create_connection(host_port(served.address), timeout=5) as sock:
        sock.sendall(PREFACE + encode_frame(FrameType.HELLO, hello))
        got_code, message = goaway(sock, FrameDecoder(1 << 20))
    assert got_code == code and words in message


def test_a_call_before_hello_gets_goaway(served: Served) -> None:
    with socket.create_connection(host_port(served.address), timeout=5) as sock:
        sock.sendall(PREFACE + encode_stream_frame(FrameType.CALL, 1, b"\x90"))
        code, message = goaway(sock, FrameDecoder(1 << 20))
    assert code == StatusCode.INTERNAL and "HELLO" in message

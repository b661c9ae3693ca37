"""Per-call limits end to end: metadata size, calls open per connection, decoded size and
nesting depth. Server cases run against a real server in its own process (over a raw
socket where the client must misbehave); client cases against a fake server in this
process that answers however the test says. Each hit gets a clear status naming the
limit, or for a MESSAGE the documented GOAWAY, and the connection (or, after a GOAWAY,
the server) keeps serving. The codec side of the same limits: test_decode_limits.py.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest
from e2e_harness import ServerProcess, generate_stubs, raw_socket
from test_hardening_calls import FakeConnection, answering, fake_server

from gopherpipe_runtime import (
    CallOptions,
    Chan,
    Pipe,
    ResourceExhaustedError,
    StatusCode,
    UnavailableError,
)
from gopherpipe_runtime.wire.codec import CODECS, DEFAULT_MAX_DECODED_SIZE
from gopherpipe_runtime.wire.envelope import encode_call
from gopherpipe_runtime.wire.frames import (
    PREFACE,
    Frame,
    FrameDecoder,
    FrameType,
    decode_goaway,
    encode_frame,
    encode_stream_frame,
)
from gopherpipe_runtime.wire.handshake import client_hello

BOUND = 20.0
MIB = 1024 * 1024
TIGHT = {
    "max_concurrent_streams": 4,
    "max_metadata_size": 256,
    "max_decoded_size": MIB,
    "max_nesting_depth": 10,
}


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_stubs(tmp_path_factory.mktemp("limits"), "e2e_alltypes.py", "e2e_streams.py")


@pytest.fixture(scope="module")
def stubs(stub_dir: Path) -> Iterator[SimpleNamespace]:
    sys.path.insert(0, str(stub_dir))
    try:
        yield SimpleNamespace(
            alltypes=importlib.import_module("e2e_alltypes_client"),
            streams=importlib.import_module("e2e_streams_client"),
            contract=importlib.import_module("e2e_streams"),
        )
    finally:
        sys.path.remove(str(stub_dir))


@pytest.fixture(scope="module")
def server(stub_dir: Path) -> Iterator[ServerProcess]:
    """Every limit at its default."""
    process = ServerProcess(stub_dir)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def tight(stub_dir: Path) -> Iterator[ServerProcess]:
    """Every limit set low through Server(...) options."""
    process = ServerProcess(stub_dir, options=json.dumps(TIGHT))
    yield process
    process.stop()


class Raw:
    """A raw TCP_LITE client: sends hand-made frames, reads what the server answers."""

    def __init__(self, address: str, codec: str = "msgpack") -> None:
        self.codec = CODECS[codec]
        self.sock = raw_socket(address)
        self.sock.settimeout(BOUND)
        self.sock.sendall(PREFACE + encode_frame(FrameType.HELLO, client_hello((codec,), 1 << 20)))
        self.decoder = FrameDecoder(1 << 20)
        self.pending: list[Frame] = []
        assert self.next_frame().type == FrameType.HELLO

    def next_frame(self) -> Frame:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.pending = self.decoder.feed(data)
        return self.pending.pop(0)

    def status(self, stream_id: int) -> tuple[int, str, Any]:
        while True:
            frame = self.next_frame()
            if frame.type == FrameType.STATUS and frame.stream_id == stream_id:
                code, message, result = self.codec.decode(frame.payload)
                return code, message, result

    def call(self, stream_id: int, body: bytes, frame_type: FrameType = FrameType.CALL) -> None:
        self.sock.sendall(encode_stream_frame(frame_type, stream_id, body))

    def add(self, stream_id: int) -> tuple[int, str, Any]:
        """A well-formed call, to show the connection still serves."""
        self.call(stream_id, self.codec.encode(["AllTypes", "add", None, {}, [2, 3]]))
        return self.status(stream_id)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(server: ServerProcess) -> Iterator[Raw]:
    client = Raw(server.address)
    yield client
    client.close()


# -- max_metadata_size -------------------------------------------------------------------


def test_metadata_over_the_limit_fails_the_call_and_the_connection_serves_on(
    server: ServerProcess, stubs: SimpleNamespace
) -> None:
    with Pipe(server.address) as pipe:
        client = stubs.alltypes.AllTypesClient(pipe)
        assert client.with_options(metadata={"user": "ann"}).whoami()["user"] == "ann"
        for metadata in (
            {"blob": "x" * 8200},  # 8 KiB by its bytes
            {f"k{i}": "" for i in range(250)},  # 250 tiny entries: 32 bytes each and more
            {"é": "€" * 2800},  # 8 KiB only in UTF-8
        ):
            with pytest.raises(ResourceExhaustedError) as info:
                client.with_options(metadata=metadata).add(1, 2)
            assert "exceeds the server's limit of 8192 (max_metadata_size" in info.value.message
            assert info.value.message.startswith("AllTypes.add: metadata of ")
        assert client.with_options(metadata={"k": "x" * 8000}).add(1, 2) == 3
        assert client.add(1, 2) == 3
        assert pipe.unary("AllTypes", "add", [4, 5], CallOptions()) == 9


def test_max_metadata_size_is_a_server_option(tight: ServerProcess, stubs: SimpleNamespace) -> None:
    with stubs.alltypes.AllTypesClient.dial(tight.address) as client:
        assert client.with_options(metadata={"k": "x" * 200}).add(1, 2) == 3
        with pytest.raises(ResourceExhaustedError, match=r"limit of 256 \(max_metadata_size"):
            client.with_options(metadata={"k": "x" * 240}).add(1, 2)


# -- max_concurrent_streams ---------------------------------------------------------------


def test_a_call_beyond_max_concurrent_streams_is_refused_at_once(
    tight: ServerProcess, stubs: SimpleNamespace
) -> None:
    limit = TIGHT["max_concurrent_streams"]
    with Pipe(tight.address) as pipe:
        streams = stubs.streams.StreamsClient(pipe)
        alltypes = stubs.alltypes.AllTypesClient(pipe)
        inputs: list[Chan[Any]] = []
        outputs = []
        for _ in range(limit):  # bidi streams that stay open while their input does
            incoming: Chan[Any] = Chan()
            inputs.append(incoming)
            outputs.append(streams.echo("p", incoming))
        inputs[0].send(stubs.contract.Item(1, "x"))
        assert outputs[0].recv(timeout=BOUND).text == "px"  # all four are open
        started = time.monotonic()
        with pytest.raises(ResourceExhaustedError) as info:
            alltypes.add(1, 2)
        assert time.monotonic() - started < BOUND / 2  # refused, not queued behind them
        assert info.value.message == (
            f"this connection has {limit} calls open, the server's limit "
            f"(max_concurrent_streams)"
        )
        refused = streams.echo("q", [])
        with pytest.raises(ResourceExhaustedError, match="max_concurrent_streams"):
            refused.recv(timeout=BOUND)
        inputs[0].close()  # one stream ends (OK once its input is done)...
        assert list(outputs[0]) == []
        assert alltypes.add(1, 2) == 3  # ...and there is room again, on this connection
        for incoming in inputs[1:]:
            incoming.close()
        for output in outputs[1:]:
            assert list(output) == []


def test_other_connections_are_not_counted(tight: ServerProcess, stubs: SimpleNamespace) -> None:
    limit = TIGHT["max_concurrent_streams"]
    with Pipe(tight.address) as busy, Pipe(tight.address) as other:
        inputs: list[Chan[Any]] = [Chan() for _ in range(limit)]
        outputs = [stubs.streams.StreamsClient(busy).echo("p", c) for c in inputs]
        with pytest.raises(ResourceExhaustedError):
            stubs.alltypes.AllTypesClient(busy).add(1, 2)
        assert stubs.alltypes.AllTypesClient(other).add(1, 2) == 3
        for incoming in inputs:
            incoming.close()
        for output in outputs:
            assert list(output) == []


# -- max_decoded_size ---------------------------------------------------------------------


def empty_maps(count: int) -> bytes:
    return b"\xdd" + count.to_bytes(4, "big") + b"\x80" * count


def call_body(args: bytes) -> bytes:
    """A msgpack CALL of AllTypes.add whose args are the given msgpack bytes."""
    return b"\x95" + b"".join(msgpack.packb(v) for v in ("AllTypes", "add", None, {})) + args


def test_a_call_that_decodes_beyond_max_decoded_size_is_refused(raw: Raw) -> None:
    # 1.1 MB on the wire (the frame limit is 4 MiB) would be ~70 MB of dicts.
    raw.call(1, call_body(b"\x91" + empty_maps(1_100_000)))
    code, message, result = raw.status(1)
    assert (code, result) == (StatusCode.RESOURCE_EXHAUSTED, None)
    assert message == (
        f"CALL refused: payload decodes into more than {DEFAULT_MAX_DECODED_SIZE} bytes of "
        f"arrays and maps (max_decoded_size)"
    )
    assert raw.add(3) == (0, "", 5)


def test_a_json_call_that_decodes_beyond_max_decoded_size_is_refused(
    server: ServerProcess,
) -> None:
    raw = Raw(server.address, "json")
    try:
        args = b"[[" + b",".join([b"{}"] * 1_100_000) + b"]]"
        raw.call(1, b'["AllTypes","add",null,{},' + args + b"]")
        code, message, _ = raw.status(1)
        assert code == StatusCode.RESOURCE_EXHAUSTED and "(max_decoded_size)" in message
        assert raw.add(3) == (0, "", 5)
    finally:
        raw.close()


def test_max_decoded_size_is_a_server_option(tight: ServerProcess) -> None:
    raw = Raw(tight.address)
    try:
        raw.call(1, call_body(b"\x91" + empty_maps(20_000)))  # ~1.3 MB of dicts
        code, message, _ = raw.status(1)
        assert code == StatusCode.RESOURCE_EXHAUSTED
        assert f"more than {MIB} bytes" in message and "(max_decoded_size)" in message
        raw.call(3, call_body(b"\x92\x01" + empty_maps(10_000)))  # ~0.65 MB: decoded
        assert raw.status(3)[0] == StatusCode.INVALID_ARGUMENT  # then the stub's check
    finally:
        raw.close()


# -- max_nesting_depth --------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["msgpack", "json"])
def test_a_call_nested_100_000_deep_is_refused_and_the_connection_serves_on(
    server: ServerProcess, codec: str
) -> None:
    raw = Raw(server.address, codec)
    try:
        if codec == "msgpack":
            raw.call(1, call_body(b"\x91" * 100_000 + b"\x90"))
        else:
            deep = b"[" * 100_000 + b"]" * 100_000
            raw.call(1, b'["AllTypes","add",null,{},' + deep + b"]")
        code, message, result = raw.status(1)
        assert (code, result) == (StatusCode.RESOURCE_EXHAUSTED, None)
        assert message.startswith("CALL refused: ") and "(max_nesting_depth" in message
        assert raw.add(3) == (0, "", 5)
    finally:
        raw.close()


def test_max_nesting_depth_is_a_server_option_counting_the_envelope(tight: ServerProcess) -> None:
    raw = Raw(tight.address)
    try:
        # The CALL's array and its args array are 2 of the 10 levels.
        raw.call(1, call_body(b"\x92\x01" + b"\x91" * 7 + b"\x90"))  # 8 levels of argument
        assert raw.status(1)[0] == StatusCode.INVALID_ARGUMENT  # decoded; the stub refuses
        raw.call(3, call_body(b"\x92\x01" + b"\x91" * 8 + b"\x90"))  # 9: one too many
        code, message, _ = raw.status(3)
        assert code == StatusCode.RESOURCE_EXHAUSTED
        assert message == (
            "CALL refused: payload nests arrays and maps more than 10 deep (max_nesting_depth)"
        )
        assert raw.add(5) == (0, "", 5)
    finally:
        raw.close()


# -- a MESSAGE beyond a limit is a protocol error, as a malformed one is -------------------


@pytest.mark.parametrize(
    ("items", "limit"),
    [
        (b"\x91" + b"\x91" * 100_000 + b"\x90", "max_nesting_depth"),
        (b"\x91" + empty_maps(1_100_000), "max_decoded_size"),
    ],
    ids=["deep", "large"],
)
def test_a_message_beyond_a_limit_gets_goaway_and_the_server_serves_on(
    server: ServerProcess, items: bytes, limit: str
) -> None:
    raw = Raw(server.address)
    try:
        raw.call(1, encode_call(raw.codec, "Streams", "total", None, {}, []), FrameType.CALL_STREAM)
        raw.call(1, items, FrameType.MESSAGE)
        frame = raw.next_frame()
        while frame.type != FrameType.GOAWAY:
            frame = raw.next_frame()
        _, code, message = decode_goaway(frame.payload)
        assert code == StatusCode.INTERNAL
        assert message.startswith("protocol error: MESSAGE on stream 1 refused: payload ")
        assert f"({limit})" in message
        with pytest.raises((ConnectionError, OSError)):
            while True:
                raw.next_frame()
    finally:
        raw.close()
    again = Raw(server.address)
    try:
        assert again.add(1) == (0, "", 5)
    finally:
        again.close()


# -- the client: a hostile server's answers ------------------------------------------------


def deep_status(conn: FakeConnection, frame: Frame) -> None:
    method = msgpack.unpackb(frame.payload)[1]
    if method == "deep":
        body = b"\x93\x00\xa0" + b"\x91" * 100_000 + b"\x90"  # [0, "", [[[...]]]]
        conn.sock.sendall(encode_stream_frame(FrameType.STATUS, frame.stream_id, body))
    elif method == "large":
        body = b"\x93\x00\xa0" + empty_maps(200_000)  # ~13 MB of dicts
        conn.sock.sendall(encode_stream_frame(FrameType.STATUS, frame.stream_id, body))
    elif method == "stream":
        items = b"\x91" + b"\x91" * 100_000 + b"\x90"
        conn.sock.sendall(encode_stream_frame(FrameType.MESSAGE, frame.stream_id, items))
    else:
        conn.status(frame.stream_id, 0, "", "fine")


def test_a_client_refuses_an_answer_beyond_its_limits_and_keeps_the_connection() -> None:
    with (
        fake_server(answering(deep_status)) as fake,
        Pipe(fake.address, max_decoded_size=MIB) as pipe,
    ):
        options = CallOptions(timeout=BOUND)
        with pytest.raises(ResourceExhaustedError) as deep:
            pipe.unary("Fake", "deep", [], options)
        assert deep.value.message == (
            "answer refused: payload nests arrays and maps more than 100 deep "
            "(max_nesting_depth)"
        )
        with pytest.raises(ResourceExhaustedError) as large:
            pipe.unary("Fake", "large", [], options)
        assert large.value.message == (
            f"answer refused: payload decodes into more than {MIB} bytes of arrays and maps "
            f"(max_decoded_size)"
        )
        assert pipe.unary("Fake", "plain", [], options) == "fine"
        assert fake.accepted == 1  # all on the first connection


def test_a_client_closes_the_connection_on_a_message_beyond_its_limits() -> None:
    with fake_server(answering(deep_status)) as fake, Pipe(fake.address) as pipe:
        stream = pipe.stream("Fake", "stream", [], CallOptions(timeout=BOUND), decode_item=str)
        with pytest.raises(UnavailableError) as info:
            stream.take_output().recv(timeout=BOUND)
        assert "protocol error from server: MESSAGE refused: payload nests" in info.value.message
        assert "(max_nesting_depth)" in info.value.message
        assert pipe.unary("Fake", "plain", [], CallOptions(timeout=BOUND)) == "fine"  # anew


def test_client_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_nesting_depth"):
        Pipe("tcp://127.0.0.1:1", max_nesting_depth=1)
    with pytest.raises(ValueError, match="max_decoded_size"):
        Pipe("tcp://127.0.0.1:1", max_decoded_size=0)

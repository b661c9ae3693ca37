"""Per-message compression: the codec wrapper, HELLO negotiation, and end to end."""

from __future__ import annotations

import os
import socket
import sys
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest

from gopherpipe_runtime import InvalidArgumentError, Server
from gopherpipe_runtime.address import parse_address
from gopherpipe_runtime.compression import (
    ALGORITHMS,
    MARK,
    CompressingCodec,
    offer_for,
    supported,
    wrap,
)
from gopherpipe_runtime.wire.codec import CODECS, CodecError
from gopherpipe_runtime.wire.frames import (
    PREFACE,
    FrameDecoder,
    FrameType,
    ProtocolError,
    encode_frame,
    encode_stream_frame,
)
from gopherpipe_runtime.wire.handshake import client_accept, client_hello, server_choose

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MIB = 1 << 20
NAMES = sorted(ALGORITHMS)


def codec(name: str, codec_name: str = "msgpack", limit: int = 4 * MIB) -> CompressingCodec:
    wrapped = wrap(CODECS[codec_name], name, 1024, limit, 4 * MIB)
    assert isinstance(wrapped, CompressingCodec)
    return wrapped


def test_zlib_is_always_there_and_zstd_comes_first_when_installed() -> None:
    assert "zlib" in ALGORITHMS
    if "zstd" in ALGORITHMS:
        assert next(iter(ALGORITHMS)) == "zstd"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("codec_name", ["msgpack", "json"])
def test_large_payloads_are_compressed_small_ones_are_not(name: str, codec_name: str) -> None:
    wire = codec(name, codec_name)
    small = ["tiny", 1]
    assert wire.encode(small)[:1] != MARK
    assert wire.decode(wire.encode(small)) == small
    large = ["repetitive " * 2000, list(range(100))]
    body = wire.encode(large)
    assert body[:1] == MARK
    assert len(body) < len(CODECS[codec_name].encode(large)) / 5
    assert wire.decode(body) == large


@pytest.mark.parametrize("name", NAMES)
def test_incompressible_payloads_travel_plain(name: str) -> None:
    noise = os.urandom(8192)
    body = codec(name).encode([noise])
    assert body[:1] != MARK
    assert codec(name).decode(body) == [noise]


def test_a_payload_over_the_peer_limit_is_sent_plain() -> None:
    """Compression never changes what fits: the peer would refuse it once inflated."""
    wire = CompressingCodec(CODECS["msgpack"], ALGORITHMS["zlib"], 1024, 4 * MIB, 64 * 1024)
    body = wire.encode(["a" * 100_000])
    assert body[:1] != MARK


@pytest.mark.parametrize("name", NAMES)
def test_a_bomb_is_refused_without_inflating_it(name: str) -> None:
    huge = msgpack.packb(["a" * (16 * MIB)])
    packed = MARK + ALGORITHMS[name].compress(huge)
    assert len(packed) < 256 * 1024
    with pytest.raises(CodecError, match="inflates beyond"):
        codec(name, limit=4 * MIB).decode(packed)


@pytest.mark.parametrize("name", NAMES)
def test_corrupt_or_truncated_payloads_are_codec_errors(name: str) -> None:
    packed = MARK + ALGORITHMS[name].compress(msgpack.packb(["x" * 5000]))
    for bad in (MARK + b"not compressed at all", packed[: len(packed) // 2]):
        with pytest.raises(CodecError):
            codec(name).decode(bad)


def test_a_plain_codec_reads_a_compressed_payload_as_malformed() -> None:
    packed = MARK + zlib.compress(msgpack.packb(["x"]))
    with pytest.raises(CodecError):
        CODECS["msgpack"].decode(packed)
    assert wrap(CODECS["msgpack"], None, 1024, MIB, MIB) is CODECS["msgpack"]


# -- negotiation -------------------------------------------------------------------------


def test_the_server_picks_the_clients_first_common_choice() -> None:
    hello = client_hello(("msgpack",), MIB, compression=("zstd", "zlib"))
    settings, reply = server_choose(hello, ("msgpack",), MIB, compression=("zlib",))
    assert settings.compression == "zlib"
    assert client_accept(reply, ("msgpack",), ("zstd", "zlib")).compression == "zlib"


def test_no_common_algorithm_means_no_compression() -> None:
    hello = client_hello(("msgpack",), MIB, compression=("zstd",))
    settings, reply = server_choose(hello, ("msgpack",), MIB, compression=("zlib",))
    assert settings.compression is None
    assert client_accept(reply, ("msgpack",), ("zstd",)).compression is None
    settings, _ = server_choose(
        client_hello(("msgpack",), MIB), ("msgpack",), MIB, compression=("zlib",)
    )
    assert settings.compression is None  # a client that offers nothing (or an older one)


def test_a_server_choice_never_offered_is_a_protocol_error() -> None:
    _, reply = server_choose(
        client_hello(("msgpack",), MIB, compression=("zlib",)),
        ("msgpack",),
        MIB,
        compression=("zlib",),
    )
    with pytest.raises(ProtocolError, match="never offered"):
        client_accept(reply, ("msgpack",), ())


def test_a_malformed_offer_is_a_protocol_error() -> None:
    hello = msgpack.packb(
        {"versions": [2], "codecs": ["msgpack"], "max_frame_size": MIB, "compression": "zlib"}
    )
    with pytest.raises(ProtocolError, match="compression"):
        server_choose(hello, ("msgpack",), MIB, compression=("zlib",))


@pytest.mark.parametrize(
    ("address", "offered"),
    [
        ("tcp://127.0.0.1:1", ()),
        ("tcp://[::1]:1", ()),
        ("tcp://localhost:1", ()),
        ("unix:///tmp/x.sock", ()),
        ("tls://10.1.2.3:1", tuple(ALGORITHMS)),
        ("wss://rpc.example.com:443/x", tuple(ALGORITHMS)),
    ],
)
def test_clients_offer_compression_only_off_the_local_host(
    address: str, offered: tuple[str, ...]
) -> None:
    assert offer_for(parse_address(address), "auto") == offered
    assert offer_for(parse_address(address), None) == ()
    assert offer_for(parse_address(address), "zlib") == ("zlib",)


def test_unknown_algorithms_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="brotli"):
        supported(("brotli",), "Pipe")
    with pytest.raises(ValueError, match="brotli"):
        Server("tcp://127.0.0.1:0", compression=("brotli",))


# -- end to end --------------------------------------------------------------------------


def echo_stubs() -> Any:
    sys.path.insert(0, str(EXAMPLES / "echo"))
    try:
        import service as echo_service
        import service_client
        import service_server
    finally:
        sys.path.pop(0)
        for name in ("service", "service_client", "service_server"):
            sys.modules.pop(name, None)
    return echo_service, service_client, service_server


@pytest.fixture(scope="module")
def echo_server() -> Any:
    contract, client_module, server_module = echo_stubs()

    class Echo(contract.EchoService):  # type: ignore[misc]
        def echo(self, text: str) -> str:
            return text

        def repeat(self, text: str, times: int = 2) -> Any:
            return contract.Echoed(text=text * times, times=times)

    server = Server("tcp://127.0.0.1:0", compression=tuple(ALGORITHMS))
    server_module.register_echo_service(server, Echo())
    with server:
        yield server.addresses[0], client_module


@pytest.mark.parametrize("name", NAMES)
def test_calls_round_trip_compressed(echo_server: Any, name: str) -> None:
    address, client_module = echo_server
    with client_module.EchoServiceClient.dial(address, compression=name) as client:
        text = "compress me " * 10_000
        assert client.echo(text) == text
        assert client.repeat("ab" * 1000, times=300).text == "ab" * 300_000
        assert client._gp_pipe._connection.settings.compression == name


def test_loopback_clients_do_not_compress_by_default(echo_server: Any) -> None:
    address, client_module = echo_server
    with client_module.EchoServiceClient.dial(address) as client:
        assert client.echo("x" * 5000) == "x" * 5000
        assert client._gp_pipe._connection.settings.compression is None


def _raw_hello(address: str, compression: tuple[str, ...]) -> tuple[socket.socket, FrameDecoder]:
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    hello = client_hello(("msgpack",), MIB, compression=compression)
    sock.sendall(PREFACE + encode_frame(FrameType.HELLO, hello))
    decoder = FrameDecoder(MIB)
    received: list[Any] = []
    while not received:
        received = decoder.feed(sock.recv(65536))
    assert client_accept(received[0].payload, ("msgpack",), compression).compression
    return sock, decoder


def _status(sock: socket.socket, decoder: FrameDecoder) -> tuple[int, str, Any]:
    while True:
        for frame in decoder.feed(sock.recv(65536)):
            if frame.type == FrameType.STATUS:
                code, message, result = msgpack.unpackb(frame.payload)
                return code, message, result


def test_a_compression_bomb_fails_only_its_call(echo_server: Any) -> None:
    address, _ = echo_server
    sock, decoder = _raw_hello(address, ("zlib",))
    with sock:
        bomb = MARK + zlib.compress(
            msgpack.packb(["EchoService", "echo", None, {}, ["a" * 16 * MIB]])
        )
        sock.sendall(encode_stream_frame(FrameType.CALL, 1, bomb))
        code, message, _ = _status(sock, decoder)
        assert code == InvalidArgumentError().code
        assert "inflates beyond" in message
        # the same connection goes on serving
        call = msgpack.packb(["EchoService", "echo", None, {}, ["fine"]])
        sock.sendall(encode_stream_frame(FrameType.CALL, 3, call))
        assert _status(sock, decoder) == (0, "", "fine")

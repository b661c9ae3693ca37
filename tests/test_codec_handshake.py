"""Codecs round-trip every wire-form value; HELLO negotiation picks and refuses correctly."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest

from gopherpipe_runtime.status import NotFoundError, RpcError, StatusCode
from gopherpipe_runtime.wire.codec import CODECS, CodecError
from gopherpipe_runtime.wire.frames import ProtocolError
from gopherpipe_runtime.wire.handshake import (
    HandshakeError,
    client_accept,
    client_hello,
    server_choose,
)

WIRE_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -(2**63),
    2**64 - 1,
    1.5,
    -0.0,
    "",
    "héllo ✓",
    b"",
    b"\x00\xff" * 10,
    [],
    [1, "a", b"b", None, [2.5]],
    {},
    {"a": 1, "b": [b"x"]},
    {1: "int key", 2: "two"},
    {"$b": "looks like a tag", "$m": []},
    {"k": {"$b": 1}},
    [{True: None}],
]


@pytest.mark.parametrize("codec_name", sorted(CODECS))
@pytest.mark.parametrize("value", WIRE_VALUES, ids=repr)
def test_codecs_round_trip_wire_values(codec_name: str, value: Any) -> None:
    codec = CODECS[codec_name]
    decoded = codec.decode(codec.encode(value))
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize("codec_name", sorted(CODECS))
def test_non_finite_floats_survive(codec_name: str) -> None:
    codec = CODECS[codec_name]
    decoded = codec.decode(codec.encode([math.inf, -math.inf, math.nan]))
    assert decoded[:2] == [math.inf, -math.inf] and math.isnan(decoded[2])


@pytest.mark.parametrize("codec_name", sorted(CODECS))
@pytest.mark.parametrize("garbage", [b"", b"\xc1", b"{not json", b"\x92\x01"])
def test_malformed_payloads_raise_codec_error(codec_name: str, garbage: bytes) -> None:
    with pytest.raises(CodecError):
        CODECS[codec_name].decode(garbage)


def test_msgpack_refuses_ints_beyond_64_bits() -> None:
    with pytest.raises(CodecError):
        CODECS["msgpack"].encode(2**64)


def test_hello_picks_clients_first_common_codec() -> None:
    settings, reply = server_choose(
        client_hello(("json", "msgpack"), 1 << 20), ("msgpack", "json"), 1 << 22
    )
    assert settings.codec == "json" and settings.peer_max_frame_size == 1 << 20
    accepted = client_accept(reply, ("json", "msgpack"))
    assert accepted.codec == "json" and accepted.peer_max_frame_size == 1 << 22


def test_hello_without_common_codec_is_refused() -> None:
    with pytest.raises(HandshakeError, match="no common codec"):
        server_choose(client_hello(("cbor",), 1 << 20), ("msgpack",), 1 << 20)


def test_hello_without_common_version_is_refused() -> None:
    hello = msgpack.packb({"versions": [99], "codecs": ["msgpack"], "max_frame_size": 1 << 20})
    with pytest.raises(HandshakeError, match="no common protocol version"):
        server_choose(hello, ("msgpack",), 1 << 20)


@pytest.mark.parametrize(
    "payload",
    [b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"versions": 1, "codecs": []})],
)
def test_malformed_hello_is_a_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        server_choose(payload, ("msgpack",), 1 << 20)


def test_tiny_max_frame_size_in_hello_is_refused() -> None:
    with pytest.raises(ProtocolError, match="max_frame_size"):
        server_choose(client_hello(("msgpack",), 10), ("msgpack",), 1 << 20)


def test_rpc_error_builds_the_subclass_for_its_code() -> None:
    error = RpcError(StatusCode.NOT_FOUND, "no such room")
    assert isinstance(error, NotFoundError)
    assert error.code is StatusCode.NOT_FOUND and error.message == "no such room"
    assert str(error) == "NOT_FOUND: no such room"
    assert NotFoundError("x").code is StatusCode.NOT_FOUND
    assert [c.value for c in StatusCode] == list(range(17))  # gRPC's numbering

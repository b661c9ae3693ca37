"""GopherPipe's fuzz targets: every decoder that reads bytes or values a peer controls.

Plain Python with no atheris in it, so the same targets run under atheris
(`fuzz_gopherpipe.py`), over a corpus in a test (`replay`), or by hand. One input
drives one target: its first byte picks the target (`TARGETS`), the rest is that
target's input. A target returns normally for input the code refuses the documented
way, and raises `Finding` -- or lets any other exception escape -- for a bug: an
exception type nobody documents, a wrong answer, or a round trip that changes a value.

- ``frames``: `FrameDecoder` fed the bytes in fuzzer-chosen chunks, against a
  ten-line reference decoder: the same frames whole or chunked, `ProtocolError` and
  nothing else, and never more than ``max_frame_size + 5`` bytes held back. GOAWAY and
  CREDIT bodies go through their decoders too.
- ``hello_server`` / ``hello_client``: `server_choose` and `client_accept` on arbitrary
  HELLO payloads: `ProtocolError` or `HandshakeError` only; what they accept is within
  the RFC's ranges, and the server's reply is accepted by a client that sent that HELLO.
- ``call_body``: `decode_call` (and `decode_status_with_trailers`, `decode_headers`) over both codecs: `ProtocolError`
  only; what they accept is well-typed and survives encode -> decode unchanged.
- ``generated``: the converters `gopherpipe gen` writes, for fuzz/contract/ and
  tests/e2e/contract/: every ``_dec_*`` of the client stubs and every argument, result
  and stream-item decoder, fed any value either codec decodes: `InvalidArgumentError`
  only; a value a decoder accepts must encode again, and decode to the same value.
- ``gossip``: GopherMap's `decode_packet` (keyed or not; the fuzzer may have its body
  signed to get past the HMAC) and a `Membership` receiving it: `GossipWireError` only
  from the decoder, nothing at all from `receive` or `merge_push_pull` but ValueError;
  what decodes survives encode -> decode; no datagram sent over 1400 bytes.
"""

from __future__ import annotations

import atexit
import collections.abc
import contextlib
import dataclasses
import enum
import functools
import hashlib
import hmac
import importlib
import math
import os
import reprlib
import shutil
import struct
import subprocess
import sys
import tempfile
import types
import typing
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import msgpack

from gopherpipe_runtime import Chan, InvalidArgumentError, StatusCode
from gopherpipe_runtime.compression import ALGORITHMS, MARK, CompressingCodec
from gopherpipe_runtime.discovery.gossip_wire import (
    HEAD_SIZE,
    MAX_PACKET,
    MAX_PUSH_PULL,
    GossipWireError,
    ReplayGuard,
    assemble_packet,
    decode_packet,
    encode_message,
)
from gopherpipe_runtime.discovery.swim import MemberInfo, Membership, MemberState
from gopherpipe_runtime.flow import DEFAULT_WINDOWS, MAX_WINDOW_BYTES, MAX_WINDOW_ITEMS, Windows
from gopherpipe_runtime.wire.codec import CODECS, Codec, CodecError
from gopherpipe_runtime.wire.envelope import (
    MAX_TIMEOUT_MS,
    decode_call,
    decode_headers,
    decode_status_with_trailers,
    encode_call,
)
from gopherpipe_runtime.wire.frames import (
    HEADER_SIZE,
    MAX_FRAME_LENGTH,
    MAX_HELLO_SIZE,
    STREAM_FRAMES,
    Frame,
    FrameDecoder,
    FrameType,
    ProtocolError,
    decode_credit,
    decode_goaway,
)
from gopherpipe_runtime.wire.handshake import (
    AGENT,
    PROTOCOL_VERSIONS,
    HandshakeError,
    Settings,
    client_accept,
    server_choose,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONTRACTS = (
    HERE / "contract" / "fuzz_types.py",
    ROOT / "tests" / "e2e" / "contract" / "e2e_alltypes.py",
    ROOT / "tests" / "e2e" / "contract" / "e2e_moretypes.py",
    ROOT / "tests" / "e2e" / "contract" / "e2e_streams.py",
)

_brief = reprlib.Repr()
_brief.maxstring = _brief.maxother = 120


class Finding(AssertionError):
    """A target saw the code under test break its contract."""


def check(condition: object, message: str, *values: object) -> None:
    # Not `assert`: the harness must keep checking under `python -O`.
    if not condition:
        raise Finding(" ".join([message, *(_brief.repr(v) for v in values)]))


# -- structured inputs ---------------------------------------------------------------------
#
# Raw bytes rarely decode to a value of the right shape, so the targets that take a
# msgpack body also have a structured mode: the input is read as a recipe (`Recipe`) for
# a msgpack body that is always well-formed -- a map of HELLO keys, a 5-item CALL, a
# record of a contract type's size -- with the edge values that break decoders close at
# hand: 2.0 for 2, 64-bit extremes, NaN and -0.0, "sNaN", near-canonical dates, nesting
# up to msgpack's own depth limit.

_EDGE_INTS = (0, 1, 2, -1, 7, 10, 200, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1, -(2**63))
_EDGE_FLOATS = (0.0, -0.0, 1.0, 2.0, 1.5, math.nan, math.inf, -math.inf, 1e308, 5e-324)
TOKENS: list[str] = [
    *("versions", "codecs", "max_frame_size", "stream_window", "stream_window_bytes"),
    *("connection_window_bytes", "agent", "version", "codec", "compression", "msgpack"),
    *("json", "zlib", "zstd", "$b", "$m"),
    *("sNaN", "NaN", "-Infinity", "Infinity", "-0", "1E+3", "19.990", "1e3", "0.00", "-sNaN"),
    *("2024-02-29", "2024-1-1", "0001-01-01", "9999-12-31", "2024-02-29T23:59:58"),
    *("2024-02-29T23:59:58.123456+05:30", "2024-02-29T23:59:58Z", "12:30:00.000005"),
    *("23:59:59+00:00", "24:00:00", "12345678-1234-5678-1234-567812345678"),
    *("12345678-1234-5678-1234-56781234567G", "{12345678-1234-5678-1234-567812345678}"),
    *("", "a", "b", "x", "Svc", "method"),
]
"""Strings decoders look for; `setup` adds every enum value, Literal and TypedDict key
of the generated stubs."""


class Recipe:
    """Reads an input as choices; past its end every choice is 0."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def byte(self) -> int:
        if self.position >= len(self.data):
            return 0
        self.position += 1
        return self.data[self.position - 1]

    def take(self, count: int) -> bytes:
        chunk = self.data[self.position : self.position + count]
        self.position += len(chunk)
        return chunk

    def scalar(self) -> Any:
        op = self.byte() % 10
        if op == 0:
            return None
        if op == 1:
            return bool(self.byte() & 1)
        if op == 2:
            return self.byte() - 128
        if op == 3:
            number = _EDGE_INTS[self.byte() % len(_EDGE_INTS)]
            return -number if self.byte() & 1 and number <= 2**63 else number
        if op == 4:
            return _EDGE_FLOATS[self.byte() % len(_EDGE_FLOATS)]
        if op == 5:
            return struct.unpack(">d", self.take(8).ljust(8, b"\0"))[0]
        if op in (6, 7):
            return TOKENS[(self.byte() << 8 | self.byte()) % len(TOKENS)]
        if op == 8:
            return self.take(self.byte() % 24).decode("utf-8", "replace")
        return self.take(self.byte() % 24)

    def value(self, out: bytearray, depth: int = 0) -> None:
        """Append one msgpack value to `out`."""
        op = self.byte() % 8
        if depth > 6 or op < 4:
            out += msgpack.packb(self.scalar())
        elif op in (4, 5):
            self.array(out, self.byte() % 6, depth)
        elif op == 6:
            count = self.byte() % 5
            out += _map_header(count)
            for _ in range(count):
                out += msgpack.packb(self.scalar())
                self.value(out, depth + 1)
        else:
            # Deep nesting, up to (and past) what the msgpack reader accepts.
            out += b"\x91" * (self.byte() * 5)
            self.value(out, depth + 1)

    def array(self, out: bytearray, count: int, depth: int = 0) -> None:
        out += _array_header(count)
        for _ in range(count):
            self.value(out, depth + 1)

    def body(self) -> bytes:
        out = bytearray()
        self.value(out)
        return bytes(out)


def _array_header(count: int) -> bytes:
    return bytes([0x90 | count]) if count < 16 else b"\xdc" + struct.pack(">H", count)


def _map_header(count: int) -> bytes:
    return bytes([0x80 | count]) if count < 16 else b"\xde" + struct.pack(">H", count)


# A typed recipe: a wire value of a contract type (the return type of a decoder), each
# leaf picked from values of its own type that decoders find hard (an eighth of the time
# a near miss of its spelling) -- and, one time in 64, something of another type.

_STDLIB_TOKENS: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # (canonical spellings, near misses the decoder must refuse)
    Decimal: (
        ("sNaN", "-sNaN", "NaN", "-Infinity", "-0", "1E+3", "0.00", "19.990", "1.0", "1"),
        ("1e3", "nan", "1_000", " 1", "Inf"),
    ),
    datetime: (
        (
            "2024-02-29T23:59:58.123456+05:30",
            "2024-02-29T18:29:58.123456+00:00",
            "2024-02-29T23:59:58",
            "0001-01-01T00:00:00-23:59",
            "9999-12-31T23:59:59.999999+23:59:59.999999",
        ),
        ("2024-02-29T23:59:58Z", "2024-02-29 23:59:58", "2024-02-29T23:59:58.000000"),
    ),
    date: (("2024-02-29", "0001-01-01", "9999-12-31"), ("2024-1-1", "2023-02-29", "20240229")),
    time: (("00:00:00", "23:59:59.999999+23:59", "12:30:00.000005"), ("24:00:00", "12:30")),
    UUID: (
        ("12345678-1234-5678-1234-567812345678", "00000000-0000-0000-0000-000000000000"),
        ("12345678-1234-5678-1234-56781234567A", "{12345678-1234-5678-1234-567812345678}"),
    ),
}
_TIMEDELTA_PARTS = (
    (0, 1, -1, 999999999, -999999999),
    (0, 1, 86399),
    (0, 1, 999999),
    (-1, 86400, 1000000, 10**9),  # out of range for seconds or microseconds
)


@functools.cache
def _hints(record: type) -> dict[str, Any]:
    return typing.get_type_hints(record)


def typed_wire(recipe: Recipe, tp: Any, depth: int = 0) -> Any:
    """A wire value of contract type `tp`, read from `recipe`."""
    if recipe.byte() < 4 or depth > 12:
        return recipe.scalar()
    supertype = getattr(tp, "__supertype__", None)  # a NewType
    if supertype is not None:
        return typed_wire(recipe, supertype, depth)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is None or tp is type(None):
        return None
    if tp is bool:
        return bool(recipe.byte() & 1)
    if tp is int:
        number = _EDGE_INTS[recipe.byte() % len(_EDGE_INTS)]
        return -number if recipe.byte() & 1 and number <= 2**63 else number
    if tp is float:
        return _EDGE_FLOATS[recipe.byte() % len(_EDGE_FLOATS)]
    if tp is str:
        return TOKENS[recipe.byte() % len(TOKENS)]
    if tp is bytes:
        return recipe.take(recipe.byte() % 8)
    odd = recipe.byte() < 32
    if tp in _STDLIB_TOKENS:
        choices = _STDLIB_TOKENS[tp][odd]
        return choices[recipe.byte() % len(choices)]
    if tp is timedelta:
        parts = [_TIMEDELTA_PARTS[3 if odd and i else i] for i in range(3)]
        return [part[recipe.byte() % len(part)] for part in parts]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        members = list(tp)
        return members[recipe.byte() % len(members)].value
    if origin is typing.Literal:
        return args[recipe.byte() % len(args)]
    if origin is typing.Union or origin is types.UnionType:
        return typed_wire(recipe, args[recipe.byte() % len(args)], depth + 1)
    if origin in (list, set, frozenset, collections.abc.Sequence) or (
        origin is tuple and len(args) == 2 and args[1] is Ellipsis
    ):
        return [typed_wire(recipe, args[0], depth + 1) for _ in range(recipe.byte() % 5)]
    if origin is tuple:
        return [typed_wire(recipe, arg, depth + 1) for arg in args]
    if origin in (dict, collections.abc.Mapping):
        entries = [
            (typed_wire(recipe, args[0], depth + 1), typed_wire(recipe, args[1], depth + 1))
            for _ in range(recipe.byte() % 5)
        ]
        if type(entries[0][0] if entries else None) is list:  # array-form keys: pairs
            return [list(entry) for entry in entries]
        try:
            return dict(entries)
        except TypeError:
            return [list(entry) for entry in entries]
    record = origin or tp
    if not isinstance(record, type):
        return recipe.scalar()
    bindings = dict(zip(getattr(record, "__parameters__", ()), args, strict=False))
    fields = {name: bindings.get(hint, hint) for name, hint in _hints(record).items()}
    if typing.is_typeddict(record):
        return {
            name: typed_wire(recipe, hint, depth + 1)
            for name, hint in fields.items()
            if name in record.__required_keys__ or recipe.byte() & 1
        }
    values = [typed_wire(recipe, hint, depth + 1) for hint in fields.values()]
    return values[: len(values) - recipe.byte() % 3] if recipe.byte() < 32 else values


def hello_recipe(recipe: Recipe) -> bytes:
    """A HELLO map: mostly the RFC's keys, values anything."""
    count = recipe.byte() % 10
    out = bytearray(_map_header(count))
    for _ in range(count):
        pick = recipe.byte()
        out += msgpack.packb(TOKENS[pick % 10] if pick < 230 else recipe.scalar())
        if recipe.byte() < 128:
            recipe.array(out, recipe.byte() % 4, 6)  # lists of scalars: versions, codecs
        else:
            recipe.value(out)
    return bytes(out)


# -- frames ----------------------------------------------------------------------------

_LIMITS = (0, 1, 4, 5, 9, 16, 64, 1000, MAX_HELLO_SIZE, 0xFFFF, MAX_FRAME_LENGTH)
_HEAD = struct.Struct(">BI")
_ID = struct.Struct(">I")


def reference_frames(data: bytes, limit: int) -> tuple[list[Frame], bool, int]:
    """RFC §4 read straight: (frames, whether the stream is an error, bytes left over)."""
    frames: list[Frame] = []
    position = 0
    while len(data) - position >= HEADER_SIZE:
        kind, length = _HEAD.unpack_from(data, position)
        if length > limit:
            return frames, True, 0
        body = data[position + HEADER_SIZE : position + HEADER_SIZE + length]
        if len(body) < length:
            break
        if kind in STREAM_FRAMES:
            if length < 4 or _ID.unpack_from(body)[0] == 0:
                return frames, True, 0
            frames.append(Frame(kind, _ID.unpack_from(body)[0], body[4:]))
        else:
            frames.append(Frame(kind, 0, body))
        position += HEADER_SIZE + length
    return frames, False, len(data) - position


def chunks(data: bytes, sizes: bytes) -> Iterable[bytes]:
    """`data` cut into pieces of the sizes in `sizes`, cycled (0: an empty piece)."""
    if not sizes:
        yield data
        return
    position = 0
    turn = 0
    while position < len(data):
        size = sizes[turn % len(sizes)]
        turn += 1
        yield data[position : position + size]
        position += size
        if turn > 4 * len(data) + 8:  # only empty pieces: feed the rest whole
            yield data[position:]
            return


def fuzz_frames(data: bytes) -> None:
    """data: [limit and mode] [n] [n chunk sizes] [stream]."""
    if len(data) < 2:
        return
    mode, count = data[0], data[1] % 8
    limit = _LIMITS[mode % len(_LIMITS)]
    as_bytearray = bool(mode & 0x80)
    sizes, stream = data[2 : 2 + count], data[2 + count :]
    expected, error, left = reference_frames(stream, limit)

    whole = FrameDecoder(limit)
    try:
        got = whole.feed(stream)
    except ProtocolError:
        check(error, "whole: ProtocolError on a valid stream", stream)
    else:
        check(not error, "whole: no ProtocolError on an invalid stream", stream)
        check(got == expected, "whole: frames differ from the reference", got, expected)
        check(whole.buffered == left, "whole: holds back", whole.buffered, "bytes, not", left)

    decoder = FrameDecoder(limit)
    received: list[Frame] = []
    try:
        for piece in chunks(stream, sizes):
            received += decoder.feed(bytearray(piece) if as_bytearray else piece)
            check(
                decoder.buffered < HEADER_SIZE + max(limit, 0),
                "chunked: holds back more than a frame",
                decoder.buffered,
            )
    except ProtocolError:
        check(error, "chunked: ProtocolError on a valid stream", stream, sizes)
        check(received == expected[: len(received)], "chunked: frames before the error differ")
    else:
        check(not error, "chunked: no ProtocolError on an invalid stream", stream, sizes)
        check(received == expected, "chunked: frames differ", received, expected, sizes)
        check(decoder.buffered == left, "chunked: holds back", decoder.buffered, "not", left)
    for frame in received:
        for frame_type, decode in (
            (FrameType.GOAWAY, decode_goaway),
            (FrameType.CREDIT, decode_credit),
        ):
            if frame.type == frame_type:
                with contextlib.suppress(ProtocolError):
                    decode(frame.payload)


# -- handshake -------------------------------------------------------------------------

_CODEC_CHOICES = (("msgpack", "json"), ("msgpack",), ("json",), ("json", "msgpack"))
_COMPRESSION_CHOICES = ((), tuple(ALGORITHMS), ("zlib",), tuple(reversed(ALGORITHMS)))
_WINDOW_CHOICES = (
    DEFAULT_WINDOWS,
    Windows(1, 1, 1),
    Windows(MAX_WINDOW_ITEMS, 7, MAX_WINDOW_BYTES),
)


def check_settings(
    settings: Settings, codecs: tuple[str, ...], compression: tuple[str, ...]
) -> None:
    check(
        settings.compression is None or settings.compression in compression,
        "compression never offered:",
        settings.compression,
    )
    check(
        settings.compression is None or type(settings.compression) is str,
        "compression is not a str:",
        settings.compression,
    )
    check(type(settings.version) is int, "version is not an int:", settings.version)
    check(settings.version in PROTOCOL_VERSIONS, "version never offered:", settings.version)
    check(type(settings.codec) is str, "codec is not a str:", settings.codec)
    check(settings.codec in codecs, "codec never offered:", settings.codec)
    size = settings.peer_max_frame_size
    check(type(size) is int, "max_frame_size is not an int:", size)
    check(MAX_HELLO_SIZE <= size <= MAX_FRAME_LENGTH, "max_frame_size out of range:", size)
    check(type(settings.peer_agent) is str, "agent is not a str:", settings.peer_agent)
    windows = settings.peer_windows
    for value, most in (
        (windows.items, MAX_WINDOW_ITEMS),
        (windows.stream_bytes, MAX_WINDOW_BYTES),
        (windows.connection_bytes, MAX_WINDOW_BYTES),
    ):
        check(type(value) is int and 1 <= value <= most, "window out of range:", windows)


def fuzz_hello_server(data: bytes) -> None:
    """data: [choices] [client HELLO payload, or its recipe]."""
    if not data:
        return
    codecs = _CODEC_CHOICES[data[0] % len(_CODEC_CHOICES)]
    windows = _WINDOW_CHOICES[(data[0] >> 2) % len(_WINDOW_CHOICES)]
    compression = _COMPRESSION_CHOICES[(data[0] >> 4) % len(_COMPRESSION_CHOICES)]
    ours = MAX_HELLO_SIZE if data[0] & 0x80 else 4 * 1024 * 1024
    payload = hello_recipe(Recipe(data[1:])) if data[0] & 0x40 else data[1:]
    try:
        settings, reply = server_choose(payload, codecs, ours, windows, compression)
    except (ProtocolError, HandshakeError):
        return
    check_settings(settings, codecs, compression)
    # The client that sent this HELLO must accept the reply, and read back our side.
    hello = msgpack.unpackb(payload, raw=False)
    offered = tuple(c for c in hello["codecs"] if type(c) is str)
    offered_compression = tuple(c for c in hello.get("compression", []) if type(c) is str)
    client = client_accept(reply, offered, offered_compression)
    check(client.version == settings.version, "reply: version", client.version)
    check(client.codec == settings.codec, "reply: codec", client.codec)
    check(client.compression == settings.compression, "reply: compression", client)
    check(client.peer_max_frame_size == ours, "reply: max_frame_size", client)
    check(client.peer_windows == windows, "reply: windows", client.peer_windows)
    check(client.peer_agent == AGENT, "reply: agent", client.peer_agent)


def fuzz_hello_client(data: bytes) -> None:
    """data: [choices] [server HELLO payload, or its recipe]."""
    if not data:
        return
    codecs = _CODEC_CHOICES[data[0] % len(_CODEC_CHOICES)]
    compression = _COMPRESSION_CHOICES[(data[0] >> 4) % len(_COMPRESSION_CHOICES)]
    payload = hello_recipe(Recipe(data[1:])) if data[0] & 0x40 else data[1:]
    try:
        settings = client_accept(payload, codecs, compression)
    except (ProtocolError, HandshakeError):
        return
    check_settings(settings, codecs, compression)


# -- CALL and STATUS bodies -------------------------------------------------------------


def _is_str_map(value: Any) -> bool:
    return type(value) is dict and all(type(k) is str and type(v) is str for k, v in value.items())


def fuzz_call_body(data: bytes) -> None:
    """data: [codec, CALL or STATUS, raw or recipe, compression] [body, or its recipe]."""
    if not data:
        return
    codec: Codec = CODECS["json" if data[0] & 1 else "msgpack"]
    payload = data[1:]
    if data[0] & 4:  # a msgpack array of 3 to 7 items, with a JSON twin
        recipe = Recipe(payload)
        out = bytearray()
        recipe.array(out, 3 + recipe.byte() % 5)
        payload = bytes(out)
        if codec.name == "json":
            try:
                payload = codec.encode(CODECS["msgpack"].decode(payload))
            except CodecError:
                return
    if data[0] & 8:  # over a connection that negotiated compression
        algorithm = list(ALGORITHMS.values())[(data[0] >> 4) % len(ALGORITHMS)]
        codec = CompressingCodec(codec, algorithm, 0, 1 << 16, 1 << 16)
        if data[0] & 4:
            payload = MARK + algorithm.compress(payload)
    if data[0] & 2:
        try:
            headers = decode_headers(codec, payload)
        except ProtocolError:
            pass
        else:
            check(_is_str_map(headers), "HEADERS", headers)
        try:
            code, message, _, trailers = decode_status_with_trailers(codec, payload)
        except ProtocolError:
            return
        check(type(code) is StatusCode, "STATUS code is not a StatusCode:", code)
        check(type(message) is str, "STATUS message", message)
        check(trailers is None or _is_str_map(trailers), "STATUS trailers", trailers)
        return
    try:
        header = decode_call(codec, payload)
    except ProtocolError:
        return
    check(type(header.service) is str and type(header.method) is str, "CALL names", header)
    timeout = header.timeout_ms
    check(
        timeout is None or (type(timeout) is int and 0 <= timeout <= MAX_TIMEOUT_MS),
        "CALL timeout_ms",
        timeout,
    )
    check(type(header.metadata) is dict, "CALL metadata", header.metadata)
    for key, value in header.metadata.items():
        check(type(key) is str and type(value) is str, "CALL metadata item", key, value)
    # What was accepted travels again unchanged (after one pass: a codec may have
    # normalised a float32 or a duplicate key).
    once = encode_call(codec, *header)
    again = decode_call(codec, once)
    check(encode_call(codec, *again) == once, "CALL changes when re-encoded", header)


# -- compressed payloads -----------------------------------------------------------------

_INFLATE_LIMITS = (0, 1, 100, 4096, 1 << 16)


def fuzz_inflate(data: bytes) -> None:
    """data: [algorithm and limit] [a compressed stream]: `Algorithm.inflate` directly."""
    if not data:
        return
    algorithm = list(ALGORITHMS.values())[data[0] % len(ALGORITHMS)]
    limit = _INFLATE_LIMITS[(data[0] >> 2) % len(_INFLATE_LIMITS)]
    stream = data[1:]
    if data[0] & 0x80:  # a valid stream of what follows, repeated up to 64 times
        repeat = 1 + stream[0] % 64 if stream else 1
        stream = algorithm.compress(stream[1:] * repeat)
    try:
        out = algorithm.inflate(stream, limit)
    except CodecError:
        return
    check(type(out) is bytes, "inflate returned", type(out))
    check(len(out) <= limit, f"{algorithm.name}: inflated {len(out)} bytes over a limit of", limit)
    check(
        algorithm.inflate(algorithm.compress(out), limit) == out,
        f"{algorithm.name}: compress -> inflate changed",
        out,
    )


# -- GopherMap gossip ------------------------------------------------------------------------

_GOSSIP_KEY = b"fuzz-gossip-key"
_GOSSIP_NOW = 1_000_000.0


def _gossip_member(key: bytes | None) -> Membership:
    m = Membership("fuzz", "10.0.0.1:7946", now=_GOSSIP_NOW, key=key)
    m.preload(
        [MemberInfo(f"m{i}", f"10.0.0.{i + 2}:7946", 0, MemberState.ALIVE, {}) for i in range(4)],
        _GOSSIP_NOW,
    )
    return m


def fuzz_gossip(data: bytes) -> None:
    """data: [mode] [a gossip packet]: `decode_packet`, then `Membership.receive`.

    mode bit 0: keyed; bit 1 (keyed only): sign what follows as the body, so that the
    fuzzer gets past the HMAC to the parser; bit 2: a push-pull state's size limit.
    """
    if not data:
        return
    mode, packet = data[0], data[1:]
    key = _GOSSIP_KEY if mode & 1 else None
    if key is not None and mode & 2:
        packet = packet[HEAD_SIZE:] if packet.startswith(b"GM\x01") else packet
        packet = b"GM\x01\x01" + struct.pack(">q8s", int(_GOSSIP_NOW * 1000), b"n" * 8) + packet
        packet += hmac.new(key, packet, hashlib.sha256).digest()
    limit = MAX_PUSH_PULL if mode & 4 else MAX_PACKET
    try:
        messages = decode_packet(
            packet, key=key, now=_GOSSIP_NOW, guard=ReplayGuard(), max_size=limit
        )
    except GossipWireError:
        messages = None
    if messages is not None:
        again = assemble_packet([encode_message(m) for m in messages])
        check(
            decode_packet(again, max_size=MAX_PUSH_PULL) == messages,
            "gossip encode -> decode changed",
            messages,
        )
    member = _gossip_member(key)
    if limit == MAX_PACKET:
        member.receive(packet, "10.0.0.9:7946", _GOSSIP_NOW)
        member.tick(member.next_deadline())
    else:
        with contextlib.suppress(ValueError):
            member.merge_push_pull(packet, _GOSSIP_NOW)
    for _dest, out in member.take_outgoing():
        check(len(out) <= MAX_PACKET, "a datagram over the limit", len(out))


# -- generated converters ----------------------------------------------------------------

Converter = Callable[[object, str], Any]
_converters: list[tuple[str, Converter, Converter | None, Any]] = []
"""(label, decoder, its encoder if any, the contract type it decodes)."""
_stub_dir: str | None = None


def _one_arg(function: Callable[[Any], Any]) -> Converter:
    return lambda value, path: function(value)


def _remove_stub_dir() -> None:
    if _stub_dir is not None:
        shutil.rmtree(_stub_dir, ignore_errors=True)


def setup(in_process: bool = False, stub_dir: Path | None = None) -> None:
    """Generate stubs for `CONTRACTS` and collect their converters.

    Into `stub_dir` (emptied first) if given, else a temporary folder removed at exit
    (atheris leaves through libFuzzer's exit(), which runs no atexit: the harness gives a
    folder of its own). In a child process unless `in_process` (tests): under atheris
    everything imported while the harness starts is instrumented, and the generator
    need not be."""
    global _stub_dir
    if _converters:
        return
    if stub_dir is None:
        _stub_dir = tempfile.mkdtemp(prefix="gopherpipe-fuzz-")
        atexit.register(_remove_stub_dir)
    else:
        shutil.rmtree(stub_dir, ignore_errors=True)
        stub_dir.mkdir(parents=True)
        _stub_dir = str(stub_dir)
    for contract in CONTRACTS:
        shutil.copy(contract, _stub_dir)
    copies = [Path(_stub_dir) / contract.name for contract in CONTRACTS]
    if in_process:
        from gopherpipe_gen.cli import generate

        for output in generate(copies, None):
            output.path.write_text(output.text, encoding="utf-8")
    else:
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        subprocess.run(
            [sys.executable, "-m", "gopherpipe_gen", "gen", *map(str, copies)],
            env={**os.environ, "PYTHONPATH": path},
            check=True,
            capture_output=True,
        )
    # Imported under their own names; set aside any modules of the same names (another
    # test's stubs for the e2e contracts) meanwhile, and put them back after.
    ours = [f"{c.stem}{suffix}" for c in CONTRACTS for suffix in ("", "_client", "_server")]
    theirs = {name: sys.modules.pop(name) for name in ours if name in sys.modules}
    sys.path.insert(0, _stub_dir)
    try:
        _collect()
    finally:
        if in_process:
            sys.path.remove(_stub_dir)
            for name in ours:
                sys.modules.pop(name, None)
            sys.modules.update(theirs)


def _returns(function: Callable[..., Any]) -> Any:
    """What a generated decoder returns: the contract type of the value it reads."""
    try:
        return typing.get_type_hints(function)["return"]
    except Exception:  # an annotation this process cannot resolve: no typed recipe
        return None


def _argument_types(contract: Any) -> dict[str, Any]:
    """Server argument decoder name -> the tuple type of the arguments on the wire (the
    method's parameters, but for a Chan, which is the stream and not an argument)."""
    found = {}
    for service in vars(contract).values():
        if not isinstance(service, type) or not getattr(service, "__abstractmethods__", ()):
            continue
        for method in service.__abstractmethods__:
            hints = typing.get_type_hints(getattr(service, method))
            hints.pop("return", None)
            wire = [h for h in hints.values() if typing.get_origin(h) is not Chan]
            found[f"_{service.__name__}_{method}_args"] = tuple.__class_getitem__(tuple(wire))
    return found


def _collect() -> None:
    found: dict[str, tuple[Converter, Converter | None, Any]] = {}

    def add(
        label: str,
        decode: Callable[..., Any],
        encode: Callable[..., Any] | None,
        one: bool = True,  # (value), not (value, path)
    ) -> None:
        found[label] = (
            _one_arg(decode) if one else decode,
            encode and (_one_arg(encode) if one else encode),
            _returns(decode),
        )

    for contract in CONTRACTS:
        client = importlib.import_module(f"{contract.stem}_client")
        server = importlib.import_module(f"{contract.stem}_server")
        arguments = _argument_types(importlib.import_module(contract.stem))
        names = vars(client)
        for name, function in sorted(names.items()):
            if name.startswith("_dec_") and callable(function):
                add(f"{contract.stem}.{name}", function, names.get("_enc_" + name[5:]), False)
        for table_name, table in names.items():
            if table_name.endswith(("_by_value", "_values", "_dec_keys")):
                for key in table:
                    token = key[1] if table_name.endswith("_values") else key
                    if type(token) is str and token not in TOKENS:
                        TOKENS.append(token)
        server_names = vars(server)
        for name, function in sorted(server_names.items()):
            if not callable(function) or not name.startswith("_"):
                continue
            label = f"{contract.stem}.server.{name}"
            if name.endswith("_args"):
                add(label, function, None)
                found[label] = (*found[label][:2], arguments.get(name))
            elif name.endswith("_item_in"):  # what the server reads; the client writes it
                add(label, function, names.get(name[: -len("_in")] + "_out"))
        for name, function in sorted(names.items()):
            if not callable(function):
                continue
            label = f"{contract.stem}.client.{name}"
            if name.endswith("_result"):
                add(label, function, server_names.get(name))
            elif name.endswith("_item_in"):
                add(label, function, server_names.get(name[: -len("_in")] + "_out"))
    _converters.extend((name, *entry) for name, entry in sorted(found.items()))


def converter_names() -> list[str]:
    setup()
    return [entry[0] for entry in _converters]


def fuzz_generated(data: bytes) -> None:
    """data: [converter] [codec, raw or recipe or typed recipe] [the wire value: a codec
    payload, or a recipe for a msgpack one, or for a value of the converter's type]."""
    if len(data) < 2:
        return
    setup()
    name, decode, encode, wire_type = _converters[data[0] % len(_converters)]
    codec = CODECS["json" if data[1] & 1 else "msgpack"]
    payload = data[2:]
    if data[1] & 4:  # a value of the converter's type, through either codec
        try:
            payload = codec.encode(typed_wire(Recipe(payload), wire_type))
        except CodecError:
            return
    elif data[1] & 2:
        codec = CODECS["msgpack"]
        payload = Recipe(payload).body()
    try:
        wire = codec.decode(payload)
    except CodecError:
        return
    try:
        value = decode(wire, "value")
    except InvalidArgumentError:
        return
    if encode is None:
        return
    # Accepted: it must go back on the wire and come back the same.
    try:
        back = encode(value, "value")
    except InvalidArgumentError as exc:
        raise Finding(f"{name}: decoded {_brief.repr(value)} but cannot encode it: {exc}") from None
    try:
        again = decode(codec.decode(codec.encode(back)), "value")
    except (CodecError, InvalidArgumentError) as exc:
        raise Finding(f"{name}: {_brief.repr(value)} does not round-trip: {exc}") from None
    check(same(value, again), f"{name}: round trip changed", value, again)


def same(a: object, b: object) -> bool:
    """Equal and of the same type all the way down; NaN is the same as NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, datetime | date | time):
        return a.isoformat() == b.isoformat()  # type: ignore[attr-defined]
    if isinstance(a, enum.Enum):
        return a is b
    if dataclasses.is_dataclass(a):
        fields = [f.name for f in dataclasses.fields(a)]
        return all(same(getattr(a, f), getattr(b, f)) for f in fields)
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, set | frozenset):
        assert isinstance(b, set | frozenset)
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return len(a) == len(b) and all(
            any(same(k, j) and same(v, w) for j, w in b.items()) for k, v in a.items()
        )
    return a == b


# -- dispatch ---------------------------------------------------------------------------

TARGETS: tuple[tuple[str, Callable[[bytes], None]], ...] = (
    ("frames", fuzz_frames),
    ("hello_server", fuzz_hello_server),
    ("hello_client", fuzz_hello_client),
    ("call_body", fuzz_call_body),
    ("generated", fuzz_generated),
    ("inflate", fuzz_inflate),
    ("gossip", fuzz_gossip),
)
TARGET_NAMES = tuple(name for name, _ in TARGETS)


def dispatch(data: bytes) -> None:
    """One fuzz input: its first byte picks the target, the rest is the target's."""
    if data:
        TARGETS[data[0] % len(TARGETS)][1](data[1:])


def replay(paths: Iterable[Path]) -> int:
    """Run `dispatch` over files (a crash reproducer, or a corpus); the count run."""
    count = 0
    for path in paths:
        dispatch(path.read_bytes())
        count += 1
    return count

"""Properties of the decoders that read what a peer sends, checked with hypothesis.

- frames: any split of a valid byte stream gives the frames that feeding it whole
  gives; arbitrary bytes, in any chunks, raise nothing but `ProtocolError`, agree with
  the whole-stream result, and the decoder never holds back a frame's worth
  (`max_frame_size + 5` bytes) or more;
- HELLO: arbitrary bytes and arbitrary msgpack maps raise only `ProtocolError` or
  `HandshakeError` on either side; what is accepted is within the RFC's ranges; a valid
  client HELLO and the server's reply round-trip what each side offered (codec, frame
  size, windows, compression);
- CALL bodies: arbitrary bytes and arbitrary values of either codec raise only
  `ProtocolError`; valid CALLs round-trip;
- the fuzz harness (fuzz/targets.py) runs its seed corpus without a finding, and the
  bugs that fuzzing found stay fixed (the `test_found_*` tests).

Deterministic in CI: every property runs with ``derandomize=True`` (the examples come
from a seed derived from the test itself, so every run and every machine tries the
same ones, and a failure seen once is seen again) and ``database=None`` (no
.hypothesis/ folder: a run's outcome never depends on what an earlier run stored).
Random exploration is the fuzzer's job (`make fuzz`), not the test suite's.
``deadline=None``: the machine is shared, and a slow example is not a failure here.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gopherpipe_runtime.convert import bad_enum, dec_uuid
from gopherpipe_runtime.flow import MAX_WINDOW_BYTES, MAX_WINDOW_ITEMS, Windows
from gopherpipe_runtime.status import InvalidArgumentError, StatusCode
from gopherpipe_runtime.wire.codec import CODECS, CodecError
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
    ProtocolError,
)
from gopherpipe_runtime.wire.handshake import (
    AGENT,
    PROTOCOL_VERSIONS,
    HandshakeError,
    Settings,
    client_accept,
    client_hello,
    server_choose,
)

ROOT = Path(__file__).resolve().parent.parent

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- strategies ---------------------------------------------------------------------------

wire_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=12)
)
wire_values = st.recursive(
    wire_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6) | st.integers(-5, 5), inner, max_size=4),
    max_leaves=16,
)
stream_types = st.sampled_from(sorted(STREAM_FRAMES))
other_types = st.integers(0, 255).filter(lambda t: t not in STREAM_FRAMES)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    payload = draw(st.binary(max_size=40))
    if draw(st.booleans()):
        return Frame(draw(stream_types), draw(st.integers(1, 0xFFFF_FFFF)), payload)
    return Frame(draw(other_types), 0, payload)


def encode(frame: Frame) -> bytes:
    """A frame as RFC §4 lays it out, written here independently of frames.py."""
    body = frame.payload
    if frame.type in STREAM_FRAMES:
        body = struct.pack(">I", frame.stream_id) + body
    return struct.pack(">BI", frame.type, len(body)) + body


def split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """`data` cut at the given offsets (any order, repeats make empty pieces)."""
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        yield data[start:cut]
        start = cut
    yield data[start:]


def feed_pieces(decoder: FrameDecoder, pieces: Iterator[bytes]) -> list[Frame]:
    """Feed piece by piece, checking the bound on what is held back after each."""
    got: list[Frame] = []
    for piece in pieces:
        got += decoder.feed(piece)
        assert decoder.buffered < HEADER_SIZE + decoder.max_frame_size
    return got


def feed_whole(limit: int, data: bytes) -> tuple[list[Frame] | None, int]:
    """(frames, bytes held back) from one feed; (None, 0) for a ProtocolError."""
    decoder = FrameDecoder(limit)
    try:
        return decoder.feed(data), decoder.buffered
    except ProtocolError:
        return None, 0


# -- frames -------------------------------------------------------------------------------


@PROPERTY
@given(
    st.lists(frames(), max_size=8),
    st.lists(st.integers(0, 10_000), max_size=12),
    st.booleans(),
)
def test_any_split_of_a_valid_stream_gives_the_same_frames(
    sent: list[Frame], cuts: list[int], hello_limit: bool
) -> None:
    data = b"".join(encode(frame) for frame in sent)
    limit = MAX_HELLO_SIZE if hello_limit else max([44, *(len(f.payload) + 4 for f in sent)])
    whole = FrameDecoder(limit)
    assert whole.feed(data) == sent
    assert whole.buffered == 0
    chunked = FrameDecoder(limit)
    assert feed_pieces(chunked, split(data, cuts)) == sent
    assert chunked.buffered == 0
    # The same stream as bytearray pieces (what a recv_into buffer would hand over).
    assert feed_pieces(FrameDecoder(limit), map(bytearray, split(data, cuts))) == sent


@PROPERTY
@given(
    st.lists(st.binary(max_size=24) | frames().map(encode), max_size=8).map(b"".join),
    st.lists(st.integers(0, 10_000), max_size=12),
    st.sampled_from([0, 1, 4, 5, 8, 16, 44, MAX_HELLO_SIZE, MAX_FRAME_LENGTH]),
)
def test_arbitrary_bytes_raise_only_protocol_error_and_stay_bounded(
    data: bytes, cuts: list[int], limit: int
) -> None:
    expected, left = feed_whole(limit, data)
    decoder = FrameDecoder(limit)
    try:
        got = feed_pieces(decoder, split(data, cuts))
    except ProtocolError:
        assert expected is None, "chunks raised where the whole stream did not"
    else:
        assert got == expected, "chunks gave other frames than the whole stream"
        assert decoder.buffered == left


@PROPERTY
@given(st.integers(0, MAX_HELLO_SIZE), st.data())
def test_a_forged_length_is_refused_from_the_header_alone(limit: int, data: st.DataObject) -> None:
    length = data.draw(st.integers(limit + 1, MAX_FRAME_LENGTH))
    kind = data.draw(st.integers(0, 255))
    decoder = FrameDecoder(limit)
    with pytest.raises(ProtocolError, match="exceeds the negotiated maximum"):
        for byte in struct.pack(">BI", kind, length):
            decoder.feed(bytes([byte]))
    assert decoder.buffered <= HEADER_SIZE


# -- HELLO --------------------------------------------------------------------------------

HELLO_KEYS = [
    "versions",
    "codecs",
    "max_frame_size",
    "stream_window",
    "stream_window_bytes",
    "connection_window_bytes",
    "agent",
    "version",
    "codec",
    "compression",
]
hello_maps = st.dictionaries(
    st.sampled_from(HELLO_KEYS) | st.text(max_size=6),
    wire_values
    | st.lists(st.sampled_from([1, 2, 2.0, 3, True, "msgpack", "json", "zlib", None]), max_size=4)
    | st.sampled_from(["msgpack", "json", "zlib", 2, 2.0, MAX_HELLO_SIZE, MAX_FRAME_LENGTH + 1]),
    max_size=9,
)
codec_choices = st.sampled_from([("msgpack", "json"), ("msgpack",), ("json",), ("json", "msgpack")])
windows = st.builds(
    Windows,
    st.integers(1, MAX_WINDOW_ITEMS),
    st.integers(1, MAX_WINDOW_BYTES),
    st.integers(1, MAX_WINDOW_BYTES),
)


def assert_within_rfc(
    settings: Settings, codecs: tuple[str, ...], compressions: tuple[str, ...] = ("zlib",)
) -> None:
    assert type(settings.version) is int and settings.version in PROTOCOL_VERSIONS
    assert type(settings.codec) is str and settings.codec in codecs
    assert MAX_HELLO_SIZE <= settings.peer_max_frame_size <= MAX_FRAME_LENGTH
    assert type(settings.peer_agent) is str
    assert 1 <= settings.peer_windows.items <= MAX_WINDOW_ITEMS
    assert 1 <= settings.peer_windows.stream_bytes <= MAX_WINDOW_BYTES
    assert 1 <= settings.peer_windows.connection_bytes <= MAX_WINDOW_BYTES
    assert settings.compression in (None, *compressions)


@PROPERTY
@given(st.binary(max_size=64) | hello_maps.map(msgpack.packb), codec_choices)
def test_hello_payloads_raise_only_the_documented_errors(
    payload: bytes, codecs: tuple[str, ...]
) -> None:
    try:
        settings, _ = server_choose(payload, codecs, MAX_HELLO_SIZE, compression=("zlib",))
    except (ProtocolError, HandshakeError):
        pass
    else:
        assert_within_rfc(settings, codecs)
    try:
        settings = client_accept(payload, codecs, ("zlib",))
    except (ProtocolError, HandshakeError):
        pass
    else:
        assert_within_rfc(settings, codecs)


@PROPERTY
@given(
    st.lists(st.sampled_from(["msgpack", "json", "cbor", ""]), min_size=1, max_size=4, unique=True),
    codec_choices,
    st.integers(MAX_HELLO_SIZE, MAX_FRAME_LENGTH),
    st.integers(MAX_HELLO_SIZE, MAX_FRAME_LENGTH),
    windows,
    windows,
    st.lists(st.sampled_from(["zstd", "zlib", "lz4"]), max_size=3, unique=True).map(tuple),
    st.lists(st.sampled_from(["zstd", "zlib"]), max_size=2, unique=True).map(tuple),
)
def test_valid_hellos_round_trip(
    offered: list[str],
    accepted: tuple[str, ...],
    client_max: int,
    server_max: int,
    client_windows: Windows,
    server_windows: Windows,
    compressions: tuple[str, ...],
    server_compressions: tuple[str, ...],
) -> None:
    hello = client_hello(tuple(offered), client_max, client_windows, compressions)
    common = [c for c in offered if c in accepted]
    if not common:
        with pytest.raises(HandshakeError, match="no common codec"):
            server_choose(hello, accepted, server_max, server_windows, server_compressions)
        return
    settings, reply = server_choose(
        hello, accepted, server_max, server_windows, server_compressions
    )
    compression = next((c for c in compressions if c in server_compressions), None)
    version = max(PROTOCOL_VERSIONS)
    assert settings == Settings(version, common[0], client_max, AGENT, client_windows, compression)
    back = client_accept(reply, tuple(offered), compressions)
    assert back == Settings(version, common[0], server_max, AGENT, server_windows, compression)


# -- CALL bodies --------------------------------------------------------------------------

almost_calls = st.tuples(
    st.text(max_size=8) | wire_values,
    st.text(max_size=8) | wire_values,
    st.none() | st.integers(-1, MAX_TIMEOUT_MS + 1) | wire_values,
    st.dictionaries(st.text(max_size=4), st.text(max_size=4)) | wire_values,
    wire_values,
).map(list) | st.lists(wire_values, max_size=7)


@PROPERTY
@given(
    st.sampled_from(sorted(CODECS)),
    st.binary(max_size=64)
    | st.tuples(st.sampled_from(sorted(CODECS)), almost_calls).map(
        lambda c: CODECS[c[0]].encode(c[1])
    ),
)
def test_call_bodies_raise_only_protocol_error(codec_name: str, payload: bytes) -> None:
    try:
        header = decode_call(CODECS[codec_name], payload)
    except ProtocolError:
        return
    assert type(header.service) is str and type(header.method) is str
    assert header.timeout_ms is None or 0 <= header.timeout_ms <= MAX_TIMEOUT_MS
    assert all(type(k) is str and type(v) is str for k, v in header.metadata.items())


almost_statuses = st.tuples(
    st.integers(-5, 20) | wire_values,
    st.text(max_size=6) | wire_values,
    wire_values,
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3) | wire_values,
).map(list)


@PROPERTY
@given(
    st.sampled_from(sorted(CODECS)),
    st.binary(max_size=64)
    | st.tuples(st.sampled_from(sorted(CODECS)), almost_statuses | wire_values).map(
        lambda c: CODECS[c[0]].encode(c[1])
    ),
)
def test_status_and_headers_bodies_raise_only_protocol_error(
    codec_name: str, payload: bytes
) -> None:
    codec = CODECS[codec_name]
    try:
        code, message, _, trailers = decode_status_with_trailers(codec, payload)
    except ProtocolError:
        pass
    else:
        assert type(code) is StatusCode and type(message) is str
        assert trailers is None or all(
            type(k) is str and type(v) is str for k, v in trailers.items()
        )
    try:
        headers = decode_headers(codec, payload)
    except ProtocolError:
        return
    assert all(type(k) is str and type(v) is str for k, v in headers.items())


@PROPERTY
@given(
    st.sampled_from(sorted(CODECS)),
    st.text(max_size=10),
    st.text(max_size=10),
    st.none() | st.integers(0, MAX_TIMEOUT_MS),
    st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=4),
    st.lists(wire_values.filter(lambda v: v == v), max_size=4),  # NaN != NaN
)
def test_valid_calls_round_trip(
    codec_name: str,
    service: str,
    method: str,
    timeout_ms: int | None,
    metadata: dict[str, str],
    args: list[Any],
) -> None:
    codec = CODECS[codec_name]
    header = decode_call(codec, encode_call(codec, service, method, timeout_ms, metadata, args))
    assert tuple(header) == (service, method, timeout_ms, metadata, args)


# -- the fuzz harness, and what fuzzing found ----------------------------------------------


@pytest.fixture(scope="module")
def fuzz_targets() -> Iterator[Any]:
    """fuzz/targets.py, with its stubs generated (a few seconds: once per module)."""
    sys.path.insert(0, str(ROOT / "fuzz"))
    try:
        import targets

        targets.setup(in_process=True)
        yield targets
    finally:
        sys.path.remove(str(ROOT / "fuzz"))


def test_fuzz_harness_runs_its_seed_corpus(fuzz_targets: Any) -> None:
    corpus = sorted((ROOT / "fuzz" / "corpus").iterdir())
    assert {path.name.split("-")[0] for path in corpus} == set(fuzz_targets.TARGET_NAMES)
    assert fuzz_targets.replay(corpus) == len(corpus)


def _converter(targets: Any, name: str) -> Callable[[object, str], Any]:
    return next(entry[1] for entry in targets._converters if entry[0] == name)


# What fuzzing found: each of these raised something other than the documented error.


def deep_msgpack(depth: int, leaf: bytes = b"\x02") -> bytes:
    """A msgpack value nested `depth` lists deep (msgpack reads up to about 1,000)."""
    return b"\x91" * depth + leaf


def hello_with(**fields: bytes) -> bytes:
    """A msgpack HELLO map whose values are given as msgpack bytes."""
    body = b"".join(msgpack.packb(key) + value for key, value in fields.items())
    return bytes([0x80 | len(fields)]) + body


VALID_CLIENT = {
    "versions": msgpack.packb([2]),
    "codecs": msgpack.packb(["msgpack"]),
    "max_frame_size": msgpack.packb(MAX_HELLO_SIZE),
}
VALID_SERVER = {
    "version": msgpack.packb(2),
    "codec": msgpack.packb("msgpack"),
    "max_frame_size": msgpack.packb(MAX_HELLO_SIZE),
}


def test_found_a_float_version_in_the_server_hello_is_a_protocol_error() -> None:
    # 2.0 == 2 passed the `in PROTOCOL_VERSIONS` test, then failed an assert.
    payload = hello_with(**{**VALID_SERVER, "version": msgpack.packb(2.0)})
    with pytest.raises(ProtocolError, match=r"server chose version 2\.0 "):
        client_accept(payload, ("msgpack",))


@pytest.mark.parametrize("depth", [990, 1000, 1020])
def test_found_deeply_nested_hello_values_raise_the_documented_errors(depth: int) -> None:
    # Each went through repr() or str() (an error message, the peer's agent), which
    # raised RecursionError from the I/O thread's handshake.
    nested = deep_msgpack(depth)
    settings, _ = server_choose(hello_with(**VALID_CLIENT, agent=nested), ("msgpack",), 1 << 20)
    assert settings.peer_agent == ""  # not a str: ignored (RFC §5: agent is a str)
    assert client_accept(hello_with(**VALID_SERVER, agent=nested), ("msgpack",)).peer_agent == ""
    for key in ("versions", "codecs"):
        with pytest.raises(HandshakeError, match=r"no common .*\[\[\[\["):
            server_choose(
                hello_with(**{**VALID_CLIENT, key: b"\x91" + nested}), ("msgpack",), 1 << 20
            )
    for key in ("version", "codec", "compression"):
        with pytest.raises(ProtocolError, match="never offered"):
            client_accept(hello_with(**{**VALID_SERVER, key: nested}), ("msgpack",), ("zlib",))


def test_found_a_deep_value_where_an_enum_or_literal_is_expected() -> None:
    value = msgpack.unpackb(deep_msgpack(1000))
    with pytest.raises(InvalidArgumentError, match=r"p: \[+\.\.\.\]+ is not a valid Color$"):
        bad_enum("p", "Color", value)


def test_found_refusals_quote_at_most_a_little_of_a_huge_value() -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        dec_uuid("0" * 4_000_000, "id")
    assert len(refused.value.message) < 200


def test_found_the_json_codec_refuses_a_deep_value_with_codec_error() -> None:
    # Found by the harness's own use of it (no peer can make the runtime encode such a
    # value: generated converters only build values of a contract's bounded depth).
    with pytest.raises(CodecError):
        CODECS["json"].encode(msgpack.unpackb(deep_msgpack(1000)))


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("fuzz_types._dec_set_Decimal", ["1", "sNaN"]),
        ("fuzz_types._dec_dict_Decimal_int", {"sNaN": 1}),
        ("fuzz_types._dec_dict_tuple2_Decimal_date_str", [[["sNaN", "2024-01-01"], "x"]]),
    ],
)
def test_found_snan_where_it_would_be_hashed_is_invalid_argument(
    fuzz_targets: Any, name: str, wire: Any
) -> None:
    # A set item or dict key built with sNaN raised TypeError("Cannot hash a signaling
    # NaN value") out of the generated decoder; NaN is hashable, and sNaN elsewhere fine.
    decode = _converter(fuzz_targets, name)
    with pytest.raises(InvalidArgumentError, match="sNaN cannot be a set item or dict key"):
        decode(wire, "value")
    nan = decode(json_replace(wire, "sNaN", "NaN"), "value")
    assert "NaN" in str(nan)
    amounts = _converter(fuzz_targets, "e2e_moretypes.client._MoreTypes_echo_amounts_result")
    assert str(amounts(["sNaN"], "value")[0]) == "sNaN"  # a list's items are not hashed


def json_replace(value: Any, old: str, new: str) -> Any:
    """`value` with every str `old` in it (keys too) replaced by `new`."""
    if isinstance(value, list):
        return [json_replace(item, old, new) for item in value]
    if isinstance(value, dict):
        return {json_replace(k, old, new): json_replace(v, old, new) for k, v in value.items()}
    return new if value == old else value

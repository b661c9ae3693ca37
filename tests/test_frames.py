"""The sans-IO frame layer: every byte boundary, every limit, every malformed header."""

from __future__ import annotations

import random
import struct

import pytest

from gopherpipe_runtime.wire.frames import (
    PREFACE,
    Frame,
    FrameDecoder,
    FrameType,
    Preamble,
    ProtocolError,
    classify_preamble,
    decode_goaway,
    encode_frame,
    encode_goaway,
)

SAMPLE = [
    (FrameType.HELLO, 0, b"\x80"),
    (FrameType.CALL, 1, b"call-body"),
    (FrameType.PING, 0, b"12345678"),
    (FrameType.STATUS, 0xFFFF_FFFF, b""),
    (FrameType.CANCEL, 7, b""),
]


def _encoded() -> bytes:
    return b"".join(encode_frame(t, p, s) for t, s, p in SAMPLE)


def _expected() -> list[Frame]:
    return [Frame(int(t), s, p) for t, s, p in SAMPLE]


def test_header_layout_is_type_then_big_endian_length() -> None:
    assert encode_frame(FrameType.PING, b"abc") == b"\x02\x00\x00\x00\x03abc"
    assert encode_frame(FrameType.CALL, b"x", 5) == b"\x10\x00\x00\x00\x05\x00\x00\x00\x05x"


def test_decodes_whole_stream_in_one_feed() -> None:
    assert FrameDecoder(1 << 20).feed(_encoded()) == _expected()


@pytest.mark.parametrize("split", range(1, 40))
def test_decodes_across_every_split_point(split: int) -> None:
    data = _encoded()
    decoder = FrameDecoder(1 << 20)
    frames = decoder.feed(data[:split]) + decoder.feed(data[split:])
    assert frames == _expected()
    assert decoder.buffered == 0


def test_decodes_one_byte_at_a_time() -> None:
    decoder = FrameDecoder(1 << 20)
    frames: list[Frame] = []
    for byte in _encoded():
        frames += decoder.feed(bytes([byte]))
    assert frames == _expected()


def test_random_chunking_keeps_order_and_content() -> None:
    rng = random.Random(7)
    payloads = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(300)]
    data = b"".join(encode_frame(FrameType.CALL, p, i + 1) for i, p in enumerate(payloads))
    decoder = FrameDecoder(1 << 20)
    out: list[Frame] = []
    pos = 0
    while pos < len(data):
        step = rng.randrange(1, 5000)
        out += decoder.feed(data[pos : pos + step])
        pos += step
    assert [f.payload for f in out] == payloads
    assert [f.stream_id for f in out] == list(range(1, 301))


def test_oversized_length_is_refused_before_the_body_is_buffered() -> None:
    decoder = FrameDecoder(1024)
    header = struct.pack(">BI", FrameType.CALL, 0xFFFF_FFFF)
    with pytest.raises(ProtocolError, match="exceeds the negotiated maximum of 1024"):
        decoder.feed(header)
    # At most the 5 header bytes were ever held: nothing was allocated for the body.
    assert decoder.buffered <= 5


def test_frame_exactly_at_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(1024)
    frame = encode_frame(FrameType.PING, b"x" * 1024)
    assert decoder.feed(frame) == [Frame(FrameType.PING, 0, b"x" * 1024)]
    with pytest.raises(ProtocolError):
        FrameDecoder(1024).feed(encode_frame(FrameType.PING, b"x" * 1025))


def test_stream_frame_without_stream_id_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="without a stream id"):
        FrameDecoder().feed(struct.pack(">BI", FrameType.CALL, 2) + b"ab")


def test_stream_frame_on_stream_zero_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="on stream 0"):
        FrameDecoder().feed(encode_frame(FrameType.CALL, b"", 0))


def test_unknown_frame_types_are_passed_up_for_the_connection_to_ignore() -> None:
    assert FrameDecoder().feed(struct.pack(">BI", 0x7F, 1) + b"z") == [Frame(0x7F, 0, b"z")]


def test_truncated_frame_stays_buffered_and_yields_nothing() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(FrameType.PING, b"12345678")[:-1]) == []
    assert decoder.buffered == 12


def test_goaway_round_trip_and_short_body() -> None:
    frame = FrameDecoder().feed(encode_goaway(41, 14, "bye ✓"))[0]
    assert decode_goaway(frame.payload) == (41, 14, "bye ✓")
    with pytest.raises(ProtocolError):
        decode_goaway(b"\x00\x01")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", Preamble.NEED_MORE),
        (PREFACE[:3], Preamble.NEED_MORE),
        (PREFACE, Preamble.TCP_LITE),
        (PREFACE + b"\x01rest", Preamble.TCP_LITE),
        (b"GE", Preamble.NEED_MORE),
        (b"GET / HTTP/1.1\r\n", Preamble.HTTP),
        (b"POST /x HTTP/1.1\r\n", Preamble.HTTP),
        (b"PRI * HTTP/2.0\r\n", Preamble.HTTP),
        (b"\x16\x03\x01\x02\x00", Preamble.GARBAGE),  # a TLS ClientHello
        (b"hello", Preamble.GARBAGE),
        (b"GETX", Preamble.GARBAGE),
    ],
)
def test_classify_preamble(data: bytes, kind: Preamble) -> None:
    assert classify_preamble(data) is kind


def test_decoder_work_stays_linear_for_many_tiny_frames() -> None:
    # 200k frames trickled in 3-byte chunks: a decoder that re-sliced its whole
    # buffer per frame would take minutes here; this one takes well under a second.
    one = encode_frame(FrameType.PING, b"")
    data = one * 200_000
    decoder = FrameDecoder()
    count = 0
    for pos in range(0, len(data), 3):
        count += len(decoder.feed(data[pos : pos + 3]))
    assert count == 200_000


def test_one_whole_stream_frame_per_feed_decodes_as_when_buffered() -> None:
    # The single-frame read takes a shortcut past the buffer: same frames, same checks.
    decoder = FrameDecoder(64)
    for stream_id, payload in ((1, b""), (9, b"status-body"), (0xFFFF_FFFF, b"m" * 60)):
        frame = encode_frame(FrameType.STATUS, payload, stream_id)
        assert decoder.feed(frame) == [Frame(FrameType.STATUS, stream_id, payload)]
        assert decoder.buffered == 0
    # After a partial frame, a whole one goes through the buffer and keeps its order.
    first = encode_frame(FrameType.MESSAGE, b"abc", 3)
    assert decoder.feed(first[:4]) == []
    assert decoder.feed(first[4:]) == [Frame(FrameType.MESSAGE, 3, b"abc")]
    with pytest.raises(ProtocolError, match="on stream 0"):
        FrameDecoder().feed(encode_frame(FrameType.STATUS, b"x", 0))
    with pytest.raises(ProtocolError, match="exceeds the negotiated maximum of 8"):
        FrameDecoder(8).feed(encode_frame(FrameType.STATUS, b"x" * 8, 5))

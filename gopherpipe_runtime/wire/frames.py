"""TCP_LITE framing, sans-IO: bytes in, frames out; no sockets, threads or clocks.

Every frame is a 5-byte header -- type (u8) and body length (u32, big-endian) --
followed by the body. Frames that belong to a stream (see `STREAM_FRAMES`) start
their body with the stream id (u32, big-endian). RFC-TCP_LITE.md is the
authority; this module is its executable form, and the fuzzing surface.
"""

from __future__ import annotations

import struct
from enum import Enum, IntEnum
from typing import NamedTuple

PREFACE = b"\x89GPIPE\r\n"
"""First bytes a client sends. The high-bit byte and CR LF make it fail fast on a
7-bit or line-mangling path, and it can never be the start of an HTTP request."""

HEADER_SIZE = 5
STREAM_ID_SIZE = 4
STREAM_HEADER_SIZE = HEADER_SIZE + STREAM_ID_SIZE
MAX_STREAM_ID = 0xFFFF_FFFF
MAX_FRAME_LENGTH = 0xFFFF_FFFF
DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024
MAX_HELLO_SIZE = 16 * 1024
"""Before HELLO has settled the limits, no frame may be larger than this."""

_HEADER = struct.Struct(">BI")
_STREAM_HEADER = struct.Struct(">BII")
_ONE_STREAM_FRAME_MIN = HEADER_SIZE + STREAM_ID_SIZE
_GOAWAY_HEAD = struct.Struct(">IB")


class FrameType(IntEnum):
    HELLO = 0x01
    PING = 0x02
    PONG = 0x03
    GOAWAY = 0x04
    CALL = 0x10
    CALL_STREAM = 0x11
    MESSAGE = 0x12
    HALF_CLOSE = 0x13
    STATUS = 0x14
    CANCEL = 0x15
    CREDIT = 0x16
    HEADERS = 0x17


STREAM_FRAMES = frozenset(
    {
        FrameType.CALL,
        FrameType.CALL_STREAM,
        FrameType.MESSAGE,
        FrameType.HALF_CLOSE,
        FrameType.STATUS,
        FrameType.CANCEL,
        FrameType.CREDIT,
        FrameType.HEADERS,
    }
)
_CREDIT = struct.Struct(">IQ")
_STREAM_ID = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer broke the TCP_LITE rules; the connection cannot continue."""


class Frame(NamedTuple):
    type: int
    stream_id: int
    """0 for connection-level frames."""
    payload: bytes


def encode_frame(frame_type: FrameType, payload: bytes = b"", stream_id: int = 0) -> bytes:
    if frame_type in STREAM_FRAMES:
        return _STREAM_HEADER.pack(frame_type, len(payload) + STREAM_ID_SIZE, stream_id) + payload
    return _HEADER.pack(frame_type, len(payload)) + payload


def encode_stream_frame(frame_type: int, stream_id: int, payload: bytes) -> bytes:
    """`encode_frame` for the hot path: the caller guarantees a stream frame type."""
    return _STREAM_HEADER.pack(frame_type, len(payload) + STREAM_ID_SIZE, stream_id) + payload


def encode_goaway(last_stream_id: int, code: int, message: str) -> bytes:
    body = _GOAWAY_HEAD.pack(last_stream_id, code) + message.encode("utf-8", "replace")
    return encode_frame(FrameType.GOAWAY, body)


def decode_goaway(payload: bytes) -> tuple[int, int, str]:
    if len(payload) < _GOAWAY_HEAD.size:
        raise ProtocolError("GOAWAY body shorter than 5 bytes")
    last_stream_id, code = _GOAWAY_HEAD.unpack_from(payload)
    return last_stream_id, code, payload[_GOAWAY_HEAD.size :].decode("utf-8", "replace")


def encode_credit(stream_id: int, items: int, nbytes: int) -> bytes:
    return encode_stream_frame(FrameType.CREDIT, stream_id, _CREDIT.pack(items, nbytes))


def decode_credit(payload: bytes) -> tuple[int, int]:
    """(items, bytes) a CREDIT returns."""
    if len(payload) != _CREDIT.size:
        raise ProtocolError(f"CREDIT body must be {_CREDIT.size} bytes")
    items, nbytes = _CREDIT.unpack(payload)
    return int(items), int(nbytes)


class FrameDecoder:
    """Turns a byte stream into frames.

    Cost stays O(bytes fed): bytes are appended once, and the consumed prefix is
    dropped once per `feed` call -- whatever it leaves behind arrived in that same
    call (an earlier call left at most one incomplete frame, which this call's
    bytes complete before any further frame can). Re-scanning or re-slicing the
    whole buffer per frame would let a peer that trickles many small frames make
    us do quadratic work. When nothing is held back (whole frames per read, the
    common case) frames are split straight from the bytes fed, and only an
    incomplete tail is copied into the buffer.

    The declared length is checked against `max_frame_size` before any byte of
    the body is buffered, so a forged 4 GiB length costs us 5 bytes, not memory.
    """

    def __init__(self, max_frame_size: int = MAX_HELLO_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        if not buffer and type(data) is bytes and len(data) >= _ONE_STREAM_FRAME_MIN:
            # The usual read on a quiet connection: exactly one whole stream frame (a
            # STATUS, one MESSAGE). Sliced from `data` directly, with no buffering.
            frame_type, length, stream_id = _STREAM_HEADER.unpack_from(data)
            if (
                length + HEADER_SIZE == len(data)
                and frame_type in STREAM_FRAMES
                and stream_id != 0
                and length <= self.max_frame_size
            ):
                return [Frame(frame_type, stream_id, data[HEADER_SIZE + STREAM_ID_SIZE :])]
        if buffer or type(data) is not bytes:
            buffer += data
            source: bytes | bytearray = buffer
        else:
            # Nothing held back (the common case: whole frames per read): split the
            # bytes received directly, and buffer only an incomplete tail, if any.
            source = data
        frames: list[Frame] = []
        available = len(source)
        position = 0
        limit = self.max_frame_size
        while available - position >= HEADER_SIZE:
            frame_type, length = _HEADER.unpack_from(source, position)
            if length > limit:
                raise ProtocolError(
                    f"frame of {length} bytes exceeds the negotiated maximum of {limit}"
                )
            body_start = position + HEADER_SIZE
            end = body_start + length
            if end > available:
                break
            if frame_type in STREAM_FRAMES:
                if length < STREAM_ID_SIZE:
                    raise ProtocolError(f"frame type {frame_type:#04x} without a stream id")
                (stream_id,) = _STREAM_ID.unpack_from(source, body_start)
                if stream_id == 0:
                    raise ProtocolError(f"frame type {frame_type:#04x} on stream 0")
                body_start += STREAM_ID_SIZE
            else:
                stream_id = 0
            # Slicing bytes copies once; a bytearray slice needs bytes() as well.
            payload = source[body_start:end]
            if type(payload) is not bytes:
                payload = bytes(payload)
            frames.append(Frame(frame_type, stream_id, payload))
            position = end
        if source is data:
            if position < available:
                buffer += memoryview(data)[position:]
        elif position:
            del buffer[:position]
        return frames


class Preamble(Enum):
    NEED_MORE = "need more bytes"
    TCP_LITE = "tcp_lite"
    HTTP = "http"
    GARBAGE = "garbage"


_HTTP_METHODS = (
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PRI ",
)


def classify_preamble(data: bytes) -> Preamble:
    """What the first bytes of a connection are, as soon as that can be told."""
    if data[: len(PREFACE)] == PREFACE[: len(data)]:
        return Preamble.TCP_LITE if len(data) >= len(PREFACE) else Preamble.NEED_MORE
    for method in _HTTP_METHODS:
        if data[: len(method)] == method[: len(data)]:
            return Preamble.HTTP if len(data) >= len(method) else Preamble.NEED_MORE
    return Preamble.GARBAGE

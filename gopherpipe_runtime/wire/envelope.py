"""The codec-encoded bodies of CALL and STATUS frames, sans-IO.

CALL:   [service: str, method: str, timeout_ms: int | None, metadata: {str: str}, args: list]
STATUS: [code: int, message: str, result: any, trailers: {str: str}?]
HEADERS: {str: str}  (the body of a HEADERS frame, RFC §6.8)

Numbers are range-checked here, before anyone computes with them: a codec may
hand us any integer (JSON has no limit at all), and one that overflows later,
in a handler thread, would leave the caller without an answer.

Arrays rather than maps: positional fields are smaller and faster to read, and
new fields are only ever appended, so an older reader ignores what it does not
know.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..status import known_code
from .codec import Codec, CodecError, CodecLimitError
from .frames import ProtocolError

DEFAULT_MAX_METADATA_SIZE = 8 * 1024
"""A server's default `max_metadata_size`: gRPC's default for its `max_metadata_size`."""
METADATA_ENTRY_OVERHEAD = 32
"""What each metadata entry counts beyond its key and value: HTTP/2's rule for header
lists (RFC 9113 §6.5.2), which gRPC's metadata limit uses too, so many tiny entries
cost as much as they take to hold."""

MAX_TIMEOUT_MS = 0xFFFF_FFFF
"""Largest CALL timeout_ms (about 49.7 days; RFC §6.2). Far beyond any real deadline,
it fits an unsigned 32-bit field in any implementation, and as seconds it is well
within what `threading` accepts as a timeout."""


class LimitExceeded(ProtocolError):
    """A well-formed CALL or STATUS body refused by one of the receiver's limits (the
    message names it): RESOURCE_EXHAUSTED for that one call, where a malformed body is
    INVALID_ARGUMENT (CALL) or INTERNAL (STATUS)."""


class CallHeader(NamedTuple):
    # A NamedTuple, not a frozen dataclass: it is made once per call, and a frozen
    # dataclass's __init__ costs ten times as much.

    service: str
    method: str
    timeout_ms: int | None
    metadata: dict[str, str]
    args: Any


def encode_call(
    codec: Codec,
    service: str,
    method: str,
    timeout_ms: int | None,
    metadata: dict[str, str],
    args: list[Any],
) -> bytes:
    return codec.encode([service, method, timeout_ms, metadata, args])


def decode_call(codec: Codec, payload: bytes) -> CallHeader:
    """Raises ProtocolError for a body that is not a well-formed CALL, LimitExceeded
    (a ProtocolError) for one beyond the codec's decoding limits."""
    try:
        body = codec.decode(payload)
    except CodecLimitError as exc:
        raise LimitExceeded(str(exc)) from None
    except CodecError as exc:
        raise ProtocolError(str(exc)) from None
    if type(body) is not list or len(body) < 5:
        raise ProtocolError("CALL body must be an array of at least 5 items")
    service, method, timeout_ms, metadata, args = body[:5]
    if type(service) is not str or type(method) is not str:
        raise ProtocolError("CALL service and method must be strings")
    if timeout_ms is not None and (
        type(timeout_ms) is not int or not 0 <= timeout_ms <= MAX_TIMEOUT_MS
    ):
        raise ProtocolError(f"CALL timeout_ms must be nil or an integer in 0..{MAX_TIMEOUT_MS}")
    if type(metadata) is not dict or (
        metadata and not all(type(k) is str and type(v) is str for k, v in metadata.items())
    ):
        raise ProtocolError("CALL metadata must map strings to strings")
    return CallHeader(service, method, timeout_ms, metadata, args)


def metadata_size(metadata: dict[str, str]) -> int:
    """What a CALL's metadata counts against a server's `max_metadata_size`: each
    entry's key and value in UTF-8, plus METADATA_ENTRY_OVERHEAD."""
    size = METADATA_ENTRY_OVERHEAD * len(metadata)
    for key, value in metadata.items():
        # surrogatepass: JSON may carry a lone surrogate ("\ud800"), which has no UTF-8.
        size += len(key) if key.isascii() else len(key.encode("utf-8", "surrogatepass"))
        size += len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    return size


def encode_status(
    codec: Codec, code: int, message: str, result: Any, trailers: dict[str, str] | None = None
) -> bytes:
    if trailers:
        return codec.encode([code, message, result, trailers])
    return codec.encode([code, message, result])


def decode_status(codec: Codec, payload: bytes) -> tuple[int, str, Any]:
    """Raises ProtocolError for a malformed body, LimitExceeded (a ProtocolError) for one
    beyond the codec's decoding limits; a code outside §9 comes back as UNKNOWN."""
    code, message, result, _ = decode_status_with_trailers(codec, payload)
    return code, message, result


def decode_status_with_trailers(
    codec: Codec, payload: bytes
) -> tuple[int, str, Any, dict[str, str] | None]:
    """As `decode_status`, and the trailers (None when the server sent none)."""
    try:
        body = codec.decode(payload)
    except CodecLimitError as exc:
        raise LimitExceeded(str(exc)) from None
    except CodecError as exc:
        raise ProtocolError(str(exc)) from None
    if type(body) is not list or len(body) < 3:
        raise ProtocolError("STATUS body must be an array of at least 3 items")
    code, message, result = body[:3]
    if type(code) is not int or type(message) is not str:
        raise ProtocolError("STATUS code must be an integer and message a string")
    trailers = body[3] if len(body) > 3 else None
    if trailers is not None and not _is_metadata(trailers):
        raise ProtocolError("STATUS trailers must map strings to strings")
    # Mapped here, once, so nothing downstream ever meets a number outside StatusCode.
    known, message = known_code(code, message)
    return known, message, result, trailers


def encode_headers(codec: Codec, headers: dict[str, str]) -> bytes:
    return codec.encode(headers)


def decode_headers(codec: Codec, payload: bytes) -> dict[str, str]:
    """A HEADERS body; ProtocolError unless it maps strings to strings."""
    try:
        headers = codec.decode(payload)
    except CodecError as exc:  # CodecLimitError included: headers are small or wrong
        raise ProtocolError(f"malformed HEADERS: {exc}") from None
    if not _is_metadata(headers):
        raise ProtocolError("HEADERS must map strings to strings")
    return headers  # type: ignore[no-any-return]


def _is_metadata(value: Any) -> bool:
    return type(value) is dict and all(type(k) is str and type(v) is str for k, v in value.items())

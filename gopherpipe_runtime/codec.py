"""Codecs turn wire-form values (None, bool, int, float, str, bytes, list, dict)
into frame payloads and back. The codec is chosen once per connection in HELLO.

msgpack is the default: compact, fast, and it carries every wire-form value as
is. JSON is there for debugging and for peers without msgpack; since JSON has no
bytes and only string keys, the JSON codec escapes those two cases reversibly
(see `JsonCodec`) so both codecs round-trip exactly the same values.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, Protocol

import msgpack


class CodecError(Exception):
    """A payload the codec cannot read, or a value it cannot write."""


class Codec(Protocol):
    name: str

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


_packers = threading.local()
"""One msgpack Packer per thread: `packb` builds (and frees) a Packer and its
buffer per call, which costs twice the packing of a small value. A Packer
resets itself after each `pack`, also when packing fails, but keeps a buffer it
had to grow: a thread forgets its Packer after a value larger than that buffer's
initial size, so it does not hold a large result's memory."""
_PACKER_KEEP_LIMIT = 256 * 1024


class MsgpackCodec:
    name = "msgpack"

    def encode(self, value: Any) -> bytes:
        try:
            packer = _packers.packer
        except AttributeError:
            packer = _packers.packer = msgpack.Packer(use_bin_type=True)
        try:
            data: bytes = packer.pack(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"cannot encode value as msgpack: {exc}") from None
        if len(data) > _PACKER_KEEP_LIMIT:
            del _packers.packer
        return data

    def decode(self, data: bytes) -> Any:
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
        except Exception as exc:  # msgpack raises a zoo of types for bad input
            raise CodecError(f"malformed msgpack payload: {exc}") from None


_BYTES_TAG = "$b"
_MAP_TAG = "$m"


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {_BYTES_TAG: base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        # Keys that JSON cannot hold, or that could be mistaken for our tags,
        # make the whole map travel as a list of pairs.
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: _to_json(item) for key, item in value.items()}
        return {_MAP_TAG: [[_to_json(key), _to_json(item)] for key, item in value.items()]}
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            if _BYTES_TAG in value:
                return base64.b64decode(value[_BYTES_TAG], validate=True)
            if _MAP_TAG in value:
                return {_from_json(k): _from_json(v) for k, v in value[_MAP_TAG]}
        return {key: _from_json(item) for key, item in value.items()}
    return value


class JsonCodec:
    name = "json"

    def encode(self, value: Any) -> bytes:
        try:
            return json.dumps(_to_json(value), separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:  # too deep: RecursionError
            raise CodecError(f"cannot encode value as JSON: {exc}") from None

    def decode(self, data: bytes) -> Any:
        try:
            return _from_json(json.loads(data))
        except Exception as exc:
            raise CodecError(f"malformed JSON payload: {exc}") from None


CODECS: dict[str, Codec] = {codec.name: codec for codec in (MsgpackCodec(), JsonCodec())}
DEFAULT_CODECS = ("msgpack", "json")

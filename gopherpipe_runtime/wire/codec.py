"""Codecs turn wire-form values (None, bool, int, float, str, bytes, list, dict)
into frame payloads and back. The codec is chosen once per connection in HELLO.

msgpack is the default: compact, fast, and it carries every wire-form value as
is. JSON is there for debugging and for peers without msgpack; since JSON has no
bytes and only string keys, the JSON codec escapes those two cases reversibly
(see `JsonCodec`) so both codecs round-trip exactly the same values.

Decoding limits (RFC §7.2), the same for both codecs, so that a payload cannot
make its receiver build far more than it sent:
- msgpack's own: a string, bytes, array or map may not declare more elements or
  bytes than the payload holds (`unpackb` sets its `max_*_len` from the payload's
  length), so a few bytes cannot declare a huge array;
- `max_decoded_size`: the arrays and maps a payload decodes into may take at most
  that many bytes, as `sys.getsizeof` counts them (a list is 56 bytes and 8 per
  item, a small dict 64 to 224). Each takes up to ~110 times the bytes it has on
  the wire (an empty array is one byte, an empty list 56), far more than strings
  or numbers (~20 times at most; a msgpack extension value ~35), so they are what
  a small payload can inflate. msgpack is stopped as it decodes, once over; JSON
  as its parsed values are converted;
- `max_nesting_depth`: arrays and maps may nest at most that deep (`[]` is 1,
  `[[1]]` 2), so code that recurses over a value (the generated converters of a
  recursive dataclass) cannot run out of stack.
A payload over either is refused with `CodecLimitError`, which names the limit.
"""

from __future__ import annotations

import base64
import functools
import json
import operator
import sys
import threading
from collections.abc import Callable
from itertools import chain, compress
from typing import Any, Protocol

import msgpack


class CodecError(Exception):
    """A payload the codec cannot read, or a value it cannot write."""


class CodecLimitError(CodecError):
    """A well-formed payload refused by a decoding limit (its message names the limit)."""


class Codec(Protocol):
    name: str

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


DEFAULT_MAX_DECODED_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_NESTING_DEPTH = 100
"""As protobuf's default recursion limit."""
MAX_NESTING_DEPTH = 1000
"""The most `max_nesting_depth` may be: msgpack's decoder refuses 1024 levels itself."""

_MAX_SIZE_PER_BYTE = 256
"""At least what the arrays and maps of one payload byte can take, as sys.getsizeof
counts them (~112 on CPython 3.11: a one-entry dict is 224 bytes for a header and a
key byte). Payloads whose length times this is within `max_decoded_size` are
decoded without counting."""
_CONTAINER_HEADS = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])
"""The first bytes of msgpack arrays and maps: a payload holds at most as many arrays
and maps as it has bytes among these, so it nests no deeper."""


def _size_error(limit: int) -> CodecLimitError:
    return CodecLimitError(
        f"payload decodes into more than {limit} bytes of arrays and maps (max_decoded_size)"
    )


def _depth_error(limit: int) -> CodecLimitError:
    return CodecLimitError(
        f"payload nests arrays and maps more than {limit} deep (max_nesting_depth)"
    )


def _check_limits(max_decoded_size: int, max_nesting_depth: int) -> None:
    if type(max_decoded_size) is not int or max_decoded_size < 1:
        raise ValueError("max_decoded_size must be a positive int")
    if type(max_nesting_depth) is not int or not 2 <= max_nesting_depth <= MAX_NESTING_DEPTH:
        # 2: a CALL's arguments sit in an array inside the CALL's array.
        raise ValueError(f"max_nesting_depth must be an int in 2..{MAX_NESTING_DEPTH}")


_is_list = functools.partial(operator.is_, list)
_is_dict = functools.partial(operator.is_, dict)


def nesting_exceeds(value: Any, limit: int, containers: int | None = None) -> bool:
    """Whether `value` nests lists and dicts more than `limit` deep: level by level (no
    recursion), with the loops over items in C. `containers`, if given, is at least the
    number of lists and dicts in `value`: once those found leave too few to go deeper
    than `limit`, the rest is not looked at (so records of scalars are seen once)."""
    if type(value) is list:
        lists, dicts = [value], []
    elif type(value) is dict:
        lists, dicts = [], [value]
    else:
        return False
    depth = seen = 1
    while True:
        if containers is not None and depth + containers - seen <= limit:
            return False
        if len(lists) == 1 and not dicts:
            items = lists[0]
        else:
            items = list(chain.from_iterable(lists))
            if dicts:
                items += chain.from_iterable(map(dict.values, dicts))
        types = list(map(type, items))
        found_lists = types.count(list)
        found_dicts = types.count(dict)
        if not found_lists and not found_dicts:
            return False
        depth += 1
        if depth > limit:
            return True
        seen += found_lists + found_dicts
        if found_lists == len(items):
            lists, dicts = items, []
        else:
            lists = list(compress(items, map(_is_list, types))) if found_lists else []
            dicts = list(compress(items, map(_is_dict, types))) if found_dicts else []


def _size_budget(limit: int) -> Callable[[Any], Any]:
    """A list_hook/object_hook for msgpack: charges each array and map as it is built,
    and stops decoding once they take more than `limit` bytes."""
    left = limit
    getsizeof = sys.getsizeof

    def charge(container: Any) -> Any:
        nonlocal left
        left -= getsizeof(container)
        if left < 0:
            raise _size_error(limit)
        return container

    return charge


_packers = threading.local()
"""One msgpack Packer per thread: `packb` builds (and frees) a Packer and its
buffer per call, which costs twice the packing of a small value. A Packer
resets itself after each `pack`, also when packing fails, but keeps a buffer it
had to grow: a thread forgets its Packer after a value larger than that buffer's
initial size, so it does not hold a large result's memory."""
_PACKER_KEEP_LIMIT = 256 * 1024


class MsgpackCodec:
    name = "msgpack"

    def __init__(
        self,
        max_decoded_size: int = DEFAULT_MAX_DECODED_SIZE,
        max_nesting_depth: int = DEFAULT_MAX_NESTING_DEPTH,
    ) -> None:
        _check_limits(max_decoded_size, max_nesting_depth)
        self.max_decoded_size = max_decoded_size
        self.max_nesting_depth = max_nesting_depth
        self._unchecked = min(max_nesting_depth, max_decoded_size // _MAX_SIZE_PER_BYTE)
        """Payloads up to this length can break neither limit."""
        self._uncounted = max_decoded_size // _MAX_SIZE_PER_BYTE

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
        if len(data) <= self._unchecked:
            try:
                return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
            except Exception as exc:  # msgpack raises a zoo of types for bad input
                raise CodecError(f"malformed msgpack payload: {exc}") from None
        return self._decode_checked(data)

    def _decode_checked(self, data: bytes) -> Any:
        try:
            if len(data) <= self._uncounted:
                value = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
            else:
                charge = _size_budget(self.max_decoded_size)
                value = msgpack.unpackb(
                    data,
                    raw=False,
                    strict_map_key=False,
                    use_list=True,
                    list_hook=charge,
                    object_hook=charge,
                )
        except CodecLimitError:
            raise
        except msgpack.StackError:  # nested deeper than msgpack's own stack (1024)
            raise _depth_error(self.max_nesting_depth) from None
        except Exception as exc:
            raise CodecError(f"malformed msgpack payload: {exc}") from None
        limit = self.max_nesting_depth
        heads = len(data) - len(data.translate(None, _CONTAINER_HEADS))
        if heads > limit and nesting_exceeds(value, limit, heads):
            raise _depth_error(limit)
        return value


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


class _FromJson:
    """Undoes `_to_json` on what `json.loads` built, within the decoding limits: the
    depth counts wire-form arrays and maps (a `$m` map is one level, a `$b` none),
    the size what the lists and dicts built here take."""

    __slots__ = ("left", "limit", "max_depth")

    def __init__(self, max_decoded_size: int, max_depth: int) -> None:
        self.limit = max_decoded_size
        self.left = max_decoded_size
        self.max_depth = max_depth

    def _charge(self, container: Any) -> None:
        self.left -= sys.getsizeof(container)
        if self.left < 0:
            raise _size_error(self.limit)

    def read(self, value: Any, depth: int) -> Any:
        if isinstance(value, list):
            if depth >= self.max_depth:
                raise _depth_error(self.max_depth)
            items = [self.read(item, depth + 1) for item in value]
            self._charge(items)
            return items
        if isinstance(value, dict):
            if len(value) == 1 and _BYTES_TAG in value:
                return base64.b64decode(value[_BYTES_TAG], validate=True)
            if depth >= self.max_depth:
                raise _depth_error(self.max_depth)
            depth += 1
            if len(value) == 1 and _MAP_TAG in value:
                entries = {self.read(k, depth): self.read(v, depth) for k, v in value[_MAP_TAG]}
            else:
                entries = {key: self.read(item, depth) for key, item in value.items()}
            self._charge(entries)
            return entries
        return value


class JsonCodec:
    name = "json"

    def __init__(
        self,
        max_decoded_size: int = DEFAULT_MAX_DECODED_SIZE,
        max_nesting_depth: int = DEFAULT_MAX_NESTING_DEPTH,
    ) -> None:
        _check_limits(max_decoded_size, max_nesting_depth)
        self.max_decoded_size = max_decoded_size
        self.max_nesting_depth = max_nesting_depth

    def encode(self, value: Any) -> bytes:
        try:
            return json.dumps(_to_json(value), separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:  # too deep: RecursionError
            raise CodecError(f"cannot encode value as JSON: {exc}") from None

    def _too_deep_to_read(self) -> CodecLimitError:
        return CodecLimitError(
            f"JSON payload nested too deep to read (max_nesting_depth {self.max_nesting_depth})"
        )

    def decode(self, data: bytes) -> Any:
        try:
            value = json.loads(data)
        except RecursionError:
            # json's parser recurses per level, up to Python's recursion limit (~1000
            # levels less the caller's stack): deeper than any depth worth allowing.
            raise self._too_deep_to_read() from None
        except Exception as exc:
            raise CodecError(f"malformed JSON payload: {exc}") from None
        try:
            return _FromJson(self.max_decoded_size, self.max_nesting_depth).read(value, 0)
        except CodecLimitError:
            raise
        except RecursionError:  # a max_nesting_depth close to Python's recursion limit
            raise self._too_deep_to_read() from None
        except Exception as exc:
            raise CodecError(f"malformed JSON payload: {exc}") from None


CODECS: dict[str, Codec] = {codec.name: codec for codec in (MsgpackCodec(), JsonCodec())}
"""The codecs with the default decoding limits."""
DEFAULT_CODECS = ("msgpack", "json")


def codecs_with_limits(max_decoded_size: int, max_nesting_depth: int) -> dict[str, Codec]:
    """The codecs by name, decoding within these limits (`CODECS` for the defaults)."""
    if (max_decoded_size, max_nesting_depth) == (
        DEFAULT_MAX_DECODED_SIZE,
        DEFAULT_MAX_NESTING_DEPTH,
    ):
        return CODECS
    return {
        codec.name: codec
        for codec in (
            MsgpackCodec(max_decoded_size, max_nesting_depth),
            JsonCodec(max_decoded_size, max_nesting_depth),
        )
    }

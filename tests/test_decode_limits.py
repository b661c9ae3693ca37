"""Decoding limits, sans-IO: what a payload may decode into (max_decoded_size), how deep
it may nest (max_nesting_depth), msgpack's own declared-length checks, and what a CALL's
metadata counts (max_metadata_size). The same limits end to end: test_limits_e2e.py."""

from __future__ import annotations

import contextlib
import json
import random
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest

from gopherpipe_runtime.wire import codec as codec_module
from gopherpipe_runtime.wire.codec import (
    CODECS,
    DEFAULT_MAX_DECODED_SIZE,
    DEFAULT_MAX_NESTING_DEPTH,
    MAX_NESTING_DEPTH,
    CodecError,
    CodecLimitError,
    JsonCodec,
    MsgpackCodec,
    codecs_with_limits,
    nesting_exceeds,
)
from gopherpipe_runtime.wire.envelope import (
    METADATA_ENTRY_OVERHEAD,
    LimitExceeded,
    decode_call,
    decode_status,
    encode_status,
    metadata_size,
)
from gopherpipe_runtime.wire.frames import ProtocolError

MIB = 1024 * 1024
SIZE_MESSAGE = r"more than {} bytes of arrays and maps \(max_decoded_size\)"
DEPTH_MESSAGE = r"more than {} deep \(max_nesting_depth\)"


@contextlib.contextmanager
def allocations() -> Iterator[Callable[[], int]]:
    """The peak of Python allocations while the block runs (tracemalloc)."""
    tracemalloc.start()
    peak = 0
    try:
        yield lambda: peak
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def array32(count: int, item: bytes) -> bytes:
    """A msgpack array of `count` copies of the encoded `item`."""
    return b"\xdd" + count.to_bytes(4, "big") + item * count


def nested(depth: int, innermost: Any = None) -> Any:
    """`depth` lists, one inside the other (`innermost` in the last)."""
    value: Any = [] if innermost is None else [innermost]
    for _ in range(depth - 1):
        value = [value]
    return value


def depth_of(value: Any) -> int:
    """The reference definition: `[]` is 1, `[[1]]` is 2, a scalar 0."""
    if isinstance(value, list):
        return 1 + max((depth_of(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(item) for item in value.values()), default=0)
    return 0


def count_containers(value: Any) -> int:
    if isinstance(value, list):
        return 1 + sum(count_containers(item) for item in value)
    if isinstance(value, dict):
        return 1 + sum(count_containers(item) for item in value.values())
    return 0


def containers_size(value: Any) -> int:
    """What max_decoded_size counts: sys.getsizeof of every list and dict."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            total += sys.getsizeof(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += sys.getsizeof(item)
            stack.extend(item.values())
    return total


# -- msgpack's own checks: a declared length needs the bytes behind it --------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"\xdd\xff\xff\xff\xff",  # array32 of 4 G items
        b"\xdf\xff\xff\xff\xff",  # map32 of 4 G entries
        b"\xdb\xff\xff\xff\xff" + b"a" * 10,  # str32 of 4 GiB
        b"\xc6\xff\xff\xff\xff" + b"a" * 10,  # bin32 of 4 GiB
        b"\x91" * 10 + b"\xdd\x00\x10\x00\x00",  # deep inside: 1 M items declared
    ],
    ids=["array32", "map32", "str32", "bin32", "nested-array"],
)
def test_a_huge_declared_length_with_few_bytes_is_malformed_at_once(payload: bytes) -> None:
    with allocations() as peak, pytest.raises(CodecError, match="malformed msgpack") as info:
        CODECS["msgpack"].decode(payload)
    assert not isinstance(info.value, CodecLimitError)
    assert peak() < 64 * 1024  # refused before allocating anything like the declared size


# -- max_decoded_size -------------------------------------------------------------------


@pytest.mark.parametrize("item", [b"\x90", b"\x80", b"\x81\x00\x80"], ids=["[]", "{}", "{0:{}}"])
def test_many_small_containers_are_refused_by_decoded_size(item: bytes) -> None:
    codec = MsgpackCodec(max_decoded_size=MIB)
    payload = array32(200_000 // len(item), item)  # ~200 KB making 11+ MiB of containers
    with pytest.raises(CodecLimitError, match=SIZE_MESSAGE.format(MIB)):
        codec.decode(payload)


def test_the_default_decoded_size_refuses_a_small_frame_of_empty_maps() -> None:
    # 1.1 MB, far below the default 4 MiB frame, would decode into ~70 MB of dicts.
    payload = array32(1_100_000, b"\x80")
    with pytest.raises(CodecLimitError, match=SIZE_MESSAGE.format(DEFAULT_MAX_DECODED_SIZE)):
        CODECS["msgpack"].decode(payload)


def test_json_many_small_containers_are_refused_by_decoded_size() -> None:
    codec = JsonCodec(max_decoded_size=MIB)
    payload = b"[" + b",".join([b"{}"] * 100_000) + b"]"
    with pytest.raises(CodecLimitError, match=SIZE_MESSAGE.format(MIB)):
        codec.decode(payload)
    pairs = b'{"$m":[' + b",".join([b"[1,[]]"] * 50_000) + b"]}"
    with pytest.raises(CodecLimitError, match=SIZE_MESSAGE.format(MIB)):
        codec.decode(pairs)


@pytest.mark.parametrize("name", ["msgpack", "json"])
def test_values_within_the_decoded_size_pass_whatever_their_shape(name: str) -> None:
    codec = codecs_with_limits(MIB, DEFAULT_MAX_NESTING_DEPTH)[name]
    records = [[i, "ab", [1.5, None], {"k": i}] for i in range(1500)]  # ~0.6 MiB decoded
    blob = [b"x" * (3 * MIB), "y" * MIB]  # strings and bytes are not counted
    for value in (records, blob, list(range(100_000))):
        assert codec.decode(codec.encode(value)) == value
    more = [[i, "ab", [1.5, None], {"k": i}] for i in range(4000)]  # ~1.5 MiB decoded
    with pytest.raises(CodecLimitError):
        codec.decode(codec.encode(more))


def test_decoded_size_counts_the_same_as_sys_getsizeof_on_both_sides_of_the_limit() -> None:
    value = [[i, "x"] for i in range(5000)]
    size = containers_size(msgpack.unpackb(msgpack.packb(value)))
    payload = msgpack.packb(value)
    assert MsgpackCodec(max_decoded_size=size).decode(payload) == value
    with pytest.raises(CodecLimitError):
        MsgpackCodec(max_decoded_size=size - 1).decode(payload)


WORST_SHAPES = [
    [],
    {},
    {0: 0},
    {0: {}},
    [[]] * 1000,
    [{}] * 1000,
    [{0: {}}] * 1000,
    [{0: {0: {}}}] * 1000,
    nested(50, {0: nested(40)}),
    *({i: {} for i in range(size)} for size in range(1, 70)),
    *([{i: 0 for i in range(size)}] * 100 for size in range(1, 70)),
]


@pytest.mark.parametrize("value", WORST_SHAPES, ids=lambda v: repr(v)[:30])
def test_payloads_decoded_uncounted_cannot_break_the_size_limit(value: Any) -> None:
    # Small payloads are decoded without counting: sound only if no payload byte can
    # make more than _MAX_SIZE_PER_BYTE bytes of containers. These are the densest
    # shapes known (a one-entry dict is 224 bytes for a header and a key byte).
    payload = msgpack.packb(value)
    decoded = msgpack.unpackb(payload, strict_map_key=False)
    assert containers_size(decoded) <= codec_module._MAX_SIZE_PER_BYTE * len(payload) / 2


def test_the_decoded_size_check_stops_decoding_once_over() -> None:
    # Over the limit in its first part, malformed at its very end: refused for its size,
    # so decoding stopped there and never built the rest.
    codec = MsgpackCodec(max_decoded_size=MIB)
    payload = array32(400_000, b"\x90")[:-1] + b"\xc1"
    with allocations() as peak, pytest.raises(CodecLimitError, match="max_decoded_size"):
        codec.decode(payload)
    assert peak() < 8 * MIB  # the limit, the array's item slots, and some slack


# -- max_nesting_depth ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["msgpack", "json"])
def test_nesting_up_to_the_limit_passes_and_one_more_is_refused(name: str) -> None:
    codec = CODECS[name]
    limit = DEFAULT_MAX_NESTING_DEPTH
    for value in (nested(limit), nested(limit, 1), {"a": nested(limit - 2, {"b": 2})}):
        assert depth_of(value) == limit
        assert codec.decode(codec.encode(value)) == value
    for value in (nested(limit + 1), nested(limit, [1]), [1, {"a": nested(limit - 1)}]):
        assert depth_of(value) == limit + 1
        with pytest.raises(CodecLimitError, match=DEPTH_MESSAGE.format(limit)):
            codec.decode(codec.encode(value))


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("msgpack", b"\x91" * 100_000 + b"\x90"),
        ("msgpack", b"\x81\x00" * 100_000 + b"\x80"),
        ("msgpack", b"\x91" * 1023 + b"\x90"),  # as deep as msgpack itself goes
        ("json", b"[" * 100_000 + b"]" * 100_000),
        ("json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ],
    ids=["msgpack-arrays", "msgpack-maps", "msgpack-1024", "json-arrays", "json-objects"],
)
def test_nesting_100_000_deep_is_refused_without_recursion_error(name: str, payload: bytes) -> None:
    with pytest.raises(CodecLimitError) as info:
        CODECS[name].decode(payload)
    assert "max_nesting_depth" in str(info.value)


def test_json_nesting_counts_wire_levels_not_json_ones() -> None:
    # A map with an int key travels as {"$m": [[k, v]]}: one level, as in msgpack;
    # bytes travel as {"$b": ...}: none.
    codec = JsonCodec(max_nesting_depth=3)
    value = [{1: [b"x"]}]
    assert depth_of(value) == 3
    assert codec.decode(codec.encode(value)) == value
    with pytest.raises(CodecLimitError):
        codec.decode(codec.encode([{1: [[b"x"]]}]))


def test_json_too_deep_for_the_parser_itself_is_a_limit_error() -> None:
    codec = JsonCodec(max_nesting_depth=MAX_NESTING_DEPTH)
    with pytest.raises(CodecLimitError, match="nested too deep to read"):
        codec.decode(b"[" * 5000 + b"]" * 5000)


def test_a_deep_json_value_is_refused_on_a_thread_with_a_deep_stack() -> None:
    # json's parser shares Python's recursion limit with the caller's frames.
    outcome: list[BaseException] = []

    def deep(levels: int) -> None:
        if levels:
            deep(levels - 1)
            return
        try:
            CODECS["json"].decode(b"[" * 900 + b"]" * 900)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=deep, args=(sys.getrecursionlimit() - 150,))
    thread.start()
    thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], CodecLimitError), outcome


def random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth == 0 or roll < 0.3:
        return rng.choice([None, 1, "s", b"b", 1.5, True])
    if roll < 0.65:
        return [random_value(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}": random_value(rng, depth - 1) for i in range(rng.randint(0, 3))}


def test_both_codecs_and_the_reference_agree_on_depth() -> None:
    rng = random.Random(9)
    codecs = codecs_with_limits(DEFAULT_MAX_DECODED_SIZE, 6)
    for _ in range(2000):
        value = random_value(rng, 9)
        too_deep = depth_of(value) > 6
        assert nesting_exceeds(value, 6) is too_deep
        # Told (at least) how many containers there are, it may stop early, never wrongly.
        containers = count_containers(value)
        assert nesting_exceeds(value, 6, containers) is too_deep
        assert nesting_exceeds(value, 6, containers + rng.randint(0, 5)) is too_deep
        for codec in codecs.values():
            payload = codec.encode(value)
            if too_deep:
                with pytest.raises(CodecLimitError):
                    codec.decode(payload)
            else:
                assert codec.decode(payload) == value


def test_nesting_is_checked_past_many_containers_too() -> None:
    # The check is skipped only when the payload cannot hold more arrays and maps than
    # the limit; records of scalars are checked and pass, a deep one among them is not.
    codec = CODECS["msgpack"]
    records = [[i, "x", 1.5] for i in range(512)]
    assert codec.decode(codec.encode(records)) == records
    with pytest.raises(CodecLimitError):
        codec.decode(codec.encode([*records, nested(DEFAULT_MAX_NESTING_DEPTH)]))


# -- options ----------------------------------------------------------------------------


def test_codecs_with_limits() -> None:
    assert codecs_with_limits(DEFAULT_MAX_DECODED_SIZE, DEFAULT_MAX_NESTING_DEPTH) is CODECS
    custom = codecs_with_limits(MIB, 10)
    assert set(custom) == set(CODECS)
    assert all(
        (c.max_decoded_size, c.max_nesting_depth) == (MIB, 10)  # type: ignore[attr-defined]
        for c in custom.values()
    )
    for size, depth in ((0, 10), (MIB, 1), (MIB, MAX_NESTING_DEPTH + 1), (MIB, True)):
        with pytest.raises(ValueError):
            codecs_with_limits(size, depth)


# -- the envelope: a limit is RESOURCE_EXHAUSTED's LimitExceeded, not a malformed body ---


@pytest.mark.parametrize("name", ["msgpack", "json"])
def test_decode_call_and_status_report_limits_apart_from_malformed_bodies(name: str) -> None:
    codec = CODECS[name]
    deep = codec.encode(["Svc", "m", None, {}, [nested(200)]])
    with pytest.raises(LimitExceeded, match="max_nesting_depth") as info:
        decode_call(codec, deep)
    assert isinstance(info.value, ProtocolError)  # callers that catch ProtocolError still do
    with pytest.raises(LimitExceeded, match="max_nesting_depth"):
        decode_status(codec, encode_status(codec, 0, "", nested(200)))
    with pytest.raises(ProtocolError) as malformed:
        decode_call(codec, b"\xc1" if name == "msgpack" else b"[")
    assert not isinstance(malformed.value, LimitExceeded)


def test_metadata_size_counts_utf8_bytes_and_32_per_entry() -> None:
    assert metadata_size({}) == 0
    assert metadata_size({"": ""}) == METADATA_ENTRY_OVERHEAD
    assert metadata_size({"user": "ann"}) == 7 + METADATA_ENTRY_OVERHEAD
    assert metadata_size({"é": "€"}) == 2 + 3 + METADATA_ENTRY_OVERHEAD
    # JSON can carry a lone surrogate, which has no UTF-8: counted, not a crash.
    body = json.loads('["S","m",null,{"k":"\\ud800"},[]]')
    header = decode_call(CODECS["json"], json.dumps(body).encode())
    assert metadata_size(header.metadata) == 1 + 3 + METADATA_ENTRY_OVERHEAD
    many = {f"k{i}": "" for i in range(300)}  # 300 tiny entries cost 300 * 32 and more
    assert metadata_size(many) > 300 * METADATA_ENTRY_OVERHEAD

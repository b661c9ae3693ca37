"""GopherMap gossip packets: round trips, the HMAC, the replay window, and limits."""

from __future__ import annotations

import contextlib
import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gopherpipe_runtime.discovery.gossip_wire import (
    MAX_PACKET,
    MAX_SERVICES_BYTES,
    Ack,
    Alive,
    AuthenticationFailed,
    Dead,
    GossipWireError,
    IndirectPing,
    MalformedPacket,
    MemberRecord,
    MemberState,
    Nack,
    Ping,
    PushPull,
    ReplayedPacket,
    ReplayGuard,
    ServiceEntry,
    Suspect,
    check_services,
    decode_packet,
    encode_packet,
)

SERVICES = {"Echo": ServiceEntry(("tcp://127.0.0.1:5000",), {"version": "1", "zone": "a"})}
ALL = [
    Ping(1, "b"),
    Ping(0xFFFF_FFFF, ""),
    IndirectPing(2, "c", "10.0.0.3:7946", True),
    Ack(3),
    Nack(4),
    Alive(5, "a", "10.0.0.1:7946", SERVICES),
    Suspect(6, "b", "a"),
    Dead(7, "b", "b"),
]


def test_round_trip_every_message() -> None:
    got = decode_packet(encode_packet(ALL))
    assert got == ALL
    assert got[5].services["Echo"].meta["zone"] == "a"  # type: ignore[union-attr]


def test_push_pull_round_trip() -> None:
    pp = PushPull(
        True,
        (
            MemberRecord("a", "h:1", 3, MemberState.ALIVE, SERVICES),
            MemberRecord("b", "h:2", 0, MemberState.LEFT, {}),
        ),
    )
    assert decode_packet(encode_packet([pp]), max_size=1 << 20) == [pp]


def test_hmac_and_tampering() -> None:
    key = b"secret"
    data = encode_packet(ALL, key=key, now=100.0, nonce=b"12345678")
    assert decode_packet(data, key=key, now=100.0) == ALL
    for i in (0, 3, 10, len(data) // 2, len(data) - 1):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(GossipWireError):
            decode_packet(bytes(bad), key=key, now=100.0)
    with pytest.raises(AuthenticationFailed):
        decode_packet(data, key=b"other", now=100.0)
    with pytest.raises(AuthenticationFailed):
        decode_packet(encode_packet(ALL), key=key)
    with pytest.raises(AuthenticationFailed):
        decode_packet(data)  # a keyed cluster's packet at an unkeyed member


def test_replay_window_and_cache() -> None:
    key = b"k"
    guard = ReplayGuard(window=30.0)
    data = encode_packet([Ack(1)], key=key, now=1000.0, nonce=b"a" * 8)
    assert decode_packet(data, key=key, now=1001.0, guard=guard) == [Ack(1)]
    with pytest.raises(ReplayedPacket):
        decode_packet(data, key=key, now=1002.0, guard=guard)
    other = encode_packet([Ack(1)], key=key, now=1000.0, nonce=b"b" * 8)
    assert decode_packet(other, key=key, now=1002.0, guard=guard) == [Ack(1)]
    for now in (1031.0, 969.0):  # too old, too far in the future
        with pytest.raises(ReplayedPacket):
            decode_packet(
                encode_packet([Ack(2)], key=key, now=1000.0, nonce=bytes([int(now) % 256]) * 8),
                key=key,
                now=now,
                guard=ReplayGuard(),
            )


def test_replay_cache_is_bounded_and_stays_safe() -> None:
    guard = ReplayGuard(window=30.0, max_entries=100)
    tags = [random.Random(i).randbytes(32) for i in range(300)]
    for i, tag in enumerate(tags):
        assert guard.accept(1000 + i, tag, 1.0)
    assert len(guard) <= 100
    # Forgotten tags are not accepted again: the floor rose past them.
    assert not guard.accept(1000, tags[0], 1.0)
    assert not guard.accept(1299, tags[299], 1.0)


@pytest.mark.parametrize(
    "wire",
    [
        [[1, -1, "b"]],
        [[1, 1 << 32, "b"]],
        [[1, 1]],
        [[5, 1, "", "h:1", {}]],
        [[5, 1, "a" * 129, "h:1", {}]],
        [[5, 1, "a", "h:1", {"S": [["x"] * 17, {}]}]],
        [[5, 1, "a", "h:1", {"S": "nope"}]],
        [[5, 1, "a", "h:1", {f"S{i}": [[], {}] for i in range(33)}]],
        [[2, 1, "c", "h:3", "yes"]],
        [[2, 1, "c", "no-port", True]],
        [[2, 1, "c", "h:99999", True]],
        [[5, 1, "a", ":80", {}]],
        [["x"]],
        [[]],
        [7],
        {"not": "a list"},
    ],
)
def test_malformed_messages(wire: object) -> None:
    data = b"GM\x01\x00" + msgpack.packb(wire)
    with pytest.raises(MalformedPacket):
        decode_packet(data)


def test_unknown_types_and_extra_fields_are_skipped() -> None:
    data = b"GM\x01\x00" + msgpack.packb([[99, "future"], [3, 7, "extra"]])
    assert decode_packet(data) == [Ack(7)]


def test_size_limits() -> None:
    with pytest.raises(MalformedPacket):
        decode_packet(b"GM\x01\x00" + b"\x90" + b"\x00" * MAX_PACKET)
    big = {
        f"S{i}": ServiceEntry((f"tcp://host-{i}.example:5000",), {"v": "x" * 30}) for i in range(20)
    }
    with pytest.raises(ValueError, match=str(MAX_SERVICES_BYTES)):
        check_services(big)
    check_services(SERVICES)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=8)
)
_fields = (
    _scalars
    | st.lists(_scalars, max_size=3)
    | st.dictionaries(st.text(max_size=4), _scalars | st.lists(_scalars, max_size=2), max_size=3)
)


@settings(max_examples=100, deadline=None)
@given(
    body=st.lists(
        st.tuples(st.integers(0, 9), st.lists(_fields, max_size=5)).map(lambda t: [t[0], *t[1]]),
        max_size=4,
    )
)
def test_any_msgpack_body_decodes_or_is_refused(body: list[object]) -> None:
    data = b"GM\x01\x00" + msgpack.packb(body)
    with contextlib.suppress(GossipWireError):
        decode_packet(data)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=1500), keyed=st.booleans())
def test_any_bytes_decode_or_are_refused(data: bytes, keyed: bool) -> None:
    with contextlib.suppress(GossipWireError):
        decode_packet(data, key=b"k" if keyed else None, guard=ReplayGuard())

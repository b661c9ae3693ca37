"""GopherMap gossip packets, sans-IO: messages <-> bytes, HMAC and replay window.

The authority is RFC-TCP_LITE.md section 14 ("GopherMap gossip"); this module is
its executable form and, like `frames`, a fuzzing surface: whatever the bytes,
`decode_packet` returns messages or raises a `GossipWireError` (a ValueError).

Map:
- limits (`MAX_PACKET`, `MAX_NAME`, ...) that both encoder and decoder enforce;
- `MemberState`, `ServiceEntry`: shared with swim.py, which re-exports them;
- the messages: `Ping`, `IndirectPing`, `Ack`, `Nack`, `Alive`, `Suspect`, `Dead`,
  `PushPull` (with its `MemberRecord`s);
- `encode_message` (one message) and `assemble_packet` (header, messages, HMAC),
  split so that swim.py can fill a datagram with piggybacked messages by size;
- `decode_packet`; `ReplayGuard`, the receiver's timestamp window + seen-tag cache.

Packet: ``"GM" | version u8 | flags u8 | [ts_ms i64 | nonce 8 bytes] | msgpack
array of messages | [HMAC-SHA256 32 bytes]``; the bracketed parts are there when
flag AUTH is set (a key is configured). Each message is a msgpack array whose
first element is its type number.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

import msgpack

MAGIC = b"GM"
VERSION = 1
FLAG_AUTH = 0x01

MAX_PACKET = 1400
"""Largest datagram we send or accept: under a 1500-byte Ethernet MTU with IP/UDP headers."""
MAX_PUSH_PULL = 8 * 1024 * 1024
"""Largest push-pull state (sent over TCP) we send or accept."""
MAX_PUSH_PULL_MEMBERS = 8192
MAX_NAME = 128
"""Member names, service names, addresses: UTF-8 bytes at most."""
MAX_META = 256
"""A metadata key or value: UTF-8 bytes at most."""
MAX_SERVICES = 32
MAX_SERVICE_ADDRESSES = 16
MAX_META_ENTRIES = 16
MAX_SERVICES_BYTES = 1024
"""A member's encoded services: an ALIVE must fit in one datagram with room to spare."""
MAX_MESSAGES = 256
"""Messages in one datagram (a 1400-byte packet cannot hold more real ones)."""
MAX_SEQ = 0xFFFF_FFFF
MAX_INCARNATION = 2**63 - 1

_HEAD = struct.Struct(">2sBB")
_AUTH = struct.Struct(">q8s")
TAG_SIZE = 32
HEAD_SIZE = _HEAD.size
AUTH_SIZE = _AUTH.size
PACKET_OVERHEAD = HEAD_SIZE + AUTH_SIZE + TAG_SIZE + 3
"""Bytes a packet adds to its messages at most (keyed, array header of 3 bytes)."""


class GossipWireError(ValueError):
    """A packet we cannot accept; `reason` names the counter it is dropped under."""

    reason = "dropped_malformed"


class MalformedPacket(GossipWireError):
    reason = "dropped_malformed"


class AuthenticationFailed(GossipWireError):
    reason = "dropped_auth"


class ReplayedPacket(GossipWireError):
    reason = "dropped_replay"


class MemberState(Enum):
    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """One advertised service: where to call it, and free-form metadata (version, zone)."""

    addresses: tuple[str, ...]
    meta: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


class MsgType:
    PING = 1
    INDIRECT_PING = 2
    ACK = 3
    NACK = 4
    ALIVE = 5
    SUSPECT = 6
    DEAD = 7
    PUSH_PULL = 8


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int
    target: str
    """The name the sender means to probe: a different member now at that address ignores it."""


@dataclass(frozen=True, slots=True)
class IndirectPing:
    seq: int
    target: str
    target_address: str
    nack: bool
    """Answer with a NACK if the target does not ack in time (Lifeguard)."""


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int


@dataclass(frozen=True, slots=True)
class Nack:
    seq: int


@dataclass(frozen=True, slots=True)
class Alive:
    incarnation: int
    name: str
    address: str
    services: Mapping[str, ServiceEntry]


@dataclass(frozen=True, slots=True)
class Suspect:
    incarnation: int
    name: str
    accuser: str


@dataclass(frozen=True, slots=True)
class Dead:
    incarnation: int
    name: str
    accuser: str
    """Equal to `name` for a graceful leave."""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    name: str
    address: str
    incarnation: int
    state: MemberState
    services: Mapping[str, ServiceEntry]


@dataclass(frozen=True, slots=True)
class PushPull:
    join: bool
    members: tuple[MemberRecord, ...]


Message = Ping | IndirectPing | Ack | Nack | Alive | Suspect | Dead | PushPull


# --- encoding -------------------------------------------------------------------------


def _services_wire(services: Mapping[str, ServiceEntry]) -> dict[str, list[Any]]:
    return {
        name: [list(entry.addresses), dict(entry.meta)] for name, entry in sorted(services.items())
    }


def _message_wire(msg: Message) -> list[Any]:
    if isinstance(msg, Ping):
        return [MsgType.PING, msg.seq, msg.target]
    if isinstance(msg, IndirectPing):
        return [MsgType.INDIRECT_PING, msg.seq, msg.target, msg.target_address, msg.nack]
    if isinstance(msg, Ack):
        return [MsgType.ACK, msg.seq]
    if isinstance(msg, Nack):
        return [MsgType.NACK, msg.seq]
    if isinstance(msg, Alive):
        return [
            MsgType.ALIVE,
            msg.incarnation,
            msg.name,
            msg.address,
            _services_wire(msg.services),
        ]
    if isinstance(msg, Suspect):
        return [MsgType.SUSPECT, msg.incarnation, msg.name, msg.accuser]
    if isinstance(msg, Dead):
        return [MsgType.DEAD, msg.incarnation, msg.name, msg.accuser]
    return [
        MsgType.PUSH_PULL,
        msg.join,
        [
            [r.name, r.address, r.incarnation, r.state.value, _services_wire(r.services)]
            for r in msg.members
        ],
    ]


def encode_message(msg: Message) -> bytes:
    """One message's msgpack bytes, as it sits inside a packet's array."""
    out: bytes = msgpack.packb(_message_wire(msg), use_bin_type=True)
    return out


def encoded_services_size(services: Mapping[str, ServiceEntry]) -> int:
    """Bytes `services` take in an ALIVE (checked against `MAX_SERVICES_BYTES`)."""
    return len(msgpack.packb(_services_wire(services), use_bin_type=True))


def check_services(services: Mapping[str, ServiceEntry]) -> None:
    """Raise ValueError if `services` break a limit a receiver enforces."""
    _services_from_wire(_services_wire(services))
    if encoded_services_size(services) > MAX_SERVICES_BYTES:
        raise ValueError(f"services encode to more than {MAX_SERVICES_BYTES} bytes")


def check_member(name: str, address: str) -> None:
    """Raise ValueError if a member's name or gossip address would be refused by receivers."""
    _str(name, MAX_NAME, "member name")
    _addr(address, "member address")


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    return b"\xdc" + struct.pack(">H", n)


def assemble_packet(
    messages: Sequence[bytes], *, key: bytes | None = None, now: float = 0.0, nonce: bytes = b""
) -> bytes:
    """A packet from messages already encoded by `encode_message`.

    With `key`, the packet carries `now` (milliseconds) and an 8-byte `nonce` and ends
    with HMAC-SHA256(key, everything before the tag).
    """
    if len(messages) > 0xFFFF:
        raise ValueError("too many messages for one packet")
    body = _array_header(len(messages)) + b"".join(messages)
    if key is None:
        return _HEAD.pack(MAGIC, VERSION, 0) + body
    nonce = (nonce + b"\0" * 8)[:8]
    signed = _HEAD.pack(MAGIC, VERSION, FLAG_AUTH) + _AUTH.pack(int(now * 1000), nonce) + body
    return signed + hmac.new(key, signed, hashlib.sha256).digest()


def encode_packet(
    messages: Sequence[Message], *, key: bytes | None = None, now: float = 0.0, nonce: bytes = b""
) -> bytes:
    return assemble_packet([encode_message(m) for m in messages], key=key, now=now, nonce=nonce)


# --- decoding -------------------------------------------------------------------------


def _int(v: Any, hi: int, what: str) -> int:
    if type(v) is not int or not 0 <= v <= hi:
        raise MalformedPacket(f"{what} is not an integer in 0..{hi}")
    return v


def _str(v: Any, limit: int, what: str, *, empty: bool = False) -> str:
    if type(v) is not str:
        raise MalformedPacket(f"{what} is not a string")
    if (not v and not empty) or len(v.encode("utf-8", "surrogatepass")) > limit:
        raise MalformedPacket(f"{what} is empty or longer than {limit} bytes")
    return v


def _addr(v: Any, what: str) -> str:
    # A gossip address goes straight to a driver's sendto: "host:port" or nothing.
    host, colon, port = _str(v, MAX_NAME, what).rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MalformedPacket(f"{what} is not host:port")
    return v  # type: ignore[no-any-return]


def _bool(v: Any, what: str) -> bool:
    if type(v) is not bool:
        raise MalformedPacket(f"{what} is not a boolean")
    return v


def _services_from_wire(v: Any) -> Mapping[str, ServiceEntry]:
    if type(v) is not dict or len(v) > MAX_SERVICES:
        raise MalformedPacket(f"services is not a map of at most {MAX_SERVICES}")
    out: dict[str, ServiceEntry] = {}
    for name, entry in v.items():
        _str(name, MAX_NAME, "service name")
        if type(entry) is not list or len(entry) < 2:
            raise MalformedPacket("service entry is not [addresses, meta]")
        addresses, meta = entry[0], entry[1]
        if type(addresses) is not list or len(addresses) > MAX_SERVICE_ADDRESSES:
            raise MalformedPacket(f"service addresses: at most {MAX_SERVICE_ADDRESSES}")
        if type(meta) is not dict or len(meta) > MAX_META_ENTRIES:
            raise MalformedPacket(f"service meta: a map of at most {MAX_META_ENTRIES}")
        out[name] = ServiceEntry(
            tuple(_str(a, MAX_NAME, "service address") for a in addresses),
            MappingProxyType(
                {
                    _str(k, MAX_META, "meta key"): _str(val, MAX_META, "meta value", empty=True)
                    for k, val in meta.items()
                }
            ),
        )
    return MappingProxyType(out)


def _fields(v: list[Any], n: int, what: str) -> list[Any]:
    # Extra trailing fields are allowed: a later version may add some (RFC 14.6).
    if len(v) < n:
        raise MalformedPacket(f"{what} has {len(v) - 1} fields, needs {n - 1}")
    return v


def _message_from_wire(v: Any) -> Message | None:
    if type(v) is not list or not v:
        raise MalformedPacket("a message is not a non-empty array")
    t = v[0]
    if t == MsgType.PING:
        _fields(v, 3, "PING")
        return Ping(_int(v[1], MAX_SEQ, "seq"), _str(v[2], MAX_NAME, "target", empty=True))
    if t == MsgType.INDIRECT_PING:
        _fields(v, 5, "INDIRECT_PING")
        return IndirectPing(
            _int(v[1], MAX_SEQ, "seq"),
            _str(v[2], MAX_NAME, "target"),
            _addr(v[3], "target address"),
            _bool(v[4], "nack"),
        )
    if t == MsgType.ACK:
        _fields(v, 2, "ACK")
        return Ack(_int(v[1], MAX_SEQ, "seq"))
    if t == MsgType.NACK:
        _fields(v, 2, "NACK")
        return Nack(_int(v[1], MAX_SEQ, "seq"))
    if t == MsgType.ALIVE:
        _fields(v, 5, "ALIVE")
        return Alive(
            _int(v[1], MAX_INCARNATION, "incarnation"),
            _str(v[2], MAX_NAME, "name"),
            _addr(v[3], "address"),
            _services_from_wire(v[4]),
        )
    if t in (MsgType.SUSPECT, MsgType.DEAD):
        _fields(v, 4, "SUSPECT/DEAD")
        cls = Suspect if t == MsgType.SUSPECT else Dead
        return cls(
            _int(v[1], MAX_INCARNATION, "incarnation"),
            _str(v[2], MAX_NAME, "name"),
            _str(v[3], MAX_NAME, "accuser"),
        )
    if t == MsgType.PUSH_PULL:
        _fields(v, 3, "PUSH_PULL")
        records = v[2]
        if type(records) is not list or len(records) > MAX_PUSH_PULL_MEMBERS:
            raise MalformedPacket(f"PUSH_PULL holds at most {MAX_PUSH_PULL_MEMBERS} members")
        out = []
        for r in records:
            if type(r) is not list or len(r) < 5:
                raise MalformedPacket("a PUSH_PULL member is not a 5-array")
            state = _int(r[3], 3, "state")
            out.append(
                MemberRecord(
                    _str(r[0], MAX_NAME, "name"),
                    _addr(r[1], "address"),
                    _int(r[2], MAX_INCARNATION, "incarnation"),
                    MemberState(state),
                    _services_from_wire(r[4]),
                )
            )
        return PushPull(_bool(v[1], "join"), tuple(out))
    if type(t) is not int:
        raise MalformedPacket("message type is not an integer")
    return None  # an unknown type from a later version: skipped (RFC 14.6)


class ReplayGuard:
    """Rejects keyed packets outside a timestamp window or seen before within it.

    Why a window and a cache rather than per-sender sequence numbers: a member that
    restarts starts its counters again, UDP reorders, and a newcomer has no history
    of anyone; a timestamp needs none of that, only clocks that agree within the
    window (NTP does far better than 30 s). Within the window the HMAC tag of every
    accepted packet is remembered; the cache is bounded, and when it is full the
    oldest tag is forgotten and the window's floor rises past it, so that nothing
    once forgotten can be accepted again.
    """

    def __init__(self, window: float = 30.0, max_entries: int = 65536) -> None:
        self._window_ms = int(window * 1000)
        self._max = max_entries
        self._seen: set[bytes] = set()
        self._order: list[tuple[int, bytes]] = []
        self._floor_ms = -(2**63)

    def __len__(self) -> int:
        return len(self._seen)

    def accept(self, ts_ms: int, tag: bytes, now: float) -> bool:
        now_ms = int(now * 1000)
        while self._order and self._order[0][0] < now_ms - self._window_ms:
            self._seen.discard(heapq.heappop(self._order)[1])
        if abs(ts_ms - now_ms) > self._window_ms or ts_ms <= self._floor_ms:
            return False
        key = tag[:16]
        if key in self._seen:
            return False
        self._seen.add(key)
        heapq.heappush(self._order, (ts_ms, key))
        while len(self._order) > self._max:
            old_ts, old = heapq.heappop(self._order)
            self._seen.discard(old)
            self._floor_ms = max(self._floor_ms, old_ts)
        return True


def decode_packet(
    data: bytes,
    *,
    key: bytes | None = None,
    now: float = 0.0,
    guard: ReplayGuard | None = None,
    max_size: int = MAX_PACKET,
) -> list[Message]:
    """The messages of one packet; raises a `GossipWireError` naming what is wrong.

    With `key`, an unsigned packet, a wrong tag, or (with `guard`) a packet outside
    the replay window or seen before is refused before its body is parsed. Without
    a key, a signed packet is refused too: it belongs to a keyed cluster.
    """
    if len(data) > max_size:
        raise MalformedPacket(f"packet of {len(data)} bytes is over {max_size}")
    if len(data) < HEAD_SIZE:
        raise MalformedPacket("packet shorter than its header")
    magic, version, flags = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise MalformedPacket("not a GopherMap packet (bad magic)")
    if version != VERSION:
        raise MalformedPacket(f"unsupported gossip version {version}")
    authed = bool(flags & FLAG_AUTH)
    start = HEAD_SIZE
    end = len(data)
    if key is not None or authed:
        if key is None:
            raise AuthenticationFailed("signed packet, and no key is configured")
        if not authed:
            raise AuthenticationFailed("unsigned packet, and a key is configured")
        if len(data) < HEAD_SIZE + AUTH_SIZE + TAG_SIZE:
            raise AuthenticationFailed("signed packet too short for its tag")
        end = len(data) - TAG_SIZE
        tag = data[end:]
        if not hmac.compare_digest(tag, hmac.new(key, data[:end], hashlib.sha256).digest()):
            raise AuthenticationFailed("HMAC does not match")
        ts_ms, _nonce = _AUTH.unpack_from(data, HEAD_SIZE)
        if guard is not None and not guard.accept(ts_ms, tag, now):
            raise ReplayedPacket("packet replayed or outside the replay window")
        start = HEAD_SIZE + AUTH_SIZE
    try:
        body = msgpack.unpackb(
            data[start:end],
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=max_size,
            max_bin_len=max_size,
            max_array_len=max(MAX_PUSH_PULL_MEMBERS, MAX_MESSAGES),
            max_map_len=MAX_SERVICES * 2,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises a zoo of types for bad input
        raise MalformedPacket(f"body is not msgpack: {type(exc).__name__}") from None
    if type(body) is not list:
        raise MalformedPacket("body is not an array of messages")
    if len(body) > MAX_MESSAGES:
        raise MalformedPacket(f"more than {MAX_MESSAGES} messages")
    out: list[Message] = []
    for v in body:
        msg = _message_from_wire(v)
        if msg is not None:
            out.append(msg)
    return out

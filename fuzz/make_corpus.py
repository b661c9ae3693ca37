"""Writes the seed corpus, fuzz/corpus/: a few valid inputs per target.

    python fuzz/make_corpus.py

Valid inputs get the fuzzer past the first checks at once (a HELLO that is a map, a
CALL that is a 5-item array, a record with the right number of fields); mutating
them reaches the interesting refusals. Each file is one `targets.dispatch` input, its
first byte the target's index; rerun this after changing a target's input layout.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "fuzz")]

import targets  # noqa: E402

from gopherpipe_runtime.compression import ALGORITHMS, MARK  # noqa: E402
from gopherpipe_runtime.discovery.gossip_wire import (  # noqa: E402
    HEAD_SIZE,
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MemberRecord,
    MemberState,
    Nack,
    Ping,
    PushPull,
    ServiceEntry,
    Suspect,
    encode_packet,
)
from gopherpipe_runtime.flow import Windows  # noqa: E402
from gopherpipe_runtime.wire.codec import CODECS  # noqa: E402
from gopherpipe_runtime.wire.envelope import encode_call, encode_status  # noqa: E402
from gopherpipe_runtime.wire.frames import (  # noqa: E402
    FrameType,
    encode_credit,
    encode_frame,
    encode_goaway,
    encode_stream_frame,
)
from gopherpipe_runtime.wire.handshake import client_hello, server_choose  # noqa: E402

CORPUS = ROOT / "fuzz" / "corpus"
DICTIONARY = ROOT / "fuzz" / "gopherpipe.dict"


def target(name: str) -> bytes:
    return bytes([targets.TARGET_NAMES.index(name)])


def frames_seeds() -> list[bytes]:
    hello = client_hello(("msgpack", "json"), 4 * 1024 * 1024)
    stream = b"".join(
        [
            encode_frame(FrameType.HELLO, hello),
            encode_frame(FrameType.PING, b"12345678"),
            encode_frame(FrameType.CALL, b"\x95\xa3Svc\xa1m\xc0\x80\x90", stream_id=1),
            encode_stream_frame(FrameType.MESSAGE, 3, b"\xa5hello"),
            encode_stream_frame(FrameType.HALF_CLOSE, 3, b""),
            encode_credit(3, 10, 1000),
            encode_frame(FrameType.STATUS, b"\x93\x00\xa0\xc0", stream_id=0xFFFFFFFF),
            encode_goaway(7, 14, "bye"),
            bytes([0x7F, 0, 0, 0, 2]) + b"??",  # unknown type: passed on, not refused
        ]
    )
    limit_16k = targets._LIMITS.index(16 * 1024)
    limit_64 = targets._LIMITS.index(64)
    return [
        target("frames") + bytes([limit_16k, 0]) + stream,
        target("frames") + bytes([limit_16k, 3, 1, 7, 200]) + stream,
        target("frames") + bytes([0x80 | limit_64, 2, 5, 0]) + stream[: len(hello) + 30],
        target("frames") + bytes([limit_64, 1, 3]) + encode_frame(FrameType.PING, b"x" * 60),
    ]


def hello_seeds() -> list[bytes]:
    seeds = []
    for codecs, windows in (
        (("msgpack", "json"), Windows()),
        (("json",), Windows(1, 1, 1)),
        (("msgpack",), Windows(1 << 20, (1 << 32) - 1, (1 << 32) - 1)),
    ):
        hello = client_hello(codecs, 4 * 1024 * 1024, windows)
        seeds.append(target("hello_server") + b"\x00" + hello)
        _, reply = server_choose(hello, ("msgpack", "json"), 1 << 16, windows)
        seeds.append(target("hello_client") + b"\x00" + reply)
    return seeds


def call_seeds() -> list[bytes]:
    seeds = []
    for flag, name in ((0, "msgpack"), (1, "json")):
        codec = CODECS[name]
        for timeout, metadata, args in (
            (None, {}, []),
            (
                1500,
                {"trace": "abc", "$x": "y"},
                [1, -2.5, "s", b"\x00\xff", None, [True], {"k": 1}],
            ),
            (0xFFFFFFFF, {"a": ""}, [{1: [2, 3]}, {"$b": "x"}, [[[]]]]),
        ):
            body = encode_call(codec, "Svc", "method", timeout, metadata, args)
            seeds.append(target("call_body") + bytes([flag]) + body)
        seeds.append(target("call_body") + bytes([flag | 2]) + encode_status(codec, 3, "bad", [1]))
        # Over a compressing connection: plain, and compressed with each algorithm.
        body = encode_call(codec, "Svc", "m", 5, {"k": "v" * 40}, [list(range(300))])
        seeds.append(target("call_body") + bytes([flag | 8]) + body)
        for index, algorithm in enumerate(ALGORITHMS.values()):
            packed = MARK + algorithm.compress(body)
            seeds.append(target("call_body") + bytes([flag | 8 | index << 4]) + packed)
    return seeds


def inflate_seeds() -> list[bytes]:
    seeds = []
    for index, algorithm in enumerate(ALGORITHMS.values()):
        for limit in (100, 4096):
            choice = index | targets._INFLATE_LIMITS.index(limit) << 2
            for plain in (b"", b"gopher" * 30, bytes(range(256))):
                seeds.append(target("inflate") + bytes([choice]) + algorithm.compress(plain))
    return seeds


def gossip_seeds() -> list[bytes]:
    services = {"Echo": ServiceEntry(("tcp://10.0.0.5:5000",), {"version": "1"})}
    messages = [
        Ping(1, "fuzz"),
        IndirectPing(2, "m1", "10.0.0.3:7946", True),
        Ack(3),
        Nack(4),
        Alive(1, "m9", "10.0.0.20:7946", services),
        Suspect(0, "m2", "m1"),
        Dead(0, "m3", "m3"),
    ]
    state = PushPull(True, (MemberRecord("m7", "10.0.0.8:7946", 2, MemberState.ALIVE, services),))
    seeds = [target("gossip") + b"\x00" + encode_packet([m]) for m in messages]
    seeds.append(target("gossip") + b"\x00" + encode_packet(messages))
    seeds.append(target("gossip") + b"\x03" + encode_packet(messages)[HEAD_SIZE:])
    seeds.append(target("gossip") + b"\x04" + encode_packet([state]))
    return seeds


def generated_seeds() -> list[bytes]:
    """Sample values of the fuzz contract's and e2e contracts' records, in wire form."""
    targets.setup()
    import e2e_alltypes as at
    import e2e_alltypes_client as at_client
    import e2e_moretypes as mt
    import e2e_moretypes_client as mt_client
    import fuzz_types as ft
    import fuzz_types_client as ft_client

    ist = timezone(timedelta(hours=5, minutes=30))
    when = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=ist)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    line = ft.Line(ft.Sku("sku-1"), 3, Decimal("19.990"), "sell")
    slot = ft.Slot(when, timedelta(days=-1, seconds=5), "here")
    order = ft.Order(
        ident,
        datetime(2024, 1, 1, 12, 0),
        [line, ft.Line(ft.Sku(""), -1, Decimal("-0"))],
        date(2024, 12, 31),
        (slot,),
        {"note": "n", "at": time(1, 2, 3, tzinfo=UTC)},
        {"k": [None, line]},
    )
    hashed = ft.Hashed(
        amounts={Decimal("1.5"), Decimal("NaN"), Decimal("-Infinity"), Decimal("1E+3")},
        ids=frozenset({ident}),
        by_amount={Decimal("0.00"): 1},
        by_pair={(Decimal("2"), date(2000, 1, 1)): "x"},
        by_when={when: time(12, 30, 0, 5)},
        by_span={timedelta(microseconds=1): ft.Level.HIGH},
        by_id_side={(ident, "buy")},
        by_level={ft.Level.LOW: ft.Tag.BLUE},
        by_tag={ft.Tag.RED: [ft.Kind.A, ft.Kind.B]},
        by_odd={1: 0.5, "1": -0.0, -7: float("inf")},
        by_bytes={b"\x00": True},
        by_float={float("nan"): None, 2.5: 2**63},
        by_flag={False: b""},
    )
    everything = at.Everything(
        n=-(2**63),
        f=1e308,
        s="é",
        b=b"\xff",
        flag=True,
        nothing=None,
        items=[1, 2],
        points={"p": at.Point(1.0, -2.0)},
        pair=(1, "a"),
        many=(0.5,),
        unique={3},
        maybe=None,
        maybe_too="x",
        nested=[{"k": [at.Inner("i", {"t"}, at.Color.GREEN)]}],
        by_int={2**64 - 1: "max"},
        by_color={at.Color.RED: 1},
        by_pair={(1, 2): "p"},
        shape=at.Shape.SQUARE,
        inner=at.Inner("j", set()),
    )
    dated = mt.Dated(
        when=when,
        day=date(1, 1, 1),
        clock=time(23, 59, 59, 999999),
        span=timedelta(days=999999999),
        amount=Decimal("sNaN"),
        id=ident,
        by_day={date(9999, 12, 31): Decimal("-1E-7")},
        spans={timedelta(0): "zero"},
    )
    samples: list[tuple[str, Any]] = [
        ("fuzz_types._dec_Order", ft_client._enc_Order(order, "")),
        ("fuzz_types._dec_Hashed", ft_client._enc_Hashed(hashed, "")),
        ("fuzz_types._dec_Slot", ft_client._enc_Slot(slot, "")),
        ("fuzz_types.server._FuzzTypes_odd_args", [True, "b", [1, None]]),
        ("fuzz_types.server._FuzzTypes_hashed_args", [ft_client._enc_Hashed(hashed, "")]),
        ("fuzz_types.server._FuzzTypes_place_args", [ft_client._enc_Order(order, ""), True]),
        ("e2e_alltypes._dec_Everything", at_client._enc_Everything(everything, "")),
        ("e2e_moretypes._dec_Dated", mt_client._enc_Dated(dated, "")),
    ]
    names = targets.converter_names()
    seeds = []
    for name, wire in samples:
        for flag, codec in ((0, "msgpack"), (1, "json")):
            payload = CODECS[codec].encode(wire)
            seeds.append(target("generated") + bytes([names.index(name), flag]) + payload)
    return seeds


def dictionary() -> list[bytes]:
    """libFuzzer dictionary entries: every token of `targets.TOKENS` as msgpack and as a
    JSON string, and the edge numbers in msgpack, so that mutations splice whole values
    (a "sNaN" where a "NaN" was, 2.0 where 2 was) instead of hoping to type them."""
    targets.setup()
    entries = []
    for token in targets.TOKENS:
        entries += [msgpack.packb(token), json.dumps(token).encode()]
    for number in [*targets._EDGE_INTS, *targets._EDGE_FLOATS, -1, -(2**31)]:
        entries.append(msgpack.packb(number))
    entries += [b"\x91" * 64, b"\xdc\xff\xff", b"\xdd\xff\xff\xff\xff", b"[" * 64]
    return list(dict.fromkeys(entries))


def _quote(entry: bytes) -> str:
    return "".join(
        chr(b) if 0x20 <= b < 0x7F and chr(b) not in '"\\' else f"\\x{b:02x}" for b in entry
    )


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.iterdir():
        old.unlink()
    seeds = frames_seeds() + hello_seeds() + call_seeds() + generated_seeds() + inflate_seeds()
    seeds += gossip_seeds()
    for seed in seeds:
        name = targets.TARGET_NAMES[seed[0]]
        (CORPUS / f"{name}-{hashlib.sha1(seed).hexdigest()[:12]}").write_bytes(seed)
    print(f"wrote {len(seeds)} seeds to {CORPUS.relative_to(ROOT)}")
    entries = dictionary()
    lines = ["# libFuzzer dictionary, written by fuzz/make_corpus.py: do not edit."]
    lines += [f'"{_quote(entry)}"' for entry in entries]
    DICTIONARY.write_text("\n".join(lines) + "\n", encoding="ascii")
    print(f"wrote {len(entries)} entries to {DICTIONARY.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""The GopherMap driver in this process, over real sockets on 127.0.0.1: joining,
the push-pull connection's bounds, bad input, watching, and gophermap:// resolvers."""

from __future__ import annotations

import math
import secrets
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import wait_until
from gophermap_harness import FAST

from gopherpipe_runtime.discovery import GopherMap
from gopherpipe_runtime.discovery.gophermap import (
    ERROR,
    KEY_FILE_ENV,
    PULL,
    PUSH,
    load_key,
    parse_gophermap_address,
    pull_members,
    resolver_for_address,
    split_host_port,
)
from gopherpipe_runtime.discovery.swim import MemberState, ServiceEntry, SwimConfig
from gopherpipe_runtime.resolver import resolver_for

CONFIG = SwimConfig(**FAST)


def _gmap(**options: object) -> GopherMap:
    options.setdefault("config", CONFIG)
    return GopherMap(**options)  # type: ignore[arg-type]


@pytest.fixture
def pair() -> Iterator[tuple[GopherMap, GopherMap]]:
    a = _gmap(name="a").start()
    b = _gmap(name="b", seeds=[a.address]).start()
    try:
        assert b.wait_joined(10)
        yield a, b
    finally:
        b.stop()
        a.stop()


def _connect(gmap: GopherMap) -> socket.socket:
    sock = socket.create_connection(split_host_port(gmap.address), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _gophermap_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("gophermap-")]


def test_udp_and_tcp_share_one_port_and_one_thread_runs_everything(
    pair: tuple[GopherMap, GopherMap],
) -> None:
    a, _ = pair
    before = _gophermap_threads()
    assert len(before) == 2  # one per GopherMap, however many members and connections
    with _gmap(name="solo") as gmap:
        host, port = split_host_port(gmap.address)
        assert host == "127.0.0.1" and port > 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(OSError):
            udp.bind((host, port))  # taken by the gossip socket
        assert gmap.wait_joined(0)  # no seeds: a cluster of one
        assert [m.name for m in gmap.members()] == ["solo"]
        assert sorted(_gophermap_threads()) == sorted([*before, f"gophermap-{port}"])
        for _ in range(3):  # push-pulls in flight take no thread either
            assert {m.name for m in pull_members(a.address)} == {"a", "b"}
        assert len(_gophermap_threads()) == 3
    assert sorted(_gophermap_threads()) == sorted(before)


def test_a_member_retries_its_seed_until_it_answers() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    late_seed = f"127.0.0.1:{port}"
    with _gmap(name="early", seeds=[late_seed], join_backoff=0.05, join_backoff_max=0.2) as early:
        wait_until(lambda: early.stats.get("join_attempts", 0) >= 3, "three join attempts")
        assert not early.wait_joined(0)
        with _gmap(name="seed", bind=late_seed) as seed:
            assert early.wait_joined(10)
            wait_until(
                lambda: {m.name for m in seed.members()} == {"early", "seed"},
                "the seed knows the newcomer",
            )


def test_announce_and_withdraw_reach_the_other_member_and_its_watchers(
    pair: tuple[GopherMap, GopherMap],
) -> None:
    a, b = pair
    seen: list[list[str]] = []
    unwatch = b.watch("Echo", seen.append)
    assert seen == [[]]
    a.announce({"Echo": ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]}, {"zone": "z"})
    wait_until(lambda: seen[-1] == ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"], "announced")
    assert b.resolve("Echo") == seen[-1]
    (member,) = [m for m in b.members() if m.name == "a"]
    assert member.services["Echo"].meta == {"zone": "z"}
    a.withdraw(["Echo"])
    wait_until(lambda: seen[-1] == [], "withdrawn")
    unwatch()
    a.announce({"Echo": ["tcp://127.0.0.1:3"]}, {})
    wait_until(lambda: b.resolve("Echo") == ["tcp://127.0.0.1:3"], "announced again")
    assert seen[-1] == []  # unsubscribed: not called any more


def test_services_given_before_start_are_served_from_the_start(
    pair: tuple[GopherMap, GopherMap],
) -> None:
    a, _ = pair
    c = _gmap(name="c", seeds=[a.address])
    c.announce({"Late": ["tcp://127.0.0.1:9"]}, {})
    with (
        _gmap(
            name="d",
            seeds=[a.address],
            services={"Early": ServiceEntry(("tcp://127.0.0.1:8",), {})},
        ),
        c,
    ):
        wait_until(
            lambda: a.resolve("Early") == ["tcp://127.0.0.1:8"]
            and a.resolve("Late") == ["tcp://127.0.0.1:9"],
            "both resolve at a",
        )


def test_a_failing_watch_callback_does_not_stop_the_loop(
    pair: tuple[GopherMap, GopherMap],
) -> None:
    a, b = pair
    calls: list[object] = []

    def broken(event: object) -> None:
        calls.append(event)
        raise RuntimeError("a bug in user code")

    b.on_event(broken)
    with _gmap(name="c", seeds=[a.address]):
        wait_until(lambda: calls, "the callback ran")
        wait_until(lambda: "c" in {m.name for m in b.members()}, "b still learns")
    assert b.stats["callback_errors"] >= 1


def test_push_pull_refuses_a_huge_length_before_buffering_it(
    pair: tuple[GopherMap, GopherMap],
) -> None:
    a, _ = pair
    with _connect(a) as sock:
        sock.sendall(struct.pack(">BI", PUSH, 0xFFFF_FFFF) + b"x" * 100)
        answer = _read_all(sock)
    assert answer[:1] == bytes([ERROR]) and b"limit" in answer
    assert a.stats["push_pull_too_large"] == 1
    assert {m.name for m in pull_members(a.address)} == {"a", "b"}  # still serving


@pytest.mark.parametrize(
    ("message", "counter"),
    [
        (struct.pack(">BI", PUSH, 5) + b"hello", "push_pull_rejected"),
        (struct.pack(">BI", 0x7F, 0), "push_pull_malformed"),
    ],
    ids=["garbage state", "unknown kind"],
)
def test_push_pull_answers_bad_input_with_an_error_and_counts_it(
    pair: tuple[GopherMap, GopherMap], message: bytes, counter: str
) -> None:
    a, _ = pair
    with _connect(a) as sock:
        sock.sendall(message)
        answer = _read_all(sock)
    assert answer[:1] == bytes([ERROR])
    assert a.stats[counter] == 1
    assert {m.name for m in a.members()} == {"a", "b"}


def test_push_pull_connections_are_bounded_in_number_and_time() -> None:
    with _gmap(name="bounded", push_pull_max_conns=2, push_pull_timeout=0.5) as gmap:
        silent = [_connect(gmap) for _ in range(2)]
        try:
            wait_until(lambda: gmap.stats.get("push_pull_in", 0) == 2, "two accepted")
            with _connect(gmap) as extra:
                assert _read_all(extra) == b""  # closed at once
            wait_until(lambda: gmap.stats.get("push_pull_busy", 0) == 1, "counted as busy")
            for sock in silent:  # the silent ones are closed once their time is up
                assert _read_all(sock) == b""
            assert gmap.stats["push_pull_timeouts"] == 2
        finally:
            for sock in silent:
                sock.close()
        with _connect(gmap) as sock:  # and a new exchange is served
            sock.sendall(struct.pack(">BI", PULL, 0))
            assert _read_all(sock)[:1] == b"\x02"


def test_bad_datagrams_are_dropped_and_counted(pair: tuple[GopherMap, GopherMap]) -> None:
    a, b = pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for datagram in (b"", b"GM", b"\x00" * 2000, b"GM\x01\x00\xc1", secrets.token_bytes(64)):
            udp.sendto(datagram, split_host_port(a.address))
    wait_until(lambda: a.stats["dropped_malformed"] >= 4, "dropped and counted")
    a.announce({"Still": ["tcp://127.0.0.1:1"]}, {})
    wait_until(lambda: b.resolve("Still") == ["tcp://127.0.0.1:1"], "the loop goes on")


def test_stop_leaves_gracefully_and_is_idempotent(pair: tuple[GopherMap, GopherMap]) -> None:
    a, b = pair
    b.stop()
    b.stop()
    wait_until(
        lambda: {m.name: m.state for m in a.members()}.get("b") is MemberState.LEFT, "b left"
    )
    _gmap().stop()  # never started: nothing to do


def test_a_keyed_pair_joins_and_an_unkeyed_member_is_refused() -> None:
    key = secrets.token_bytes(32)
    with (
        _gmap(name="k1", key=key) as k1,
        _gmap(name="k2", key=key, seeds=[k1.address]) as k2,
        _gmap(name="plain", seeds=[k1.address], join_backoff=0.05) as plain,
    ):
        assert k2.wait_joined(10)
        wait_until(lambda: plain.stats.get("join_attempts", 0) >= 2, "the outsider retried")
        assert not plain.wait_joined(0)
        assert {m.name for m in k1.members()} == {"k1", "k2"}
        assert k1.stats["dropped_auth"] >= 1


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        GopherMap(key=b"short")
    with pytest.raises(ValueError, match="advertise"):
        GopherMap(bind="0.0.0.0:0")
    with pytest.raises(ValueError, match="HOST:PORT"):
        GopherMap(seeds=["nowhere"])


def test_key_files_hold_hex_or_raw_bytes(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    (tmp_path / "hex").write_text(f"  {key.hex().upper()}\n")
    (tmp_path / "raw").write_bytes(key)
    (tmp_path / "bad").write_text("0123")
    assert load_key(tmp_path / "hex") == key
    assert load_key(tmp_path / "raw") == key
    with pytest.raises(ValueError, match="64 hex digits"):
        load_key(tmp_path / "bad")


def test_gophermap_addresses_are_parsed() -> None:
    assert parse_gophermap_address("gophermap://Echo") == ("Echo", [])
    assert parse_gophermap_address("gophermap://Echo@127.0.0.1:7946,[::1]:7946") == (
        "Echo",
        ["127.0.0.1:7946", "[::1]:7946"],
    )
    for bad in ("gophermap://", "gophermap://@h:1", "gophermap://Echo@nowhere", "tcp://Echo"):
        with pytest.raises(ValueError):
            parse_gophermap_address(bad)


def test_a_gophermap_address_without_a_seed_needs_the_gophermap_option(
    pair: tuple[GopherMap, GopherMap],
) -> None:
    a, b = pair
    with pytest.raises(ValueError, match=r"pass gophermap=.*gophermap://Echo@HOST:PORT"):
        resolver_for("gophermap://Echo", {})
    with pytest.raises(ValueError, match="use one"):
        resolver_for(f"gophermap://Echo@{a.address}", {"gophermap": b})
    resolver = resolver_for("gophermap://Echo", {"gophermap": b})
    seen: list[list[str]] = []
    resolver.subscribe(seen.append)
    assert resolver.endpoints() == []
    a.announce({"Echo": ["tcp://127.0.0.1:5"]}, {})
    wait_until(lambda: resolver.endpoints() == ["tcp://127.0.0.1:5"], "resolved")
    assert seen == [["tcp://127.0.0.1:5"]]
    resolver.close()
    assert b.wait_joined(0)  # not owned: the GopherMap goes on


def test_a_gophermap_address_with_a_seed_joins_as_a_member_serving_nothing(
    pair: tuple[GopherMap, GopherMap],
) -> None:
    a, _ = pair
    a.announce({"Echo": ["tcp://127.0.0.1:6"]}, {})
    resolver = resolver_for_address(f"gophermap://Echo@{a.address}", {})
    try:
        # The seed answered before the resolver was returned: a first call finds it.
        assert resolver.endpoints() == ["tcp://127.0.0.1:6"]
        own = resolver.gophermap
        assert own.members() and all(not m.services for m in own.members() if m.name == own.name)
        wait_until(lambda: own.name in {m.name for m in a.members()}, "a knows the client")
    finally:
        resolver.close()
    wait_until(
        lambda: {m.name: m.state for m in a.members()}[own.name] is MemberState.LEFT,
        "the client's member left when its resolver closed",
    )


def test_a_seeded_gophermap_address_reads_a_keyed_clusters_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = secrets.token_bytes(32)
    (tmp_path / "cluster.key").write_text(key.hex())
    with _gmap(name="keyed", key=key) as seed:
        seed.announce({"Echo": ["tcp://127.0.0.1:7"]}, {})
        monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "cluster.key"))
        resolver = resolver_for_address(f"gophermap://Echo@{seed.address}", {})
        try:
            assert resolver.endpoints() == ["tcp://127.0.0.1:7"]
        finally:
            resolver.close()


def test_a_keyed_member_answers_a_state_it_cannot_authenticate_with_an_error_only() -> None:
    from gopherpipe_runtime.discovery.swim import Membership

    with _gmap(name="keyed", key=secrets.token_bytes(32)) as keyed:
        for key in (None, secrets.token_bytes(32)):
            stranger = Membership("stranger", "127.0.0.1:9", now=time.time(), key=key)
            state = stranger.push_pull_state()
            with _connect(keyed) as sock:
                sock.sendall(struct.pack(">BI", PUSH, len(state)) + state)
                answer = _read_all(sock)
            assert answer[:1] == bytes([ERROR]) and b"refused" in answer  # never our STATE
        assert keyed.stats["dropped_auth"] == 2
        assert [m.name for m in keyed.members()] == ["keyed"]


def test_services_beyond_the_gossip_limits_are_refused_whole() -> None:
    with _gmap(name="big") as gmap:
        gmap.announce({"Echo": ["tcp://127.0.0.1:1"]}, {})
        too_many = {f"S{i}": [f"tcp://127.0.0.1:{i}"] for i in range(100)}
        with pytest.raises(ValueError):
            gmap.announce(too_many, {})
        assert gmap.resolve("Echo") == ["tcp://127.0.0.1:1"]
        assert gmap.resolve("S1") == []


def test_a_wildcard_bind_advertises_the_given_host_with_the_bound_port() -> None:
    with _gmap(name="wild", bind="0.0.0.0:0", advertise="127.0.0.1:0") as wild:
        host, port = split_host_port(wild.address)
        assert host == "127.0.0.1" and port > 0
        with _gmap(name="peer", seeds=[wild.address]) as peer:
            assert peer.wait_joined(10)
            wait_until(lambda: len(wild.members()) == 2, "the peer reached the wildcard member")


def test_a_name_the_gossip_cannot_carry_fails_start_and_leaves_nothing_running() -> None:
    threads = threading.active_count()
    gmap = _gmap(name="x" * 500)
    with pytest.raises(ValueError):
        gmap.start()
    assert threading.active_count() == threads
    with pytest.raises(RuntimeError, match="not started"):
        _ = gmap.address


def test_a_seed_may_be_a_host_name(pair: tuple[GopherMap, GopherMap]) -> None:
    a, _ = pair
    port = split_host_port(a.address)[1]
    with _gmap(name="named", seeds=[f"localhost:{port}"]) as named:
        assert named.wait_joined(10)
        wait_until(lambda: {m.name for m in named.members()} == {"a", "b", "named"}, "joined")


def test_a_pulled_keyed_state_must_be_fresh_and_signed_with_our_key() -> None:
    from gopherpipe_runtime.discovery.gophermap import _decode_state
    from gopherpipe_runtime.discovery.swim import Membership

    key = secrets.token_bytes(32)
    member = Membership("m", "127.0.0.1:9", now=time.time(), key=key)
    assert [m.name for m in _decode_state(member.push_pull_state(now=time.time()), key)] == ["m"]
    with pytest.raises(ValueError, match="replay"):
        _decode_state(member.push_pull_state(now=time.time() - 100), key)
    with pytest.raises(ValueError, match="HMAC"):
        _decode_state(member.push_pull_state(now=time.time()), secrets.token_bytes(32))


def test_the_loop_waits_for_sockets_when_the_state_machine_has_no_timer() -> None:
    with _gmap(name="idle") as gmap:
        assert gmap._membership is not None
        gmap._membership.next_deadline = lambda: math.inf  # type: ignore[method-assign]
        for _ in range(3):
            assert [m.name for m in pull_members(gmap.address)] == ["idle"]
        assert gmap.stats.get("loop_errors", 0) == 0

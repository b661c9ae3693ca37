"""The sans-IO SWIM/Lifeguard state machine, several members in memory on virtual time."""

from __future__ import annotations

import math
import random

import pytest
from swim_net import FAST, Net

from gopherpipe_runtime.discovery.swim import (
    Membership,
    MemberState,
    ServiceEntry,
    SwimConfig,
)


def cluster(n: int, **kw: object) -> Net:
    net = Net(**kw)  # type: ignore[arg-type]
    seed = net.add("m0").address
    for i in range(1, n):
        net.add(f"m{i}", join=seed)
    assert net.run_until(net.converged, 10.0), "cluster did not converge"
    return net


def test_join_through_one_seed_converges() -> None:
    net = cluster(5)
    for m in net.up():
        assert len(m.members()) == 5
    joins = [e.member.name for e in net.events["m0"] if e.kind == "join"]
    assert sorted(joins) == ["m1", "m2", "m3", "m4"]


def test_services_resolve_and_updates_spread() -> None:
    net = Net()
    seed = net.add("a", services={"Echo": ServiceEntry(("tcp://h:1",), {"version": "1"})})
    b = net.add("b", join=seed.address)
    c = net.add("c", join=seed.address)
    assert net.run_until(lambda: c.resolve("Echo") == ["tcp://h:1"], 5.0)
    b.set_services({"Echo": ServiceEntry(("tcp://h:2",))}, net.now)
    net.pump()
    assert net.run_until(lambda: c.resolve("Echo") == ["tcp://h:1", "tcp://h:2"], 5.0)
    assert any(e.kind == "update" and e.member.name == "b" for e in net.events["c"])
    assert c.resolve("Nope") == []


def test_killed_member_is_declared_dead_by_all() -> None:
    net = cluster(5)
    victim = net.members[sorted(net.members)[2]]
    net.down.add(victim.address)
    others = net.up()
    start = net.now
    # n=5: suspicion min = 4 * 1 * 0.1 s = 0.4 s, max = 2.4 s; one walk is 4 periods.
    bound = 4 * 0.1 + 0.1 + 2.4 + 1.0
    assert net.run_until(lambda: net.all_see(victim.name, MemberState.DEAD, others), bound)
    assert net.now - start <= bound
    for m in others:
        kinds = [e.kind for e in net.events[m.name] if e.member.name == victim.name]
        assert "dead" in kinds
    # Resolution drops it at once; the record itself is reclaimed later.
    assert net.run_until(lambda: all(m.member(victim.name) is None for m in others), 5.0)


def test_paused_member_is_suspected_then_refutes_and_stays() -> None:
    net = cluster(5, seed=3)
    sleeper = net.members[sorted(net.members)[1]]
    inc = sleeper.incarnation
    net.down.add(sleeper.address)
    others = net.up()
    assert net.run_until(
        lambda: any(net.state_of(m, sleeper.name) is MemberState.SUSPECT for m in others), 2.0
    )
    net.down.discard(sleeper.address)
    assert net.run_until(
        lambda: net.all_see(sleeper.name, MemberState.ALIVE)
        and all(m.member(sleeper.name).incarnation > inc for m in others),  # type: ignore[union-attr]
        3.0,
    )
    assert sleeper.incarnation > inc
    assert sleeper.stats["refutations"] >= 1
    net.run_for(3.0)
    assert net.all_see(sleeper.name, MemberState.ALIVE)
    for m in others:
        assert "dead" not in [e.kind for e in net.events[m.name] if e.member.name == sleeper.name]


def test_graceful_leave() -> None:
    net = cluster(4)
    leaver = net.members[sorted(net.members)[3]]
    leaver.leave(net.now)
    net.pump()
    assert net.run_until(lambda: net.all_see(leaver.name, MemberState.LEFT), 1.0)
    for m in net.up():
        if m is not leaver:
            assert any(e.kind == "leave" for e in net.events[m.name])


def test_keyed_cluster_drops_strangers_and_replays() -> None:
    net = Net(key=b"k" * 32)
    a = net.add("a")
    b = net.add("b", join=a.address)
    assert net.run_until(net.converged, 5.0)
    net.run_for(0.5)
    assert a.stats["dropped_auth"] == a.stats["dropped_replay"] == 0
    # Another cluster's key: refused.
    stranger = Membership("y", "10.9.9.9:1", now=net.now, key=b"other-key")
    with pytest.raises(ValueError):
        a.merge_push_pull(stranger.push_pull_state(), net.now)
    assert a.stats["dropped_auth"] == 1
    # A recorded datagram from b, replayed to a, is refused.
    src, dest, data = next((s, d, p) for s, d, p in reversed(net.sniffed) if s == b.address)
    target = net.members[dest]
    before = target.stats["dropped_replay"]
    target.receive(data, src, net.now)
    assert target.stats["dropped_replay"] == before + 1
    # And a stale one (outside the replay window) too.
    target.receive(data, src, net.now + 60.0)
    assert target.stats["dropped_replay"] == before + 2
    unsigned = Membership("z", "10.9.9.8:1", now=net.now)
    a.receive(unsigned.push_pull_state(), "10.9.9.8:1", net.now)
    assert a.stats["dropped_auth"] == 2


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"GM",
        b"XX\x01\x00\x90",
        b"GM\x09\x00\x90",
        b"GM\x01\x00\xc1",
        b"GM\x01\x00" + b"\x91" * 1300,
        b"GM\x01\x00\x91\x92\x01\xcf" + b"\xff" * 8,
        b"GM\x01\x00\x91\x93\x01\x01\x02",
        b"GM\x01\x00" + b"\x00" * 2000,
    ],
)
def test_malformed_datagrams_are_dropped_and_counted(junk: bytes) -> None:
    m = Membership("a", "10.0.0.1:1", now=0.0)
    m.receive(junk, "10.0.0.2:1", 0.0)
    assert m.stats["dropped_malformed"] == 1
    assert [i.name for i in m.members()] == ["a"]


def test_random_bytes_never_raise() -> None:
    rng = random.Random(7)
    m = Membership("a", "10.0.0.1:1", now=0.0, rng=random.Random(1))
    for i in range(3000):
        n = rng.randrange(0, 64)
        data = b"GM\x01\x00" + bytes(rng.randrange(256) for _ in range(n))
        m.receive(data, "10.0.0.2:1", float(i))
    s = m.stats
    assert s["received"] == 3000


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        SwimConfig(probe_interval=0)
    with pytest.raises(ValueError):
        SwimConfig(probe_timeout=2.0, probe_interval=1.0)
    with pytest.raises(ValueError):
        Membership("a", "h:1", now=0.0, services={"S": ServiceEntry(("x" * 200,))})
    with pytest.raises(ValueError):
        Membership("a", "no-port", now=0.0)


def test_next_deadline_and_tick_are_consistent() -> None:
    m = Membership("a", "10.0.0.1:1", now=100.0, config=FAST)
    d = m.next_deadline()
    assert 100.0 <= d <= 100.0 + FAST.probe_interval
    m.tick(d)
    assert m.next_deadline() > d
    assert not math.isinf(m.next_deadline())

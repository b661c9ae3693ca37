"""SWIM's probe walk and Lifeguard's pieces, one Membership at a time, by its packets."""

from __future__ import annotations

import random
from dataclasses import replace

from swim_net import FAST

from gopherpipe_runtime.discovery.gossip_wire import (
    MAX_PACKET,
    Ack,
    Alive,
    IndirectPing,
    Nack,
    Ping,
    Suspect,
    decode_packet,
    encode_packet,
)
from gopherpipe_runtime.discovery.swim import (
    MemberInfo,
    Membership,
    MemberState,
    ServiceEntry,
)


def lone(n_others: int, **config: object) -> Membership:
    m = Membership(
        "me",
        "10.0.0.1:1",
        now=0.0,
        config=replace(FAST, **config),  # type: ignore[arg-type]
        rng=random.Random(5),
    )
    m.preload(
        [MemberInfo(f"p{i}", f"10.0.1.{i}:1", 0, MemberState.ALIVE, {}) for i in range(n_others)],
        0.0,
    )
    return m


def sent(m: Membership) -> list[tuple[str, list[object]]]:
    return [(dest, decode_packet(data)) for dest, data in m.take_outgoing()]


def tick_answering_pings(m: Membership, t: float) -> list[Ping]:
    """Tick at `t`, every member we ping answering at once."""
    m.tick(t)
    pings = []
    for dest, msgs in sent(m):
        for msg in msgs:
            if isinstance(msg, Ping):
                pings.append(msg)
                m.receive(encode_packet([Ack(msg.seq)]), dest, t + 0.001)
    return pings


def run_to_first_probe(m: Membership) -> tuple[float, str, Ping]:
    while True:
        t = m.next_deadline()
        m.tick(t)
        for dest, msgs in sent(m):
            for msg in msgs:
                if isinstance(msg, Ping):
                    return t, dest, msg


def test_every_member_is_probed_once_per_walk() -> None:
    m = lone(9, lifeguard=False)
    targets: list[str] = []
    while len(targets) < 18:
        targets += [p.target for p in tick_answering_pings(m, m.next_deadline())]
    assert sorted(targets[:9]) == [f"p{i}" for i in range(9)]
    assert sorted(targets[9:18]) == [f"p{i}" for i in range(9)]


def test_failed_probe_without_nacks_raises_local_health_and_slows_probing() -> None:
    m = lone(9)
    t0, _dest, _ping = run_to_first_probe(m)
    assert m.health_score == 0
    m.tick(t0 + FAST.probe_timeout)  # no ack: indirect probes to 3 helpers
    helpers = [d for d, msgs in sent(m) if any(isinstance(x, IndirectPing) for x in msgs)]
    assert len(helpers) == 3
    t1 = t0 + FAST.probe_interval
    m.tick(t1)  # no ack, no nack: 3 missed nacks; the next probe starts
    assert m.health_score == 3
    assert m.stats["suspicions"] == 1
    assert any(isinstance(x, Ping) for _d, msgs in sent(m) for x in msgs)
    # The probe after that waits (LHM + 1) = 4 periods, not one.
    pings_at = []
    while m.next_deadline() <= t1 + 4 * FAST.probe_interval + 1e-6:
        t = m.next_deadline()
        m.tick(t)
        pings_at += [t for _d, msgs in sent(m) for x in msgs if isinstance(x, Ping)]
    assert pings_at and abs(pings_at[0] - (t1 + 4 * FAST.probe_interval)) < 1e-6


def test_nacks_from_helpers_spare_local_health() -> None:
    m = lone(9)
    t0, _dest, ping = run_to_first_probe(m)
    m.tick(t0 + FAST.probe_timeout)
    helpers = [d for d, msgs in sent(m) if any(isinstance(x, IndirectPing) for x in msgs)]
    for h in helpers:
        m.receive(encode_packet([Nack(ping.seq)]), h, t0 + FAST.probe_timeout + 0.01)
    m.tick(t0 + FAST.probe_interval)
    assert m.health_score == 0  # the helpers are fine and say so: the target is the problem


def test_direct_ack_lowers_local_health() -> None:
    m = lone(3)
    t0, dest, ping = run_to_first_probe(m)
    m.tick(t0 + FAST.probe_interval)  # failed: LHM 3 (3 helpers... only 2 others here)
    raised = m.health_score
    assert raised >= 1
    t1, dest, ping = run_to_first_probe(m)
    m.receive(encode_packet([Ack(ping.seq)]), dest, t1 + 0.001)
    assert m.health_score == raised - 1


def test_plain_swim_keeps_no_local_health() -> None:
    m = lone(9, lifeguard=False)
    t0, _dest, _ping = run_to_first_probe(m)
    m.tick(t0 + FAST.probe_interval)
    assert m.health_score == 0
    m.tick(t0 + FAST.probe_timeout)
    assert not any(isinstance(x, IndirectPing) and x.nack for _d, msgs in sent(m) for x in msgs)


def test_indirect_prober_nacks_when_the_target_is_silent() -> None:
    m = lone(3)
    m.receive(encode_packet([IndirectPing(77, "p1", "10.0.1.1:1", True)]), "10.0.1.2:1", 1.0)
    out = sent(m)
    assert any(d == "10.0.1.1:1" and isinstance(x, Ping) for d, msgs in out for x in msgs)
    m.tick(1.0 + FAST.probe_timeout * 0.8)
    out = sent(m)
    assert ("10.0.1.2:1", Nack(77)) in [(d, x) for d, msgs in out for x in msgs]


def test_indirect_prober_relays_the_ack() -> None:
    m = lone(3)
    m.receive(encode_packet([IndirectPing(77, "p1", "10.0.1.1:1", True)]), "10.0.1.2:1", 1.0)
    ping = next(x for _d, msgs in sent(m) for x in msgs if isinstance(x, Ping))
    m.receive(encode_packet([Ack(ping.seq)]), "10.0.1.1:1", 1.01)
    out = [(d, x) for d, msgs in sent(m) for x in msgs]
    assert ("10.0.1.2:1", Ack(77)) in out
    m.tick(1.0 + FAST.probe_interval)
    assert Nack(77) not in [x for _d, msgs in sent(m) for x in msgs]


def _suspicion_lifetime(lifeguard: bool, confirmations: int) -> float:
    m = lone(9, lifeguard=lifeguard)
    m.take_outgoing()
    t0 = 0.001
    m.receive(encode_packet([Suspect(0, "p5", "p1")]), "10.0.1.1:1", t0)
    for i in range(confirmations):
        m.receive(encode_packet([Suspect(0, "p5", f"p{2 + i}")]), "10.0.1.2:1", t0 + 0.01)
    t = t0
    while m.member("p5").state is MemberState.SUSPECT:  # type: ignore[union-attr]
        t = m.next_deadline()
        tick_answering_pings(m, t)  # so that our own probes add no confirmation
    assert m.member("p5").state is MemberState.DEAD  # type: ignore[union-attr]
    return t - t0


def test_suspicion_timeout_shrinks_with_confirmations() -> None:
    s_min = FAST.suspicion_mult * 1.0 * FAST.probe_interval  # n = 10: log10 = 1
    s_max = s_min * FAST.suspicion_max_timeout_mult
    alone = _suspicion_lifetime(True, 0)
    one = _suspicion_lifetime(True, 1)
    two = _suspicion_lifetime(True, 2)
    assert abs(alone - s_max) < 0.05
    assert s_min < one < alone
    assert abs(two - s_min) < 0.05
    # The original accuser repeating itself is no confirmation; plain SWIM is fixed.
    assert abs(_suspicion_lifetime(False, 0) - s_min) < 0.05


def test_buddy_system_tells_the_suspect() -> None:
    m = lone(1)
    m.receive(encode_packet([Suspect(0, "p0", "someone")]), "10.0.1.9:1", 0.001)
    m.take_outgoing()
    _t, dest, ping = run_to_first_probe_keep(m)
    assert dest == "10.0.1.0:1"
    assert Suspect(0, "p0", "me") in ping


def run_to_first_probe_keep(m: Membership) -> tuple[float, str, list[object]]:
    while True:
        t = m.next_deadline()
        m.tick(t)
        for dest, msgs in sent(m):
            if any(isinstance(x, Ping) for x in msgs):
                return t, dest, msgs


def test_refutation_raises_incarnation_and_local_health() -> None:
    m = lone(3)
    m.receive(encode_packet([Suspect(0, "me", "p1")]), "10.0.1.1:1", 0.001)
    assert m.incarnation == 1
    assert m.health_score == 1
    m.tick(m.next_deadline())
    alive = [x for _d, msgs in sent(m) for x in msgs if isinstance(x, Alive) and x.name == "me"]
    assert alive and alive[0].incarnation == 1


def test_broadcasts_are_bounded_and_datagrams_fit() -> None:
    m = lone(30, probe_interval=100.0, probe_timeout=50.0)  # no probe failure in the way
    services = {"Svc": ServiceEntry(("tcp://10.9.9.9:5000",), {"version": "1", "zone": "z" * 40})}
    for i in range(60):
        m.receive(
            encode_packet([Alive(1, f"p{i}", f"10.0.2.{i}:1", services)]), "10.0.1.1:1", 0.001
        )
    counts: dict[str, int] = {}
    t = 0.0
    while t < 20.0:
        t = m.next_deadline()
        m.tick(t)
        for _dest, data in m.take_outgoing():
            assert len(data) <= MAX_PACKET
            for x in decode_packet(data):
                if isinstance(x, Alive):
                    counts[x.name] = counts.get(x.name, 0) + 1
    limit = FAST.retransmit_mult * 2  # ceil(log10(n + 1)) = 2 for n = 61
    assert counts and max(counts.values()) <= limit
    assert all(counts.get(f"p{i}", 0) == limit for i in range(30, 60))


def test_periodic_push_pull() -> None:
    m = lone(3)
    assert m.take_push_pull() == []
    m.tick(FAST.push_pull_interval + 0.01)
    got = m.take_push_pull()
    assert len(got) == 1 and got[0].startswith("10.0.1.")


def test_dead_members_are_forgotten_after_reclaim() -> None:
    m = lone(3)
    from gopherpipe_runtime.discovery.gossip_wire import Dead

    m.receive(encode_packet([Dead(0, "p1", "p2")]), "10.0.1.2:1", 0.5)
    assert m.member("p1").state is MemberState.DEAD  # type: ignore[union-attr]
    m.tick(0.5 + FAST.dead_member_reclaim - 0.01)
    assert m.member("p1") is not None
    m.tick(0.5 + FAST.dead_member_reclaim + 0.01)
    assert m.member("p1") is None
    # A stale SUSPECT of a forgotten member does not bring it back.
    m.receive(encode_packet([Suspect(0, "p1", "p2")]), "10.0.1.2:1", 40.0)
    assert m.member("p1") is None


def test_a_member_that_left_stops_probing_and_accusing() -> None:
    m = lone(5)
    t0, _dest, _ping = run_to_first_probe(m)
    m.leave(t0 + 0.01)
    left = [x for _d, msgs in sent(m) for x in msgs]
    assert any(
        getattr(x, "name", None) == "me" and getattr(x, "accuser", None) == "me" for x in left
    )
    while m.next_deadline() < t0 + 5.0:
        m.tick(m.next_deadline())
        assert not any(isinstance(x, Ping) for _d, msgs in sent(m) for x in msgs)
    assert m.stats["suspicions"] == 0
    assert m.member("me").state is MemberState.LEFT  # type: ignore[union-attr]


def test_member_count_is_bounded() -> None:
    m = lone(3, max_members=10)
    for i in range(20):
        m.receive(encode_packet([Alive(0, f"x{i}", f"10.0.3.{i}:1", {})]), "10.0.1.1:1", 0.001)
    assert len(m.members()) == 10
    assert m.stats["dropped_member_limit"] == 14


def test_a_member_in_poor_health_waits_longer_for_the_ack() -> None:
    # Lifeguard scales the probe timeout too, not only the interval: a slow member
    # gives its target (LHM + 1) probe timeouts before asking others.
    m = lone(9)
    t0, _dest, _ping = run_to_first_probe(m)
    m.tick(t0 + FAST.probe_timeout)
    sent(m)
    t1 = t0 + FAST.probe_interval
    m.tick(t1)  # failed, no nacks: LHM 3
    assert m.health_score == 3
    sent(m)
    # This probe was sent at t1; its indirect pings wait 4 probe timeouts.
    m.tick(t1 + 4 * FAST.probe_timeout - 1e-6)
    assert not any(isinstance(x, IndirectPing) for _d, msgs in sent(m) for x in msgs)
    m.tick(t1 + 4 * FAST.probe_timeout)
    assert any(isinstance(x, IndirectPing) for _d, msgs in sent(m) for x in msgs)


def test_an_ack_after_the_indirect_probes_does_not_count_as_health() -> None:
    # Only a direct ack in time is evidence of our own health (as memberlist does it).
    m = lone(9)
    t0, _dest, _ping = run_to_first_probe(m)
    m.tick(t0 + FAST.probe_timeout)
    sent(m)
    t1 = t0 + FAST.probe_interval
    m.tick(t1)  # failed, no nacks: LHM 3; the next probe goes out now
    dest, ping = next((d, x) for d, msgs in sent(m) for x in msgs if isinstance(x, Ping))
    m.tick(t1 + 4 * FAST.probe_timeout)  # indirect probes out
    m.receive(encode_packet([Ack(ping.seq)]), dest, t1 + 4 * FAST.probe_timeout + 0.001)
    assert m.health_score == 3
    # A direct one, in time, lowers it.
    t2 = t1 + 4 * FAST.probe_interval
    m.tick(t2)
    dest, ping = next((d, x) for d, msgs in sent(m) for x in msgs if isinstance(x, Ping))
    m.receive(encode_packet([Ack(ping.seq)]), dest, t2 + 0.001)
    assert m.health_score == 2

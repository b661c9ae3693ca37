"""GopherMap membership: SWIM with Lifeguard, as a sans-IO state machine.

No sockets, threads, clocks or randomness of its own: the driver (gophermap.py,
or bench/gossip_sim.py on virtual time) feeds datagrams to `receive`, calls `tick`
at `next_deadline()`, and sends what `take_outgoing` returns; `now` is always a
parameter and randomness comes from an injected `random.Random`. Packets are
gossip_wire.py's; RFC-TCP_LITE.md section 14 is the specification.

What it does, and where the ideas come from (the code is ours):
- Failure detection (SWIM, Das, Gupta and Motivala 2002): each protocol period,
  ping the next member of a shuffled round-robin list (hashicorp/memberlist's
  walk, which bounds the time until any member is probed); no ack within the
  probe timeout -> ask `indirect_checks` others to ping it (INDIRECT_PING); no ack
  by the end of the period -> suspect it. A suspected member that hears of it
  refutes with a higher incarnation; a suspicion that outlives its timeout makes
  the member dead, and dead/left members are forgotten after `dead_member_reclaim`.
- Lifeguard (Dadgar, Phillips and Currey 2018), when `config.lifeguard`:
  local health (LHM, `health_score`): failed probes without the expected NACKs
  and having to refute raise it, successful direct probes lower it, and the probe
  interval and timeout are scaled by (LHM + 1), so a member that is itself slow
  probes and accuses less; indirect probers NACK when the target stays silent;
  the suspicion timeout starts at its max and shrinks towards its min with each
  independent confirmation (log scale); a SUSPECT is pinged with the suspicion
  attached so that it learns of it at once (the "buddy system").
- Dissemination (SWIM's infection style): state changes are queued as
  broadcasts, one per member (newer replaces older), piggybacked on every packet
  we send (fullest first by fewest transmissions) and sent by gossip every
  `gossip_interval` to `gossip_nodes` random members, each at most
  `retransmit_mult * ceil(log10(n + 1))` times.
- Push-pull: on join and every `push_pull_interval` (longer for large clusters)
  the driver exchanges full states over TCP (`take_push_pull`,
  `push_pull_state`, `merge_push_pull`).
- Keyed clusters: every packet is HMAC-SHA256-signed and carries a timestamp and
  nonce; the receiver checks the tag and a replay window (`ReplayGuard`). With a
  key, `now` is also the packet timestamp, so keyed drivers pass wall-clock time
  (time.time()) and members' clocks must agree within `replay_window`.

Everything is bounded: datagram size (`max_packet`), the member table
(`max_members`), relayed probes, the replay cache, and push-pull state
(gossip_wire's limits). Bad packets are dropped and
counted in `stats`; `receive` never raises for anything a peer can send.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .gossip_wire import (
    MAX_PACKET,
    MAX_PUSH_PULL,
    MAX_PUSH_PULL_MEMBERS,
    PACKET_OVERHEAD,
    Ack,
    Alive,
    Dead,
    GossipWireError,
    IndirectPing,
    MalformedPacket,
    MemberRecord,
    MemberState,
    Message,
    Nack,
    Ping,
    PushPull,
    ReplayGuard,
    ServiceEntry,
    Suspect,
    assemble_packet,
    check_member,
    check_services,
    decode_packet,
    encode_message,
    encode_packet,
)

__all__ = [
    "MemberEvent",
    "MemberInfo",
    "MemberState",
    "Membership",
    "ServiceEntry",
    "SwimConfig",
]

_MAX_RELAYS = 1024
"""INDIRECT_PINGs we relay at once; more are dropped (a flood must not grow memory)."""
_NACK_FRACTION = 0.8
"""A relay NACKs after this fraction of the probe timeout, so the NACK can arrive in time."""


@dataclass(frozen=True, slots=True)
class SwimConfig:
    """Timing and fan-out; defaults suit a LAN, like memberlist's DefaultLANConfig.

    Options:
    - probe_interval (1.0 s): one probe per period (scaled by LHM + 1 under Lifeguard).
    - probe_timeout (0.5 s): wait for a direct ack before indirect probes (scaled too).
    - indirect_checks (3): members asked to ping a silent target.
    - gossip_interval (0.2 s), gossip_nodes (3): dedicated gossip packets.
    - retransmit_mult (4): a broadcast is sent retransmit_mult * ceil(log10(n+1)) times.
    - suspicion_mult (4): suspicion timeout min = suspicion_mult * max(1, log10(n)) * probe_interval.
    - suspicion_max_timeout_mult (6): Lifeguard's max = this * min (no confirmations yet).
    - push_pull_interval (30.0 s): full state sync with one random member.
    - awareness_max_multiplier (8): LHM ranges over 0 .. this - 1.
    - lifeguard (True): False is plain SWIM (fixed suspicion timeout, no LHM, NACK or buddy).
    - dead_member_reclaim (30.0 s): how long dead/left members are kept before removal.
    - replay_window (30.0 s): keyed packets older or newer than this are dropped.
    - max_packet (1400): datagram size limit; piggybacked messages fill what is left.
    - max_members (16384): members known at once; news of more is dropped and counted.
    """

    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    indirect_checks: int = 3
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    retransmit_mult: int = 4
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    push_pull_interval: float = 30.0
    awareness_max_multiplier: int = 8
    lifeguard: bool = True
    dead_member_reclaim: float = 30.0
    replay_window: float = 30.0
    max_packet: int = MAX_PACKET
    max_members: int = 16384

    def __post_init__(self) -> None:
        for name in (
            "probe_interval",
            "probe_timeout",
            "gossip_interval",
            "push_pull_interval",
            "dead_member_reclaim",
            "replay_window",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"SwimConfig.{name} must be > 0")
        if self.probe_timeout > self.probe_interval:
            raise ValueError("SwimConfig.probe_timeout must not exceed probe_interval")
        for name in ("indirect_checks", "gossip_nodes", "retransmit_mult", "suspicion_mult"):
            if getattr(self, name) < 0:
                raise ValueError(f"SwimConfig.{name} must be >= 0")
        if self.suspicion_max_timeout_mult < 1 or self.awareness_max_multiplier < 1:
            raise ValueError("SwimConfig multipliers must be >= 1")
        if self.max_members < 1:
            raise ValueError("SwimConfig.max_members must be >= 1")
        if not 512 <= self.max_packet <= MAX_PACKET:
            raise ValueError(f"SwimConfig.max_packet must be in 512..{MAX_PACKET}")


MemberInfo = MemberRecord
"""A member as this member knows it (`members`, events): the very record push-pull
carries (gossip_wire.py), so the two cannot drift apart."""


@dataclass(frozen=True, slots=True)
class MemberEvent:
    kind: str
    """"join" | "update" | "suspect" | "alive" | "dead" | "leave"."""
    member: MemberInfo


@dataclass(slots=True)
class _Member:
    name: str
    address: str
    incarnation: int
    state: MemberState
    services: Mapping[str, ServiceEntry]
    since: float

    def info(self) -> MemberInfo:
        return MemberInfo(self.name, self.address, self.incarnation, self.state, self.services)


@dataclass(slots=True)
class _Suspicion:
    incarnation: int
    accuser: str
    start: float
    min_timeout: float
    max_timeout: float
    expected: int
    confirmations: set[str]
    deadline: float

    def recompute(self, lifeguard: bool) -> float:
        if not lifeguard or self.expected < 1:
            timeout = self.min_timeout
        else:
            # Lifeguard: each independent accuser is evidence; the log makes the
            # first confirmations count most.
            frac = math.log(len(self.confirmations) + 1) / math.log(self.expected + 1)
            timeout = max(
                self.min_timeout,
                self.max_timeout - (self.max_timeout - self.min_timeout) * frac,
            )
        self.deadline = self.start + timeout
        return self.deadline


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    incarnation: int
    indirect_at: float
    acked: bool = False
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _Relay:
    requester: str
    seq: int
    nack: bool


@dataclass(slots=True)
class _Broadcast:
    data: bytes
    order: int
    transmits: int = 0


_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
_EMPTY: Mapping[str, ServiceEntry] = MappingProxyType({})


def _freeze(services: Mapping[str, ServiceEntry] | None) -> Mapping[str, ServiceEntry]:
    if not services:
        return _EMPTY
    out = {}
    for name, entry in services.items():
        if not isinstance(entry, ServiceEntry):
            raise TypeError(f"service {name!r}: expected a ServiceEntry")
        out[name] = ServiceEntry(tuple(entry.addresses), MappingProxyType(dict(entry.meta)))
    return MappingProxyType(out)


class Membership:
    """One member's view of the cluster; see the module docstring."""

    def __init__(
        self,
        name: str,
        address: str,
        *,
        now: float,
        config: SwimConfig | None = None,
        services: Mapping[str, ServiceEntry] | None = None,
        key: bytes | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config if config is not None else SwimConfig()
        self._key = key
        self._rng = rng if rng is not None else random.Random()
        frozen = _freeze(services)
        check_services(frozen)
        check_member(name, address)
        self.name = name
        self._me = _Member(name, address, 0, MemberState.ALIVE, frozen, now)
        self._members: dict[str, _Member] = {name: self._me}
        # Members to probe and gossip to (ALIVE or SUSPECT, not us): a list for
        # O(1) random choice, and each one's index in it for O(1) removal.
        self._live: list[str] = []
        self._live_index: dict[str, int] = {}
        self._probe_order: list[str] = []
        self._probe_pos = 0
        self._suspicions: dict[str, _Suspicion] = {}
        self._broadcasts: dict[str, _Broadcast] = {}
        self._broadcast_order = 0
        self._timers: list[tuple[float, int, str, Any]] = []
        self._timer_order = 0
        self._seq = self._rng.randrange(1 << 31)
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._awareness = 0
        self._left = False
        self._guard = ReplayGuard(self.config.replay_window)
        self._outgoing: list[tuple[str, bytes]] = []
        # A keyed packet's timestamp: the `now` of the call that sends it.
        self._now = now
        self._push_pull: list[str] = []
        self._events: list[MemberEvent] = []
        self._stats: dict[str, int] = dict.fromkeys(
            (
                "sent",
                "received",
                "bytes_sent",
                "bytes_received",
                "dropped_auth",
                "dropped_replay",
                "dropped_malformed",
                "dropped_misdirected",
                "dropped_relay_full",
                "dropped_member_limit",
                "probes",
                "probe_failures",
                "indirect_probes",
                "nacks_sent",
                "nacks_received",
                "suspicions",
                "refutations",
                "deaths",
                "push_pulls",
            ),
            0,
        )
        self._broadcasts[name] = _Broadcast(encode_message(self._alive_msg()), 0)
        self._schedule(now + self._rng.uniform(0, self.config.probe_interval), "probe")
        self._gossip_at: float | None = None
        self._arm_gossip(now + self._rng.uniform(0, self.config.gossip_interval))
        self._schedule(now + self._push_pull_interval(), "push_pull")

    # --- reading ----------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self._me.address

    @property
    def incarnation(self) -> int:
        return self._me.incarnation

    @property
    def health_score(self) -> int:
        """Lifeguard's local health multiplier: 0 is healthy; timeouts scale by it + 1."""
        return self._awareness

    @property
    def stats(self) -> Mapping[str, int]:
        return MappingProxyType(self._stats)

    def members(self) -> list[MemberInfo]:
        """Every member we know, ourselves included, sorted by name."""
        return [self._members[n].info() for n in sorted(self._members)]

    def member(self, name: str) -> MemberInfo | None:
        m = self._members.get(name)
        return m.info() if m is not None else None

    def resolve(self, service: str) -> list[str]:
        """Addresses of `service` on ALIVE and SUSPECT members, sorted, without repeats."""
        out: set[str] = set()
        for m in self._members.values():
            if m.state in _LIVE:
                entry = m.services.get(service)
                if entry is not None:
                    out.update(entry.addresses)
        return sorted(out)

    def next_deadline(self) -> float:
        """Absolute time of the next timer (`math.inf` if none)."""
        return self._timers[0][0] if self._timers else math.inf

    # --- outputs ----------------------------------------------------------------------

    def take_outgoing(self) -> list[tuple[str, bytes]]:
        out, self._outgoing = self._outgoing, []
        return out

    def take_push_pull(self) -> list[str]:
        out, self._push_pull = self._push_pull, []
        return out

    def take_events(self) -> list[MemberEvent]:
        out, self._events = self._events, []
        return out

    # --- inputs -----------------------------------------------------------------------

    def join(self, seeds: Sequence[str], now: float) -> None:
        """Ask the driver to push-pull with each seed (ourselves excluded)."""
        for seed in seeds:
            if seed != self._me.address and seed not in self._push_pull:
                self._push_pull.append(seed)

    def set_services(self, services: Mapping[str, ServiceEntry], now: float) -> None:
        frozen = _freeze(services)
        check_services(frozen)
        self._now = now
        self._me.services = frozen
        self._me.incarnation += 1
        self._queue_broadcast(self.name, self._alive_msg())

    def leave(self, now: float) -> None:
        """Announce a graceful leave: broadcast it and send it to a few members now."""
        self._now = now
        if self._left:
            return
        self._left = True
        self._me.state = MemberState.LEFT
        dead = Dead(self._me.incarnation, self.name, self.name)
        self._queue_broadcast(self.name, dead)
        for name in self._sample(max(self.config.gossip_nodes, self.config.indirect_checks, 1)):
            self._send(self._members[name].address, [dead])

    def preload(self, members: Iterable[MemberInfo], now: float) -> None:
        """Know `members` already, without events or broadcasts.

        A converged starting point for simulations and tests: the same as having
        merged their states long ago. Unknown names only; ourselves is skipped.
        """
        for info in members:
            if info.name == self.name or info.name in self._members:
                continue
            m = _Member(info.name, info.address, info.incarnation, info.state, info.services, now)
            self._members[info.name] = m
            if m.state in _LIVE:
                self._live_index[info.name] = len(self._live)
                self._live.append(info.name)
        # The walk starts afresh (shuffled) at the next probe: inserting each one
        # into the current walk would cost O(n) apiece.
        self._probe_order, self._probe_pos = [], 0

    def receive(self, datagram: bytes, source: str, now: float) -> None:
        """Handle one datagram from `source` ("host:port"); bad ones are dropped and counted."""
        self._now = now
        self._stats["received"] += 1
        self._stats["bytes_received"] += len(datagram)
        try:
            msgs = decode_packet(
                datagram, key=self._key, now=now, guard=self._guard, max_size=MAX_PACKET
            )
        except GossipWireError as exc:
            self._stats[exc.reason] += 1
            return
        for msg in msgs:
            try:
                self._handle(msg, source, now)
            except GossipWireError as exc:
                self._stats[exc.reason] += 1

    def tick(self, now: float) -> None:
        """Run the timers due by `now`; call at `next_deadline()` or later."""
        self._now = now
        while self._timers and self._timers[0][0] <= now:
            _deadline, _order, kind, arg = heapq.heappop(self._timers)
            getattr(self, "_on_timer_" + kind)(arg, now)

    # --- push-pull --------------------------------------------------------------------

    def push_pull_state(self, join: bool = False, *, now: float | None = None) -> bytes:
        """Our full state, encoded (and signed if keyed) for a TCP push-pull.

        A keyed state is stamped with `now` (default: the latest `now` we were given).
        """
        # Over the receivers' member limit, the live members go first (ourselves
        # foremost) and the dead ones are left out: they are news that can wait.
        ordered = sorted(
            self._members.values(),
            key=lambda m: (m is not self._me, m.state not in _LIVE),
        )[:MAX_PUSH_PULL_MEMBERS]
        records = tuple(m.info() for m in ordered)
        nonce = self._rng.getrandbits(64).to_bytes(8, "big")
        data = encode_packet(
            [PushPull(join, records)],
            key=self._key,
            now=self._now if now is None else now,
            nonce=nonce,
        )
        if len(data) > MAX_PUSH_PULL:
            raise ValueError("push-pull state over the limit")
        return data

    def merge_push_pull(self, data: bytes, now: float) -> None:
        """Merge a peer's `push_pull_state`; raises ValueError (and counts) if it is bad."""
        self._now = now
        try:
            msgs = decode_packet(
                data, key=self._key, now=now, guard=self._guard, max_size=MAX_PUSH_PULL
            )
            if len(msgs) != 1 or not isinstance(msgs[0], PushPull):
                raise MalformedPacket("push-pull state is not one PUSH_PULL message")
        except GossipWireError as exc:
            self._stats[exc.reason] += 1
            raise
        self._stats["push_pulls"] += 1
        for r in msgs[0].members:
            if r.state is MemberState.ALIVE:
                self._on_alive(Alive(r.incarnation, r.name, r.address, r.services), now)
            elif r.state is MemberState.LEFT:
                self._on_dead(Dead(r.incarnation, r.name, r.name), now)
            else:
                # Like memberlist, a remote DEAD is only a suspicion here (the member
                # gets its chance to refute rather than a stale view's verdict), and
                # of members we know: a forgotten dead member is not brought back.
                self._on_suspect(Suspect(r.incarnation, r.name, self.name), now)

    # --- internals: sending -----------------------------------------------------------

    def _alive_msg(self) -> Alive:
        return Alive(self._me.incarnation, self.name, self._me.address, self._me.services)

    def _retransmit_limit(self) -> int:
        return self.config.retransmit_mult * math.ceil(math.log10(len(self._live) + 2))

    def _queue_broadcast(self, name: str, msg: Message) -> None:
        self._broadcast_order += 1
        self._broadcasts[name] = _Broadcast(encode_message(msg), self._broadcast_order)
        self._arm_gossip(self._now + self.config.gossip_interval)

    def _arm_gossip(self, at: float) -> None:
        # The gossip timer runs only while there is news to spread: an idle member
        # wakes once per probe, not five times more for nothing.
        if self._gossip_at is None:
            self._gossip_at = at
            self._schedule(at, "gossip")

    def _piggyback(self, room: int) -> list[bytes]:
        if not self._broadcasts or room <= 0:
            return []
        limit = self._retransmit_limit()
        out: list[bytes] = []
        # Fewest transmissions first, newest first among equals: fresh news travels.
        for name, b in sorted(
            self._broadcasts.items(), key=lambda kv: (kv[1].transmits, -kv[1].order)
        ):
            if len(b.data) > room:
                continue
            out.append(b.data)
            room -= len(b.data)
            b.transmits += 1
            if b.transmits >= limit:
                del self._broadcasts[name]
            if room < 8:
                break
        return out

    def _send(self, dest: str, msgs: Sequence[Message], *, piggyback: bool = True) -> None:
        encoded = [encode_message(m) for m in msgs]
        if piggyback:
            room = self.config.max_packet - PACKET_OVERHEAD - sum(len(e) for e in encoded)
            encoded += self._piggyback(room)
        if not encoded:
            return
        self._emit(dest, encoded)

    def _emit(self, dest: str, encoded: list[bytes]) -> None:
        nonce = self._rng.getrandbits(64).to_bytes(8, "big") if self._key else b""
        data = assemble_packet(encoded, key=self._key, now=self._now, nonce=nonce)
        self._stats["sent"] += 1
        self._stats["bytes_sent"] += len(data)
        self._outgoing.append((dest, data))

    # --- internals: timers ------------------------------------------------------------

    def _schedule(self, deadline: float, kind: str, arg: Any = None) -> None:
        self._timer_order += 1
        heapq.heappush(self._timers, (deadline, self._timer_order, kind, arg))

    def _scale(self, t: float) -> float:
        return t * (self._awareness + 1)

    def _adjust_awareness(self, delta: int) -> None:
        if self.config.lifeguard:
            self._awareness = min(
                max(self._awareness + delta, 0), self.config.awareness_max_multiplier - 1
            )

    def _push_pull_interval(self) -> float:
        # Large clusters sync less often each, so the cluster's total TCP load
        # grows slower than its size (memberlist scales the same way past 32).
        n = len(self._live) + 1
        scale = 1.0 if n <= 32 else math.ceil(math.log2(n) - math.log2(32)) + 1.0
        return self.config.push_pull_interval * scale

    def _on_timer_probe(self, _arg: Any, now: float) -> None:
        self._now = now
        if self._left:
            self._probe = None  # a member that has left accuses no one
        else:
            self._finish_probe(now)
            self._start_probe(now)
        self._schedule(now + self._scale(self.config.probe_interval), "probe")

    def _on_timer_gossip(self, _arg: Any, now: float) -> None:
        self._now = now
        self._gossip_at = None
        if not self._broadcasts:
            return
        for name in self._sample(self.config.gossip_nodes):
            self._send(self._members[name].address, [])
            if not self._broadcasts:
                break
        if self._broadcasts:
            self._arm_gossip(now + self.config.gossip_interval)

    def _on_timer_push_pull(self, _arg: Any, now: float) -> None:
        self._schedule(now + self._push_pull_interval(), "push_pull")
        if self._left:
            return
        for name in self._sample(1):
            self._push_pull.append(self._members[name].address)

    def _on_timer_indirect(self, seq: int, now: float) -> None:
        self._now = now
        p = self._probe
        if p is None or p.seq != seq or p.acked:
            return
        p.indirect_sent = True
        target = self._members.get(p.target)
        if target is None or target.state not in _LIVE:
            return
        helpers = self._sample(self.config.indirect_checks, exclude=p.target)
        msg = IndirectPing(seq, p.target, target.address, self.config.lifeguard)
        for name in helpers:
            self._send(self._members[name].address, [msg])
        self._stats["indirect_probes"] += len(helpers)
        if self.config.lifeguard:
            p.expected_nacks = len(helpers)

    def _on_timer_nack(self, seq: int, now: float) -> None:
        self._now = now
        relay = self._relays.get(seq)
        if relay is not None and relay.nack:
            self._send(relay.requester, [Nack(relay.seq)])
            self._stats["nacks_sent"] += 1

    def _on_timer_relay_expire(self, seq: int, now: float) -> None:
        self._relays.pop(seq, None)

    def _on_timer_suspicion(self, name: str, now: float) -> None:
        self._now = now
        s = self._suspicions.get(name)
        m = self._members.get(name)
        if s is None or m is None or m.state is not MemberState.SUSPECT:
            return
        if s.deadline > now + 1e-9:
            return  # moved: a later timer (or an earlier one already queued) decides
        del self._suspicions[name]
        self._on_dead(Dead(m.incarnation, name, self.name), now)

    def _on_timer_reclaim(self, arg: tuple[str, float], now: float) -> None:
        name, since = arg
        m = self._members.get(name)
        if m is not None and m.state not in _LIVE and m.since == since and name != self.name:
            del self._members[name]

    # --- internals: probing -----------------------------------------------------------

    def _next_probe_target(self) -> str | None:
        for _ in range(2):
            while self._probe_pos < len(self._probe_order):
                name = self._probe_order[self._probe_pos]
                self._probe_pos += 1
                if name in self._live_index:
                    return name
            # One full walk done: shuffle afresh, so that every member is probed
            # once per walk and no one can be starved by bad luck.
            self._probe_order = list(self._live)
            self._rng.shuffle(self._probe_order)
            self._probe_pos = 0
        return None

    def _start_probe(self, now: float) -> None:
        name = self._next_probe_target()
        if name is None:
            self._probe = None
            return
        m = self._members[name]
        self._seq = (self._seq + 1) & 0xFFFF_FFFF
        self._probe = _Probe(
            self._seq, name, m.incarnation, now + self._scale(self.config.probe_timeout)
        )
        msgs: list[Message] = [Ping(self._seq, name)]
        if m.state is MemberState.SUSPECT and self.config.lifeguard:
            # Buddy system: the suspect learns of it from us, not by chance gossip.
            msgs.append(Suspect(m.incarnation, name, self.name))
        self._send(m.address, msgs)
        self._stats["probes"] += 1
        self._schedule(self._probe.indirect_at, "indirect", self._seq)

    def _finish_probe(self, now: float) -> None:
        p, self._probe = self._probe, None
        if p is None or p.acked:
            return
        self._stats["probe_failures"] += 1
        if p.expected_nacks > 0:
            # Helpers that did not NACK either lost our request or we lost their
            # answer: evidence against our own health rather than the target's.
            self._adjust_awareness(max(p.expected_nacks - p.nacks, 0))
        else:
            self._adjust_awareness(1)
        m = self._members.get(p.target)
        if m is not None and m.state in _LIVE and m.incarnation == p.incarnation:
            self._on_suspect(Suspect(m.incarnation, m.name, self.name), now)

    # --- internals: messages ----------------------------------------------------------

    def _handle(self, msg: Message, source: str, now: float) -> None:
        self._now = now
        if isinstance(msg, Ping):
            if msg.target and msg.target != self.name:
                self._stats["dropped_misdirected"] += 1
                return
            self._send(source, [Ack(msg.seq)])
        elif isinstance(msg, Ack):
            self._on_ack(msg.seq, now)
        elif isinstance(msg, Nack):
            p = self._probe
            if p is not None and p.seq == msg.seq:
                p.nacks += 1
                self._stats["nacks_received"] += 1
        elif isinstance(msg, IndirectPing):
            self._on_indirect_ping(msg, source, now)
        elif isinstance(msg, Alive):
            self._on_alive(msg, now)
        elif isinstance(msg, Suspect):
            self._on_suspect(msg, now)
        elif isinstance(msg, Dead):
            self._on_dead(msg, now)
        else:
            raise MalformedPacket("PUSH_PULL is not a datagram message")

    def _on_ack(self, seq: int, now: float) -> None:
        p = self._probe
        if p is not None and p.seq == seq:
            if not p.acked:
                p.acked = True
                if not p.indirect_sent:
                    self._adjust_awareness(-1)
            return
        relay = self._relays.pop(seq, None)
        if relay is not None:
            self._send(relay.requester, [Ack(relay.seq)])

    def _on_indirect_ping(self, msg: IndirectPing, source: str, now: float) -> None:
        if len(self._relays) >= _MAX_RELAYS:
            self._stats["dropped_relay_full"] += 1
            return
        self._seq = (self._seq + 1) & 0xFFFF_FFFF
        self._relays[self._seq] = _Relay(source, msg.seq, msg.nack)
        self._send(msg.target_address, [Ping(self._seq, msg.target)])
        if msg.nack:
            self._schedule(now + self.config.probe_timeout * _NACK_FRACTION, "nack", self._seq)
        self._schedule(now + self.config.probe_interval, "relay_expire", self._seq)

    def _refute(self, incarnation: int) -> None:
        self._me.incarnation = max(self._me.incarnation, incarnation) + 1
        self._stats["refutations"] += 1
        self._adjust_awareness(1)
        self._queue_broadcast(self.name, self._alive_msg())

    def _on_alive(self, msg: Alive, now: float) -> None:
        if msg.name == self.name:
            if self._left:
                return
            if msg.incarnation > self._me.incarnation or (
                msg.incarnation == self._me.incarnation
                and (msg.address != self._me.address or msg.services != self._me.services)
            ):
                self._refute(msg.incarnation)  # an older life of ours, or an impostor
            return
        m = self._members.get(msg.name)
        if m is None:
            if len(self._members) >= self.config.max_members:
                self._stats["dropped_member_limit"] += 1
                return
            m = _Member(
                msg.name, msg.address, msg.incarnation, MemberState.ALIVE, msg.services, now
            )
            self._members[msg.name] = m
            self._live_add(msg.name)
            self._queue_broadcast(msg.name, msg)
            self._events.append(MemberEvent("join", m.info()))
            return
        if msg.incarnation <= m.incarnation:
            return
        old_state, changed = m.state, (m.address, m.services) != (msg.address, msg.services)
        m.incarnation, m.address, m.services = msg.incarnation, msg.address, msg.services
        m.state, m.since = MemberState.ALIVE, now
        self._suspicions.pop(msg.name, None)
        self._queue_broadcast(msg.name, msg)
        if old_state not in _LIVE:
            self._live_add(msg.name)
            self._events.append(MemberEvent("join", m.info()))
        elif old_state is MemberState.SUSPECT:
            self._events.append(MemberEvent("alive", m.info()))
            if changed:
                self._events.append(MemberEvent("update", m.info()))
        elif changed:
            self._events.append(MemberEvent("update", m.info()))

    def _on_suspect(self, msg: Suspect, now: float) -> None:
        if msg.name == self.name:
            if not self._left and msg.incarnation >= self._me.incarnation:
                self._refute(msg.incarnation)
            return
        m = self._members.get(msg.name)
        if m is None or m.state not in _LIVE or msg.incarnation < m.incarnation:
            return
        s = self._suspicions.get(msg.name)
        if m.state is MemberState.SUSPECT and s is not None and msg.incarnation == s.incarnation:
            if msg.accuser != s.accuser and msg.accuser not in s.confirmations:
                s.confirmations.add(msg.accuser)
                old = s.deadline
                if s.recompute(self.config.lifeguard) < old:
                    self._schedule(s.deadline, "suspicion", msg.name)
                # Pass confirmations on: others count them too (the dogpile).
                self._queue_broadcast(msg.name, msg)
            return
        m.state, m.incarnation, m.since = MemberState.SUSPECT, msg.incarnation, now
        n = len(self._live) + 1
        base = (
            self.config.suspicion_mult
            * max(1.0, math.log10(max(1, n)))
            * self.config.probe_interval
        )
        expected = self.config.suspicion_mult - 2 if n - 2 >= self.config.suspicion_mult - 2 else 0
        s = _Suspicion(
            msg.incarnation,
            msg.accuser,
            now,
            base,
            base * self.config.suspicion_max_timeout_mult,
            max(expected, 0),
            set(),
            0.0,
        )
        self._suspicions[msg.name] = s
        s.recompute(self.config.lifeguard)
        self._schedule(s.deadline, "suspicion", msg.name)
        self._queue_broadcast(msg.name, msg)
        self._events.append(MemberEvent("suspect", m.info()))
        if msg.accuser == self.name:
            self._stats["suspicions"] += 1

    def _on_dead(self, msg: Dead, now: float) -> None:
        if msg.name == self.name:
            if not self._left and msg.incarnation >= self._me.incarnation:
                self._refute(msg.incarnation)
            return
        m = self._members.get(msg.name)
        if m is None or m.state not in _LIVE or msg.incarnation < m.incarnation:
            return
        m.state = MemberState.LEFT if msg.accuser == msg.name else MemberState.DEAD
        m.incarnation, m.since = msg.incarnation, now
        self._suspicions.pop(msg.name, None)
        self._live_remove(msg.name)
        self._queue_broadcast(msg.name, msg)
        self._schedule(now + self.config.dead_member_reclaim, "reclaim", (msg.name, now))
        self._stats["deaths"] += 1
        kind = "leave" if m.state is MemberState.LEFT else "dead"
        self._events.append(MemberEvent(kind, m.info()))

    # --- internals: the live list -----------------------------------------------------

    def _live_add(self, name: str) -> None:
        if name in self._live_index or name == self.name:
            return
        self._live_index[name] = len(self._live)
        self._live.append(name)
        # A newcomer goes at a random place in the walk still to come, so that it
        # is probed within this walk rather than after it.
        pos = self._rng.randint(self._probe_pos, len(self._probe_order))
        self._probe_order.insert(pos, name)

    def _live_remove(self, name: str) -> None:
        i = self._live_index.pop(name, None)
        if i is None:
            return
        last = self._live.pop()
        if last != name:
            self._live[i] = last
            self._live_index[last] = i

    def _sample(self, k: int, exclude: str | None = None) -> list[str]:
        pool = len(self._live)
        if exclude is not None and exclude in self._live_index:
            if pool - 1 <= 0:
                return []
            picked = self._rng.sample(range(pool), min(k + 1, pool))
            out = [self._live[i] for i in picked if self._live[i] != exclude]
            return out[:k]
        if pool == 0 or k <= 0:
            return []
        return [self._live[i] for i in self._rng.sample(range(pool), min(k, pool))]

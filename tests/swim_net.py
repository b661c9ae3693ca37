"""A tiny in-memory network on virtual time for tests of the sans-IO `Membership`.

Datagrams go through a heap with a fixed latency (and optional loss); push-pull
is done synchronously, as a driver's TCP exchange would do it. Members can be
killed (nothing in, nothing out, no timers) and paused then resumed (the same,
but they keep their state: a SIGSTOP).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

from gopherpipe_runtime.discovery.swim import (
    MemberEvent,
    Membership,
    MemberState,
    ServiceEntry,
    SwimConfig,
)

FAST = SwimConfig(
    probe_interval=0.1,
    probe_timeout=0.05,
    gossip_interval=0.02,
    push_pull_interval=3.0,
    dead_member_reclaim=2.0,
)


class Net:
    def __init__(
        self,
        config: SwimConfig = FAST,
        *,
        seed: int = 1,
        latency: float = 0.002,
        loss: float = 0.0,
        key: bytes | None = None,
    ) -> None:
        self.config = config
        self.now = 0.0
        self.rng = random.Random(seed)
        self.latency = latency
        self.loss = loss
        self.key = key
        self.members: dict[str, Membership] = {}
        self.down: set[str] = set()
        self.events: dict[str, list[MemberEvent]] = {}
        self.sniffed: list[tuple[str, str, bytes]] = []
        self._queue: list[tuple[float, int, str, str, bytes]] = []
        self._order = 0

    def add(
        self,
        name: str,
        *,
        services: dict[str, ServiceEntry] | None = None,
        key: bytes | None = None,
        config: SwimConfig | None = None,
        join: str | None = None,
    ) -> Membership:
        address = f"10.0.0.{len(self.members) + 1}:7946"
        m = Membership(
            name,
            address,
            now=self.now,
            config=config or self.config,
            services=services,
            key=key if key is not None else self.key,
            rng=random.Random(self.rng.random()),
        )
        self.members[address] = m
        self.events[name] = []
        if join is not None:
            m.join([join], self.now)
        self.pump()
        return m

    def pump(self) -> None:
        for address, m in self.members.items():
            if address in self.down:
                m.take_outgoing()
                m.take_push_pull()
                continue
            self.events[m.name].extend(m.take_events())
            for dest, data in m.take_outgoing():
                self.sniffed.append((address, dest, data))
                if self.rng.random() < self.loss:
                    continue
                self._order += 1
                heapq.heappush(
                    self._queue, (self.now + self.latency, self._order, address, dest, data)
                )
            for peer in m.take_push_pull():
                other = self.members.get(peer)
                if other is None or peer in self.down:
                    continue
                other.merge_push_pull(m.push_pull_state(join=True), self.now)
                m.merge_push_pull(other.push_pull_state(), self.now)
            self.events[m.name].extend(m.take_events())

    def step(self) -> None:
        t = self._queue[0][0] if self._queue else float("inf")
        for address, m in self.members.items():
            if address not in self.down:
                t = min(t, m.next_deadline())
        self.now = max(self.now, t)
        while self._queue and self._queue[0][0] <= self.now:
            _, _, src, dest, data = heapq.heappop(self._queue)
            m = self.members.get(dest)
            if m is not None and dest not in self.down:
                m.receive(data, src, self.now)
        for address, m in self.members.items():
            if address not in self.down and m.next_deadline() <= self.now:
                m.tick(self.now)
        self.pump()

    def run_until(self, cond: Callable[[], bool], limit: float) -> bool:
        end = self.now + limit
        while self.now < end:
            if cond():
                return True
            self.step()
        return cond()

    def run_for(self, duration: float) -> None:
        end = self.now + duration
        while self.now < end:
            self.step()

    def up(self) -> list[Membership]:
        return [m for a, m in self.members.items() if a not in self.down]

    def state_of(self, observer: Membership, name: str) -> MemberState | None:
        info = observer.member(name)
        return info.state if info is not None else None

    def all_see(self, name: str, state: MemberState, among: list[Membership] | None = None) -> bool:
        return all(self.state_of(m, name) is state for m in (among or self.up()) if m.name != name)

    def converged(self) -> bool:
        names = {m.name for m in self.up()}
        return all(
            {i.name for i in m.members() if i.state is MemberState.ALIVE} == names
            for m in self.up()
        )

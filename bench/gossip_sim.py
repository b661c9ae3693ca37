"""GopherMap simulator: the real `Membership` for 1,000 members on virtual time.

``python -m bench.gossip_sim`` (``--members 100 --periods 30`` for a quick run).
Nothing of the protocol is copied here: every member is a
`gopherpipe_runtime.discovery.swim.Membership`, fed datagrams and ticks by an
event heap; this module is only the network and the clock.

The model:
- one-way latency uniform in [1 ms, 5 ms]; each datagram is lost with `--loss`;
- every member is a process that handles one event at a time, in the order the
  events came (a FIFO): a datagram when it arrives, its due timers when they fall
  due; each event costs an exponential processing time of mean `--cost-ms` (5 ms: a
  healthy member is a few per cent busy). A datagram that finds RCVBUF_DATAGRAMS
  (256, about Linux's default 208 KiB UDP receive buffer) already waiting is dropped,
  as the kernel does. The outputs of an event leave when it is done, and the state
  machine's `now` is that moment;
- a member "slowed 10x" pays ten times the cost for each event (40x: forty), so it
  falls behind when its load times its cost passes one second per second: then its
  queue grows to the buffer's bound and every event waits tens of seconds;
- two threading models, both run: "one" (`Sim.threads`), our own driver
  (gophermap.py: one loop thread reads the datagrams that came, then runs the timers
  due), where timers wait in the same FIFO, so a slow member still sees an ack that
  came before its probe timed out first; and "two", memberlist's (the probe
  goroutine's timers fire on time while the packet handler lags), where only the
  handling of datagrams is slowed, as in the Lifeguard paper's experiments, which
  delay message processing at the anomalous members;
- push-pull (TCP) is done at once, without loss;
- clusters start converged (`Membership.preload`) and warm up for a few periods.

Why not the simpler model it replaces (every event delayed by its own independent
random draw): it reorders a member's events at random, which no process does -- a
timer seen before the ack that came before it, one datagram overtaking another --
and a member whose every event is late by a random draw is never *behind*, so it
never has the backlog that makes a slow process miss a whole round of acks and
refutations, which is what Lifeguard is about.

Scenarios, each run for plain SWIM (``lifeguard=False``) and with Lifeguard:
(a) join: a newcomer joins through one seed; protocol periods until every member
    lists it (target <= 3 * log2(n));
(b) kill: a member stops; seconds until every other member marks it dead;
(c) loss: `--loss-rate` (5%) packet loss for `--periods` periods: suspicions of
    (healthy) members and members declared dead;
(d) slow: one member slowed 10x (and, separately, 40x), in either threading model,
    for `--periods` periods: suspicions of, and deaths of, the other (healthy)
    members -- Lifeguard's headline figure. Both are counted as distinct (member,
    incarnation) pairs suspected, or declared dead, by any member: the paper's false
    positive is a healthy member declared failed; a suspicion is the cheaper event
    that precedes it (and that a refutation undoes).

The scenarios are independent and run in parallel processes (`--workers`).

Output: a table on stdout, JSON with `--json FILE`, and with `--plot` the figures
``bench/gossip_join.png`` and ``bench/gossip_false_positives.png``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import sys
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gopherpipe_runtime.discovery.swim import MemberInfo, Membership, MemberState, SwimConfig

HERE = Path(__file__).resolve().parent
WARMUP_PERIODS = 5
RCVBUF_DATAGRAMS = 256
PROC_MEAN = 0.005
_ARRIVE, _TIMER, _DONE = 0, 1, 2


@dataclass
class Sim:
    n: int
    config: SwimConfig
    seed: int = 1
    loss: float = 0.0
    latency: tuple[float, float] = (0.001, 0.005)
    proc_mean: float = PROC_MEAN
    rcvbuf: int = RCVBUF_DATAGRAMS
    threads: str = "one"
    """"one": datagrams and timers share one FIFO (our driver's single loop thread);
    "two": timers run on time in a thread of their own, only datagrams queue (memberlist's
    probe goroutine beside its packet handler, where the paper slows message handling)."""
    now: float = 0.0
    members: list[Membership] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    down: set[int] = field(default_factory=set)
    slow: dict[int, float] = field(default_factory=dict)
    events: list[tuple[float, int, str, MemberInfo]] = field(default_factory=list)
    processed: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._heap: list[tuple[float, int, int, int, Any]] = []
        self._order = 0
        # Per member: its FIFO of (arrival time, datagram or None for "timers due"),
        # whether it is busy with the head, whether a timer wake-up is queued, the
        # wake-up armed in the heap (time, token), datagrams waiting, and figures.
        if self.threads not in ("one", "two"):
            raise ValueError("threads must be 'one' or 'two'")
        self._lanes = 1 if self.threads == "one" else 2
        self._queue: list[deque[tuple[float, tuple[str, bytes] | None]]] = []
        self._busy: list[bool] = []
        self._wake_queued: list[bool] = []
        self._wake_at: list[tuple[float, int] | None] = []
        self._datagrams: list[int] = []
        self.busy_time: list[float] = []
        self.dropped: list[int] = []
        self.waits: list[list[float]] = []
        self._token = 0
        for i in range(self.n):
            self._add(f"node-{i:04d}")
        infos = [MemberInfo(m.name, m.address, 0, MemberState.ALIVE, {}) for m in self.members]
        for m in self.members:
            m.preload(infos, self.now)
        for i in range(self.n):
            self._touch(i)

    def _add(self, name: str) -> int:
        i = len(self.members)
        address = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:7946"
        m = Membership(
            name,
            address,
            now=self.now,
            config=self.config,
            rng=random.Random(self.rng.getrandbits(64)),
        )
        self.members.append(m)
        self.index[address] = i
        for _ in range(self._lanes):
            self._queue.append(deque())
            self._busy.append(False)
        self._wake_queued.append(False)
        self._wake_at.append(None)
        self._datagrams.append(0)
        self.busy_time.append(0.0)
        self.dropped.append(0)
        self.waits.append([])
        return i

    def _push(self, t: float, kind: int, i: int, payload: Any) -> None:
        self._order += 1
        heapq.heappush(self._heap, (t, self._order, kind, i, payload))

    def _enqueue(self, i: int, item: tuple[str, bytes] | None) -> None:
        lane = i * self._lanes + (self._lanes - 1 if item is None else 0)
        self._queue[lane].append((self.now, item))
        if not self._busy[lane]:
            self._start(i, lane)

    def _start(self, i: int, lane: int) -> None:
        """Member i begins a lane's oldest event; it is done after one processing cost."""
        self._busy[lane] = True
        # Two threads: the slowdown is the message handler's; the timer thread keeps time.
        timers_apart = self._lanes == 2 and lane % 2 == 1
        mean = self.proc_mean if timers_apart else self.slow.get(i, self.proc_mean)
        cost = self.rng.expovariate(1.0 / mean)
        self.busy_time[i] += cost
        self._push(self.now + cost, _DONE, i, lane)

    def _touch(self, i: int) -> None:
        """Send member i's output (now) and arm its next timer wake-up."""
        m = self.members[i]
        src = m.address
        lo, hi = self.latency
        for dest, data in m.take_outgoing():
            j = self.index.get(dest)
            if j is None or (self.loss and self.rng.random() < self.loss):
                continue
            self._push(self.now + self.rng.uniform(lo, hi), _ARRIVE, j, (src, data))
        for peer in m.take_push_pull():
            j = self.index.get(peer)
            if j is None or j in self.down:
                continue
            other = self.members[j]
            other.merge_push_pull(m.push_pull_state(), self.now)
            m.merge_push_pull(other.push_pull_state(), self.now)
            self._drain(j)
            self._touch(j)
        self._drain(i)
        if self._wake_queued[i]:
            return  # the queued wake-up runs every due timer and re-arms after
        nd = m.next_deadline()
        armed = self._wake_at[i]
        if armed is None or nd < armed[0]:
            self._token += 1
            self._wake_at[i] = (nd, self._token)
            self._push(max(nd, self.now), _TIMER, i, self._token)

    def _drain(self, i: int) -> None:
        for e in self.members[i].take_events():
            self.events.append((self.now, i, e.kind, e.member))

    def run_until(self, t_end: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= t_end:
            t, _, kind, i, payload = heapq.heappop(heap)
            if i in self.down:
                continue
            self.now = t
            if kind == _ARRIVE:
                # The socket's receive buffer: full, the kernel drops the datagram.
                if self._datagrams[i] >= self.rcvbuf:
                    self.dropped[i] += 1
                    continue
                self._datagrams[i] += 1
                self._enqueue(i, payload)
            elif kind == _TIMER:
                armed = self._wake_at[i]
                if armed is None or armed[1] != payload:
                    continue
                self._wake_at[i] = None
                if not self._wake_queued[i]:
                    self._wake_queued[i] = True
                    self._enqueue(i, None)
            else:
                lane = payload
                arrived, item = self._queue[lane].popleft()
                self._busy[lane] = False
                m = self.members[i]
                if item is None:
                    self._wake_queued[i] = False
                    m.tick(t)
                else:
                    self._datagrams[i] -= 1
                    m.receive(item[1], item[0], t)
                if i in self.slow and item is not None:
                    self.waits[i].append(t - arrived)
                self.processed += 1
                self._touch(i)
                if self._queue[lane]:
                    self._start(i, lane)
        self.now = t_end

    def join(self, name: str, seed: int) -> int:
        i = self._add(name)
        self.members[i].join([self.members[seed].address], self.now)
        self._touch(i)
        return i

    def kill(self, i: int) -> None:
        self.down.add(i)


@dataclass
class Result:
    mode: str
    join_periods: float = math.nan
    join_curve: list[tuple[float, int]] = field(default_factory=list)
    dead_seconds: float = math.nan
    loss_suspicions: int = 0
    loss_deaths: int = 0
    slow: dict[str, dict[str, int]] = field(default_factory=dict)
    """Keyed "10x/one": the slowdown and the threads model (Sim.threads)."""
    processed: int = 0


def _first_times(
    events: Iterable[tuple[float, int, str, MemberInfo]], name: str, kinds: set[str]
) -> dict[int, float]:
    out: dict[int, float] = {}
    for t, i, kind, info in events:
        if info.name == name and kind in kinds and i not in out:
            out[i] = t
    return out


def _false_positives(
    events: Iterable[tuple[float, int, str, MemberInfo]], unhealthy: set[str], since: float
) -> tuple[int, int]:
    """Distinct suspicions and deaths (member, incarnation) of healthy members."""
    suspicions: set[tuple[str, int]] = set()
    deaths: set[tuple[str, int]] = set()
    for t, _i, kind, info in events:
        if t < since or info.name in unhealthy:
            continue
        if kind == "suspect":
            suspicions.add((info.name, info.incarnation))
        elif kind == "dead":
            deaths.add((info.name, info.incarnation))
    return len(suspicions), len(deaths)


def _config(lifeguard: bool) -> SwimConfig:
    return replace(SwimConfig(), lifeguard=lifeguard)


def task_join_kill(
    lifeguard: bool, members: int, seed: int, cost: float = PROC_MEAN
) -> dict[str, Any]:
    """(a) a join through one seed, then (b) a kill, in one cluster."""
    config = _config(lifeguard)
    period = config.probe_interval
    sim = Sim(members, config, seed=seed, proc_mean=cost)
    sim.run_until(WARMUP_PERIODS * period)
    t0 = sim.now
    sim.join("newcomer", seed=0)
    deadline = t0 + max(9 * math.log2(members + 1), 60) * period
    informed: dict[int, float] = {}
    while sim.now < deadline and len(informed) < members:
        sim.run_until(sim.now + period / 10)
        informed = _first_times(sim.events, "newcomer", {"join"})
    times = sorted(t - t0 for t in informed.values())
    out: dict[str, Any] = {
        "join_curve": [(t / period, k + 1) for k, t in enumerate(times)],
        "join_periods": times[-1] / period if len(times) >= members else math.nan,
        "dead_seconds": math.nan,
    }
    victim = members // 2
    vname = sim.members[victim].name
    sim.run_until(sim.now + 2 * period)
    t_kill = sim.now
    sim.events.clear()
    sim.kill(victim)
    alive = [i for i in range(len(sim.members)) if i != victim]
    deadline = t_kill + 300 * period
    while sim.now < deadline:
        sim.run_until(sim.now + period / 2)
        dead = _first_times(sim.events, vname, {"dead"})
        if all(i in dead for i in alive):
            out["dead_seconds"] = max(dead.values()) - t_kill
            break
    out["processed"] = sim.processed
    return out


def task_loss(
    lifeguard: bool, members: int, seed: int, periods: int, loss: float, cost: float = PROC_MEAN
) -> dict[str, Any]:
    """(c) packet loss: false positives about (all healthy) members."""
    config = _config(lifeguard)
    sim = Sim(members, config, seed=seed + 1, loss=loss, proc_mean=cost)
    sim.run_until(WARMUP_PERIODS * config.probe_interval)
    sim.events.clear()
    sim.run_until(sim.now + periods * config.probe_interval)
    suspicions, deaths = _false_positives(sim.events, set(), 0.0)
    return {"loss_suspicions": suspicions, "loss_deaths": deaths, "processed": sim.processed}


def task_slow(
    lifeguard: bool,
    members: int,
    seed: int,
    periods: int,
    factor: int,
    threads: str = "one",
    cost: float = PROC_MEAN,
) -> dict[str, Any]:
    """(d) one member slowed `factor` times: false positives about the others."""
    config = _config(lifeguard)
    sim = Sim(members, config, seed=seed + 2, threads=threads, proc_mean=cost)
    slow = members // 3
    sim.slow[slow] = sim.proc_mean * factor
    sim.run_until(WARMUP_PERIODS * config.probe_interval)
    sim.events.clear()
    health = []
    end = sim.now + periods * config.probe_interval
    while sim.now < end:
        sim.run_until(sim.now + config.probe_interval)
        health.append(sim.members[slow].health_score)
    suspicions, deaths = _false_positives(sim.events, {sim.members[slow].name}, 0.0)
    m = sim.members[slow]
    waits = sorted(sim.waits[slow]) or [0.0]
    others = [b for i, b in enumerate(sim.busy_time) if i != slow]
    return {
        "slow": {
            f"{factor}x/{threads}": {
                "suspicions": suspicions,
                "deaths": deaths,
                "slow_member_probes": m.stats["probes"],
                "slow_member_suspicions_raised": m.stats["suspicions"],
                "slow_member_deaths_declared": sum(
                    1 for _t, i, kind, _m in sim.events if i == slow and kind == "dead"
                ),
                # The paper's "false positives at healthy members": declared by them.
                "deaths_declared_by_healthy": _false_positives(
                    [e for e in sim.events if e[1] != slow], {sim.members[slow].name}, 0.0
                )[1],
                "slow_member_mean_lhm_x10": round(10 * sum(health) / max(len(health), 1)),
                # How loaded it was: busy fraction, its events' time in its queue
                # (median, 99th percentile, ms) and datagrams its full buffer dropped.
                "slow_member_busy_pct": round(100 * sim.busy_time[slow] / sim.now),
                "healthy_busy_pct": round(100 * sum(others) / len(others) / sim.now, 1),
                "slow_member_wait_ms_p50": round(1000 * waits[len(waits) // 2]),
                "slow_member_wait_ms_p99": round(1000 * waits[len(waits) * 99 // 100]),
                "slow_member_dropped": sim.dropped[slow],
            }
        },
        "processed": sim.processed,
    }


def _run(task: tuple[str, bool, tuple[Any, ...]]) -> tuple[bool, dict[str, Any]]:
    name, lifeguard, args = task
    fn = {"join_kill": task_join_kill, "loss": task_loss, "slow": task_slow}[name]
    return lifeguard, fn(lifeguard, *args)  # type: ignore[operator]


def run_all(
    members: int,
    periods: int,
    loss: float,
    seed: int,
    factors: list[int],
    workers: int,
    cost: float = PROC_MEAN,
) -> list[Result]:
    """Every scenario for both modes, in parallel processes (each is independent)."""
    tasks: list[tuple[str, bool, tuple[Any, ...]]] = []
    for lg in (False, True):
        tasks.append(("join_kill", lg, (members, seed, cost)))
        tasks.append(("loss", lg, (members, seed, periods, loss, cost)))
        for f in factors:
            for threads in ("one", "two"):
                tasks.append(("slow", lg, (members, seed, periods, f, threads, cost)))
    results = {False: Result("swim"), True: Result("lifeguard")}
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(_run, tasks))
    else:
        done = [_run(t) for t in tasks]
    for lg, figures in done:
        r = results[lg]
        r.processed += figures.pop("processed", 0)
        r.slow.update(figures.pop("slow", {}))
        for k, v in figures.items():
            setattr(r, k, v)
    return [results[False], results[True]]


def _ratio(a: int, b: int) -> str:
    if a == 0 and b == 0:
        return "- (none in either)"
    if b == 0:
        return f">= {a}x (none with Lifeguard)"
    return f"{a / b:.1f}x"


def _slow_keys(slow: dict[str, Any]) -> list[str]:
    return sorted(slow, key=lambda k: (int(k.split("x")[0]), k))


def report(results: list[Result], members: int, periods: int, loss_rate: float) -> str:
    swim, lg = results
    bound = 3 * math.log2(members)
    lines = [
        f"GopherMap simulator: {members} members, {periods} periods per false-positive run, "
        f"SwimConfig() defaults (probe {SwimConfig().probe_interval:g} s)",
        "false positives count distinct (member, incarnation) suspected / declared dead by anyone",
        f"{'figure':60} {'SWIM':>10} {'Lifeguard':>10}",
    ]

    def row(label: str, a: object, b: object) -> None:
        lines.append(f"{label:60} {a!s:>10} {b!s:>10}")

    row(
        f"(a) periods until a join reaches all (bound {bound:.1f})",
        f"{swim.join_periods:.1f}",
        f"{lg.join_periods:.1f}",
    )
    row(
        "(b) seconds until all mark a killed member dead",
        f"{swim.dead_seconds:.1f}",
        f"{lg.dead_seconds:.1f}",
    )
    row(
        f"(c) {loss_rate:.0%} loss: suspicions of healthy members",
        swim.loss_suspicions,
        lg.loss_suspicions,
    )
    row(
        f"(c) {loss_rate:.0%} loss: healthy members declared dead", swim.loss_deaths, lg.loss_deaths
    )
    for f in _slow_keys(swim.slow):
        a, b = swim.slow[f], lg.slow[f]
        row(f"(d) slowed {f}: suspicions of healthy members", a["suspicions"], b["suspicions"])
        row(f"(d) slowed {f}: healthy members declared dead", a["deaths"], b["deaths"])
        row(
            f"(d) slowed {f}: suspicions it raised / probes it sent",
            f"{a['slow_member_suspicions_raised']}/{a['slow_member_probes']}",
            f"{b['slow_member_suspicions_raised']}/{b['slow_member_probes']}",
        )
        row(
            f"(d) slowed {f}: deaths it declared / declared by healthy members",
            f"{a['slow_member_deaths_declared']}/{a.get('deaths_declared_by_healthy', '?')}",
            f"{b['slow_member_deaths_declared']}/{b.get('deaths_declared_by_healthy', '?')}",
        )
        row(f"(d) slowed {f}: its mean health score (LHM)", "-", b["slow_member_mean_lhm_x10"] / 10)
        row(
            f"(d) slowed {f}: its queue wait p50/p99 (ms)",
            f"{a['slow_member_wait_ms_p50']}/{a['slow_member_wait_ms_p99']}",
            f"{b['slow_member_wait_ms_p50']}/{b['slow_member_wait_ms_p99']}",
        )
        row(
            f"(d) slowed {f}: datagrams its full buffer dropped",
            a["slow_member_dropped"],
            b["slow_member_dropped"],
        )
    lines.append(
        "(c) fewer suspicions of healthy members with Lifeguard: "
        + _ratio(swim.loss_suspicions, lg.loss_suspicions)
    )
    for f in _slow_keys(swim.slow):
        lines.append(
            f"(d) slowed {f}: fewer suspicions / deaths of healthy members with Lifeguard: "
            + _ratio(swim.slow[f]["suspicions"], lg.slow[f]["suspicions"])
            + " / "
            + _ratio(swim.slow[f]["deaths"], lg.slow[f]["deaths"])
        )
    return "\n".join(lines)


def plot(results: list[Result], members: int, loss_rate: float, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"swim": "#d62728", "lifeguard": "#1f77b4"}
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        xs = [x for x, _ in r.join_curve]
        ys = [y for _, y in r.join_curve]
        ax.step(xs, ys, where="post", label=r.mode, color=colors[r.mode])
    ax.axvline(3 * math.log2(members), linestyle="--", color="grey", label="3·log2(n), the bound")
    # Log time: the whole curve fits in a period or two, the bound is at 30.
    ax.set_xscale("log")
    ax.set_xlabel("protocol periods since the join (log scale)")
    ax.set_ylabel("members that know the newcomer")
    ax.set_title(f"Join dissemination, {members} members")
    ax.legend()
    fig.tight_layout()
    p = out / "gossip_join.png"
    fig.savefig(p, dpi=110)
    paths.append(p)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(13, 4.5))
    labels = [f"{loss_rate:.0%} loss\nsuspicions", f"{loss_rate:.0%} loss\ndeaths"]
    for f in _slow_keys(results[0].slow):
        labels += [f"slowed {f}\nsuspicions", f"slowed {f}\ndeaths"]
    width = 0.38
    for k, r in enumerate(results):
        vals = [r.loss_suspicions, r.loss_deaths] + [
            r.slow[f][k] for f in _slow_keys(r.slow) for k in ("suspicions", "deaths")
        ]
        xs = [x + (k - 0.5) * width for x in range(len(labels))]
        bars = ax.bar(xs, vals, width, label=r.mode, color=colors[r.mode])
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("false positives about healthy members")
    ax.set_title(f"False positives, {members} members, SWIM vs Lifeguard")
    ax.legend()
    fig.tight_layout()
    p = out / "gossip_false_positives.png"
    fig.savefig(p, dpi=110)
    paths.append(p)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.gossip_sim", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--periods", type=int, default=120, help="periods per false-positive run")
    ap.add_argument("--loss-rate", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--slow-factors",
        default="10,40",
        help="slowdowns of the one slow member, comma-separated (default 10,40)",
    )
    ap.add_argument(
        "--cost-ms",
        type=float,
        default=PROC_MEAN * 1000,
        help="mean processing cost of one event at a healthy member (default 5)",
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--plot", action="store_true", help="write bench/gossip_*.png")
    ap.add_argument("--replot", type=Path, help="only redraw the figures from a --json file")
    args = ap.parse_args(argv)
    if args.replot:
        saved = json.loads(args.replot.read_text())
        again = []
        for r in saved["results"]:
            r["join_curve"] = [tuple(point) for point in r["join_curve"]]
            again.append(Result(**r))
        for p in plot(again, saved["members"], saved["loss_rate"], HERE):
            print(f"wrote {p}")
        return 0
    started = time.perf_counter()
    factors = sorted(int(f) for f in args.slow_factors.split(","))
    results = run_all(
        args.members,
        args.periods,
        args.loss_rate,
        args.seed,
        factors,
        args.workers,
        args.cost_ms / 1000,
    )
    print(report(results, args.members, args.periods, args.loss_rate))
    elapsed = time.perf_counter() - started
    events = sum(r.processed for r in results)
    print(f"({events:,} simulated events in {elapsed:.0f} s wall, {args.workers} processes)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "members": args.members,
                    "periods": args.periods,
                    "loss_rate": args.loss_rate,
                    "cost_ms": args.cost_ms,
                    "results": [
                        {k: v for k, v in r.__dict__.items() if k != "join_curve"}
                        | {"join_curve": r.join_curve}
                        for r in results
                    ],
                },
                indent=1,
            )
        )
    if args.plot:
        for p in plot(results, args.members, args.loss_rate, HERE):
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

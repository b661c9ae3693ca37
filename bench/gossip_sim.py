"""GopherMap simulator: the real `Membership` for 1,000 members on virtual time.

``python -m bench.gossip_sim`` (``--members 100 --periods 30`` for a quick run).
Nothing of the protocol is copied here: every member is a
`gopherpipe_runtime.discovery.swim.Membership`, fed datagrams and ticks by an
event heap; this module is only the network and the clock.

The model:
- one-way latency uniform in [1 ms, 5 ms]; each datagram is lost with `--loss`;
- every member handles each inbound datagram and each timer after a processing
  delay drawn from an exponential distribution of mean 50 ms (a busy process);
  a member "slowed 10x" has a mean of 500 ms, ten times that -- its packets and
  timers are handled that much later, as Lifeguard's experiments slow a member's
  processing -- and one slowed 40x (2 s) shows the regime where its stalls
  outlast a protocol period; push-pull (TCP) is done at once, without loss;
- clusters start converged (`Membership.preload`) and warm up for a few periods.

Scenarios, each run for plain SWIM (``lifeguard=False``) and with Lifeguard:
(a) join: a newcomer joins through one seed; protocol periods until every member
    lists it (target <= 3 * log2(n));
(b) kill: a member stops; seconds until every other member marks it dead;
(c) loss: `--loss-rate` (5%) packet loss for `--periods` periods: suspicions of
    (healthy) members and members declared dead;
(d) slow: one member slowed 10x (and, separately, 40x) for `--periods` periods:
    suspicions of, and deaths of, the other (healthy) members -- Lifeguard's
    headline figure.

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
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gopherpipe_runtime.discovery.swim import MemberInfo, Membership, MemberState, SwimConfig

HERE = Path(__file__).resolve().parent
WARMUP_PERIODS = 5
_DELIVER, _WAKE = 0, 1


@dataclass
class Sim:
    n: int
    config: SwimConfig
    seed: int = 1
    loss: float = 0.0
    latency: tuple[float, float] = (0.001, 0.005)
    proc_mean: float = 0.05
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
        self._pending: list[tuple[float, int] | None] = []
        self._token = 0
        infos = []
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
        self._pending.append(None)
        return i

    def _lag(self, i: int) -> float:
        return self.rng.expovariate(1.0 / self.slow.get(i, self.proc_mean))

    def _push(self, t: float, kind: int, i: int, payload: Any) -> None:
        self._order += 1
        heapq.heappush(self._heap, (t, self._order, kind, i, payload))

    def _touch(self, i: int) -> None:
        """Flush member i's output and (re)arm its wake-up."""
        m = self.members[i]
        src = m.address
        for dest, data in m.take_outgoing():
            j = self.index.get(dest)
            if j is None or (self.loss and self.rng.random() < self.loss):
                continue
            lo, hi = self.latency
            self._push(self.now + self.rng.uniform(lo, hi) + self._lag(j), _DELIVER, j, (src, data))
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
        nd = m.next_deadline()
        p = self._pending[i]
        if p is None or nd < p[0]:
            self._token += 1
            self._pending[i] = (nd, self._token)
            self._push(nd + self._lag(i), _WAKE, i, self._token)

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
            m = self.members[i]
            if kind == _DELIVER:
                m.receive(payload[1], payload[0], t)
            else:
                p = self._pending[i]
                if p is None or p[1] != payload:
                    continue
                self._pending[i] = None
                m.tick(t)
            self.processed += 1
            self._touch(i)
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
    slow: dict[int, dict[str, int]] = field(default_factory=dict)
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


def task_join_kill(lifeguard: bool, members: int, seed: int) -> dict[str, Any]:
    """(a) a join through one seed, then (b) a kill, in one cluster."""
    config = _config(lifeguard)
    period = config.probe_interval
    sim = Sim(members, config, seed=seed)
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
    lifeguard: bool, members: int, seed: int, periods: int, loss: float
) -> dict[str, Any]:
    """(c) packet loss: false positives about (all healthy) members."""
    config = _config(lifeguard)
    sim = Sim(members, config, seed=seed + 1, loss=loss)
    sim.run_until(WARMUP_PERIODS * config.probe_interval)
    sim.events.clear()
    sim.run_until(sim.now + periods * config.probe_interval)
    suspicions, deaths = _false_positives(sim.events, set(), 0.0)
    return {"loss_suspicions": suspicions, "loss_deaths": deaths, "processed": sim.processed}


def task_slow(
    lifeguard: bool, members: int, seed: int, periods: int, factor: int
) -> dict[str, Any]:
    """(d) one member slowed `factor` times: false positives about the others."""
    config = _config(lifeguard)
    sim = Sim(members, config, seed=seed + 2)
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
    return {
        "slow": {
            factor: {
                "suspicions": suspicions,
                "deaths": deaths,
                "slow_member_probes": m.stats["probes"],
                "slow_member_suspicions_raised": m.stats["suspicions"],
                "slow_member_mean_lhm_x10": round(10 * sum(health) / max(len(health), 1)),
            }
        },
        "processed": sim.processed,
    }


def _run(task: tuple[str, bool, tuple[Any, ...]]) -> tuple[bool, dict[str, Any]]:
    name, lifeguard, args = task
    fn = {"join_kill": task_join_kill, "loss": task_loss, "slow": task_slow}[name]
    return lifeguard, fn(lifeguard, *args)  # type: ignore[operator]


def run_all(
    members: int, periods: int, loss: float, seed: int, factors: list[int], workers: int
) -> list[Result]:
    """Every scenario for both modes, in parallel processes (each is independent)."""
    tasks: list[tuple[str, bool, tuple[Any, ...]]] = []
    for lg in (False, True):
        tasks.append(("slow", lg, (members, seed, periods, factors[-1])))
    for lg in (False, True):
        tasks.append(("join_kill", lg, (members, seed)))
        tasks.append(("loss", lg, (members, seed, periods, loss)))
        for f in factors[:-1]:
            tasks.append(("slow", lg, (members, seed, periods, f)))
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


def report(results: list[Result], members: int, periods: int, loss_rate: float) -> str:
    swim, lg = results
    bound = 3 * math.log2(members)
    lines = [
        f"GopherMap simulator: {members} members, {periods} periods per false-positive run, "
        f"SwimConfig() defaults (probe {SwimConfig().probe_interval:g} s)",
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
    for f in sorted(swim.slow):
        a, b = swim.slow[f], lg.slow[f]
        row(
            f"(d) 1 member slowed {f}x: suspicions of healthy members",
            a["suspicions"],
            b["suspicions"],
        )
        row(f"(d) 1 member slowed {f}x: healthy members declared dead", a["deaths"], b["deaths"])
        row(
            f"(d) slowed {f}x: suspicions it raised / probes it sent",
            f"{a['slow_member_suspicions_raised']}/{a['slow_member_probes']}",
            f"{b['slow_member_suspicions_raised']}/{b['slow_member_probes']}",
        )
        row(
            f"(d) slowed {f}x: its mean health score (LHM)", "-", b["slow_member_mean_lhm_x10"] / 10
        )
    lines.append(
        "(c) fewer suspicions of healthy members with Lifeguard: "
        + _ratio(swim.loss_suspicions, lg.loss_suspicions)
    )
    for f in sorted(swim.slow):
        lines.append(
            f"(d) slowed {f}x: fewer suspicions of healthy members with Lifeguard: "
            + _ratio(swim.slow[f]["suspicions"], lg.slow[f]["suspicions"])
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

    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [f"{loss_rate:.0%} loss\nsuspicions", f"{loss_rate:.0%} loss\ndeaths"]
    for f in sorted(results[0].slow):
        labels += [f"1 slowed {f}x\nsuspicions", f"1 slowed {f}x\ndeaths"]
    width = 0.38
    for k, r in enumerate(results):
        vals = [r.loss_suspicions, r.loss_deaths] + [
            r.slow[f][k] for f in sorted(r.slow) for k in ("suspicions", "deaths")
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
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--plot", action="store_true", help="write bench/gossip_*.png")
    ap.add_argument("--replot", type=Path, help="only redraw the figures from a --json file")
    args = ap.parse_args(argv)
    if args.replot:
        saved = json.loads(args.replot.read_text())
        again = []
        for r in saved["results"]:
            r["slow"] = {int(k): v for k, v in r["slow"].items()}
            r["join_curve"] = [tuple(point) for point in r["join_curve"]]
            again.append(Result(**r))
        for p in plot(again, saved["members"], saved["loss_rate"], HERE):
            print(f"wrote {p}")
        return 0
    started = time.perf_counter()
    factors = sorted(int(f) for f in args.slow_factors.split(","))
    results = run_all(args.members, args.periods, args.loss_rate, args.seed, factors, args.workers)
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

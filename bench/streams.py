"""The concurrent-streams scenario: N open server streams, one broadcast to all of them.

For each stream count and each server (GopherPipe; grpc's sync server; grpc.aio), a fresh
server process, then:

1. its idle RSS and thread count are read from /proc/<pid>/status;
2. CLIENTS client processes each open their share of the N `subscribe(topic)` streams on ONE
   connection (channel) and wait until every stream has its welcome item (so the server
   holds them all);
3. after a settle pause the server's RSS and threads are read again: threads while the
   streams are open, and (RSS open - RSS idle) / N per stream;
4. a publisher process calls the unary `publish(topic, seq)` once per broadcast, each after
   every stream got the one before; the server stamps `time.monotonic_ns()` (system-wide on
   Linux, so comparable across processes) into the event, each client notes when it took the
   event from each stream. The first broadcast is a warm-up; of the others, per broadcast the
   p50 and p99 over all N streams and the time until the last stream got it, then the
   median of each over the broadcasts.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench import measure, procs
from bench.worker import READY, RESULT

VARIANTS = ["gopherpipe", "grpc", "grpc_aio"]
LABELS = {"gopherpipe": "gopherpipe", "grpc": "grpc (sync)", "grpc_aio": "grpc.aio"}
DEFAULT_COUNTS = {False: [1000, 5000, 10000], True: [200]}
# Several client processes, so no one client's interpreter is the bottleneck of a broadcast.
CLIENTS = {False: 4, True: 2}
BROADCASTS = {False: 5, True: 1}  # measured, after one warm-up broadcast
SETTLE_S = 1.0
STEP_TIMEOUT_S = {False: 180.0, True: 60.0}
TOPIC = "bench"


def _proc_status(pid: int) -> dict[str, int]:
    """Threads and memory (kB) of a live process, from /proc (Linux)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("Threads", "VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def _shares(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_one(variant: str, streams: int, quick: bool) -> dict[str, Any]:
    """One server process holding `streams` streams; raises procs.ChildError if it can't."""
    timeout = STEP_TIMEOUT_S[quick]
    broadcasts = BROADCASTS[quick]
    shares = _shares(streams, CLIENTS[quick])
    params = {"streams": streams}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(
            procs.Child(f"{variant} server", "serve-streams", variant, json.dumps(params))
        )
        address = server.expect(READY, procs.SERVER_READY_TIMEOUT_S)
        time.sleep(SETTLE_S / 2)
        idle = _proc_status(server.pid)
        opened = time.monotonic()
        clients = []
        for i, share in enumerate(shares):
            client_params = {
                "count": share,
                "broadcasts": broadcasts + 1,
                "topic": TOPIC,
                "timeout_s": timeout,
            }
            clients.append(
                stack.enter_context(
                    procs.Child(
                        f"{variant} client {i}",
                        "subscribe",
                        variant,
                        address,
                        json.dumps(client_params),
                    )
                )
            )
        for client in clients:
            client.expect("OPEN ", timeout)
        open_s = time.monotonic() - opened
        time.sleep(SETTLE_S)
        held = _proc_status(server.pid)

        publisher = stack.enter_context(
            procs.Child(f"{variant} publisher", "publish", variant, address, TOPIC)
        )
        publisher.expect(READY.strip(), timeout)
        for seq in range(1, broadcasts + 2):
            publisher.send(str(seq))
            _, delivered = publisher.expect("PUBLISHED ", timeout).split()
            if int(delivered) != streams:
                raise procs.ChildError(f"broadcast {seq} reached {delivered} of {streams} streams")
            for client in clients:
                client.expect(f"GOT {seq}", timeout)
        per_client = [json.loads(client.expect(RESULT, timeout)) for client in clients]
        after = _proc_status(server.pid)

    rounds: list[dict[str, float]] = []
    for b in range(1, broadcasts + 1):  # [0] is the warm-up
        samples = sorted(ns for figures in per_client for ns in figures["latencies_ns"][b])
        rounds.append(
            {
                "p50_ms": measure.percentile(samples, 50) / 1e6,
                "p99_ms": measure.percentile(samples, 99) / 1e6,
                "last_ms": samples[-1] / 1e6,
            }
        )
    return {
        "streams": streams,
        "clients": len(shares),
        "broadcasts": broadcasts,
        "open_s": open_s,
        "server_threads_idle": idle["Threads"],
        "server_threads": held["Threads"],
        "rss_idle_mb": idle["VmRSS"] / 1024,
        "rss_open_mb": held["VmRSS"] / 1024,
        "rss_per_stream_kb": (held["VmRSS"] - idle["VmRSS"]) / streams,
        "rss_peak_mb": after["VmHWM"] / 1024,
        **{key: statistics.median(r[key] for r in rounds) for key in rounds[0]},
    }


def run(
    variants: list[str],
    counts: list[int],
    quick: bool,
    progress: Callable[[str], None],
) -> dict[str, dict[str, dict[str, Any]]]:
    """variant -> str(count) -> figures, or {"error": why} where that server couldn't."""
    results: dict[str, dict[str, dict[str, Any]]] = {v: {} for v in variants}
    for streams in counts:
        for variant in variants:
            progress(f"concurrent streams: {LABELS[variant]}, {streams:,} streams")
            started = time.monotonic()
            try:
                figures = run_one(variant, streams, quick)
            except procs.ChildError as exc:
                figures = {"error": str(exc)}
                print(f"{LABELS[variant]}: {streams:,} streams: n/a: {exc}", flush=True)
            else:
                print(
                    f"{LABELS[variant]}: {streams:,} streams ({time.monotonic() - started:.1f} s): "
                    + summary(figures),
                    flush=True,
                )
            results[variant][str(streams)] = figures
    return results


def summary(figures: dict[str, Any]) -> str:
    return (
        f"{figures['server_threads']} server threads, "
        f"{figures['rss_per_stream_kb']:.1f} KiB RSS per stream, broadcast p50 "
        f"{figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, last {figures['last_ms']:.1f} ms"
    )


_ROWS = [
    ("server threads, streams open", "server_threads", "{:,.0f}"),
    ("server RSS per open stream (KiB)", "rss_per_stream_kb", "{:,.1f}"),
    ("broadcast p50 to a stream (ms)", "p50_ms", "{:,.1f}"),
    ("broadcast p99 to a stream (ms)", "p99_ms", "{:,.1f}"),
    ("broadcast to the last stream (ms)", "last_ms", "{:,.1f}"),
    ("time to open every stream (s)", "open_s", "{:,.1f}"),
]


def table(results: dict[str, dict[str, dict[str, Any]]], counts: list[int], quick: bool) -> str:
    variants = [v for v in VARIANTS if v in results]
    width = 16
    first = max(len(r[0]) for r in _ROWS) + 4
    out = [
        f"Concurrent streams: {CLIENTS[quick]} client processes, each with its share of the "
        f"streams on ONE connection/channel; {BROADCASTS[quick]} broadcast(s) after a warm-up, "
        "medians",
        "".ljust(first) + "".join(LABELS[v].rjust(width) for v in variants),
    ]
    out.append("-" * len(out[1]))
    notes: list[str] = []
    for streams in counts:
        out.append(f"{streams:,} open streams")
        for label, key, fmt in _ROWS:
            cells = []
            for variant in variants:
                figures = results[variant].get(str(streams), {})
                if "error" in figures:
                    cells.append("n/a")
                elif key in figures:
                    cells.append(fmt.format(figures[key]))
                else:
                    cells.append("")
            out.append(("  " + label).ljust(first) + "".join(c.rjust(width) for c in cells))
        for variant in variants:
            error = results[variant].get(str(streams), {}).get("error")
            if error:
                notes.append(f"  n/a: {LABELS[variant]} at {streams:,} streams: {error}")
    return "\n".join(out + notes)

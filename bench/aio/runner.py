"""`python -m bench.aio`: GopherPipe's asyncio runtime, grpc.aio and grpclib, side by side.

Per round, each framework in turn (A B C, A B C, ...): a fresh server process for the echo
rows, one fresh client process per row, then a fresh server process for the open-streams
row with its holder processes. Medians over the rounds (min..max in --json), and the ratios
gopherpipe/other for every row.

Rows:
  unary latency     one task: warm-up, then N sequential awaited calls: p50, p99
  64 tasks          64 tasks sharing ONE client/channel (one connection): calls/s
  server stream     one call streaming 200,000 Tick(seq, name, value); the client reads
                    each as a typed object and checks the order: msgs/s
  open streams      10,000 server streams held open on one connection per holder process
                    (4 of them), each with its welcome read: the server's
                    (VmRSS open - VmRSS idle) / N, as bench/streams.py does for the threads

Every process of a run uses the same event loop: asyncio's own, or uvloop for all with
--loop uvloop. A framework that fails a row shows n/a with the reason under the table;
the exit status is 1 if GopherPipe failed any row.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import measure, procs, streams
from bench.aio import FRAMEWORKS, load
from bench.worker import READY

MODULE = "bench.aio.worker"
LABELS = {"gopherpipe": "gopherpipe", "grpc_aio": "grpc.aio", "grpclib": "grpclib"}
# Row name -> (full params, --quick params).
SCENARIOS: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "unary_latency": ({"calls": 5000, "warmup": 500}, {"calls": 300, "warmup": 50}),
    "unary_concurrent": (
        {"tasks": 64, "calls_per_task": 500, "warmup_per_task": 20},
        {"tasks": 64, "calls_per_task": 20, "warmup_per_task": 2},
    ),
    "server_stream": ({"messages": 200_000}, {"messages": 5000}),
}
STREAMS = {False: 10_000, True: 200}
HOLDERS = {False: 4, True: 2}
DEFAULT_ROUNDS = {False: 3, True: 1}
TIMEOUT_S = {False: 300.0, True: 60.0}
SETTLE_S = 1.0
PAYLOAD = 64


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.aio",
        description="asyncio side by side: GopherPipe's aio runtime vs grpc.aio vs grpclib.",
    )
    parser.add_argument("--quick", action="store_true", help="small counts, one round: a smoke run")
    parser.add_argument("--rounds", type=int, metavar="R", help="default 3, 1 with --quick")
    parser.add_argument(
        "--frameworks",
        metavar="A,B",
        help=f"comma-separated subset of {','.join(FRAMEWORKS)} (default: all)",
    )
    parser.add_argument(
        "--streams",
        type=int,
        metavar="N",
        help=f"open streams in the last row (default {STREAMS[False]:,}, {STREAMS[True]} with "
        "--quick; 0 leaves the row out)",
    )
    parser.add_argument("--streams-only", action="store_true", help="only the open-streams row")
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        help="the event loop of every process (default asyncio's own: uvloop is an optional "
        "extra for all three)",
    )
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.streams_only and args.streams == 0:
        parser.error("--streams-only with --streams 0 leaves nothing to run")
    args.rounds = args.rounds or DEFAULT_ROUNDS[args.quick]
    args.streams = STREAMS[args.quick] if args.streams is None else args.streams
    if args.loop is None:
        args.loop = "asyncio"
    names = [n.strip() for n in (args.frameworks or ",".join(FRAMEWORKS)).split(",") if n.strip()]
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown:
        parser.error(f"unknown framework(s): {', '.join(unknown)}")
    args.names = [n for n in FRAMEWORKS if n in names]
    return args


_STARTED = time.monotonic()


def progress(message: str) -> None:
    elapsed = int(time.monotonic() - _STARTED)
    print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def _machine(loop: str) -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cores": os.cpu_count(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "loop": loop + (f" {version('uvloop')}" if loop == "uvloop" else ""),
        "grpcio": version("grpcio"),
        "grpclib": version("grpclib"),
        "protobuf": version("protobuf"),
        "msgpack": version("msgpack"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


@contextlib.contextmanager
def _server(name: str, kind: str, loop: str, params: dict[str, Any]) -> Any:
    with procs.Child(
        f"{name} {kind} server", "serve", name, kind, loop, json.dumps(params), module=MODULE
    ) as child:
        yield child, child.expect(READY, procs.SERVER_READY_TIMEOUT_S)


def _echo_rows(name: str, args: argparse.Namespace, tag: str, out: dict[str, Any]) -> None:
    """One server process; one client process per row. A failed row is recorded, not raised."""
    progress(f"{tag}{name}: starting its server")
    try:
        with _server(name, "echo", args.loop, {}) as (_, address):
            for scenario, params in SCENARIOS.items():
                progress(f"{tag}{name}: {scenario}")
                try:
                    out[scenario] = procs.result(
                        f"{name} {scenario}",
                        "measure", name, scenario, address, args.loop, str(PAYLOAD),
                        json.dumps(params[args.quick]),
                        timeout=TIMEOUT_S[args.quick], module=MODULE,
                    )  # fmt: skip
                except procs.ChildError as exc:
                    out[scenario] = {"error": str(exc)}
    except procs.ChildError as exc:
        for scenario in SCENARIOS:
            out.setdefault(scenario, {"error": str(exc)})


def _open_streams(name: str, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    """N server streams over HOLDERS processes (one connection each); server RSS per stream."""
    count = args.streams
    shares = streams._shares(count, HOLDERS[args.quick])
    timeout = TIMEOUT_S[args.quick]
    progress(f"{tag}{name}: {count:,} open streams")
    try:
        with contextlib.ExitStack() as stack:
            server, address = stack.enter_context(
                _server(name, "streams", args.loop, {"streams": count})
            )
            time.sleep(SETTLE_S / 2)
            idle = streams._proc_status(server.pid)
            started = time.monotonic()
            holders = []
            for i, share in enumerate(shares):
                params = {"count": share, "topic": "bench", "timeout_s": timeout}
                args_ = ("hold", name, address, args.loop, json.dumps(params))
                holder = procs.Child(f"{name} holder {i}", *args_, module=MODULE)
                holders.append(stack.enter_context(holder))
            for holder in holders:
                holder.expect("OPEN ", timeout)
            open_s = time.monotonic() - started
            time.sleep(SETTLE_S)
            held = streams._proc_status(server.pid)
    except procs.ChildError as exc:
        return {"error": str(exc)}
    return {
        "streams": count,
        "holders": len(shares),
        "open_s": open_s,
        "server_threads": held["Threads"],
        "rss_idle_mb": idle["VmRSS"] / 1024,
        "rss_open_mb": held["VmRSS"] / 1024,
        "rss_per_stream_kb": (held["VmRSS"] - idle["VmRSS"]) / count,
    }


def _combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per row, medians (and min/max) over the rounds it succeeded in; else the last error."""
    combined: dict[str, Any] = {}
    for row in [*SCENARIOS, "open_streams"]:
        good = [r[row] for r in rounds if row in r and "error" not in r[row]]
        if good:
            combined[row] = measure.combine_rounds([{row: f} for f in good])[row]
            if len(good) < len([r for r in rounds if row in r]):
                combined[row]["failed_rounds"] = len(rounds) - len(good)
        else:
            errors = [r[row]["error"] for r in rounds if row in r]
            if errors:
                combined[row] = {"error": errors[-1]}
    return combined


# (label, row, key, format, lower is better)
_TABLE = [
    ("unary p50, 1 task (us)", "unary_latency", "p50_us", "{:,.0f}", True),
    ("unary p99, 1 task (us)", "unary_latency", "p99_us", "{:,.0f}", True),
    ("unary calls/s, 64 tasks, 1 conn", "unary_concurrent", "calls_per_s", "{:,.0f}", False),
    ("server stream, typed msgs/s", "server_stream", "messages_per_s", "{:,.0f}", False),
    ("server RSS per open stream (KiB)", "open_streams", "rss_per_stream_kb", "{:,.1f}", True),
    ("time to open every stream (s)", "open_streams", "open_s", "{:,.1f}", True),
]


def table(
    results: dict[str, dict[str, Any]], args: argparse.Namespace
) -> tuple[str, dict[str, float]]:
    names = args.names
    others = [n for n in names if n != "gopherpipe"] if "gopherpipe" in names else []
    width = 14
    first = max(len(t[0]) for t in _TABLE) + 2
    head = "".ljust(first) + "".join(LABELS[n].rjust(width) for n in names)
    head += "".join(f"gp/{LABELS[o]}".rjust(width + 6) for o in others)
    out = [head, "-" * len(head)]
    ratios: dict[str, float] = {}
    notes: list[str] = []
    for label, row, key, fmt, lower in _TABLE:
        if (row == "open_streams" and not args.streams) or (
            row != "open_streams" and args.streams_only
        ):
            continue
        cells = []
        for n in names:
            figures = results[n].get(row, {})
            cells.append(fmt.format(figures[key]) if key in figures else "n/a")
        line = label.ljust(first) + "".join(c.rjust(width) for c in cells)
        gp = results.get("gopherpipe", {}).get(row, {}).get(key)
        for o in others:
            theirs = results[o].get(row, {}).get(key)
            if gp is None or theirs is None or theirs == 0:
                line += "n/a".rjust(width + 6)
                continue
            ratio = gp / theirs
            ratios[f"{row}.{key} gopherpipe/{o}"] = ratio
            ahead = ratio < 1 if lower else ratio > 1
            line += f"{ratio:.2f}x {'ahead' if ahead else 'behind'}".rjust(width + 6)
        out.append(line)
    for n in names:
        for row, figures in results[n].items():
            if "error" in figures:
                notes.append(f"  n/a: {LABELS[n]} {row}: {figures['error']}")
            elif figures.get("failed_rounds"):
                notes.append(f"  {LABELS[n]} {row}: failed in {figures['failed_rounds']} round(s)")
    if notes:
        out += ["", *notes]
    return "\n".join(out), ratios


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    machine = _machine(args.loop)
    prepared: set[str] = set()
    failed_prepare: dict[str, str] = {}
    for name in args.names:
        module_name = FRAMEWORKS[name]
        try:
            module = load(name)
            prepare = getattr(module, "prepare", None)
            if prepare is not None and module_name not in prepared:
                progress(f"{name}: generating stubs")
                prepare()
                prepared.add(module_name)
        except Exception as exc:  # an import or stub generation failure: n/a, not a crash
            failed_prepare[name] = f"prepare: {type(exc).__name__}: {exc}"
            print(f"{LABELS[name]}: n/a: {failed_prepare[name]}", flush=True)
    rounds: dict[str, list[dict[str, Any]]] = {n: [] for n in args.names}
    for r in range(args.rounds):
        tag = f"[round {r + 1}/{args.rounds}] "
        for name in args.names:  # A B C, A B C: a slow spell of the machine hits each
            if name in failed_prepare:
                continue
            out: dict[str, Any] = {}
            if not args.streams_only:
                _echo_rows(name, args, tag, out)
            if args.streams:
                out["open_streams"] = _open_streams(name, args, tag)
            rounds[name].append(out)
    results: dict[str, dict[str, Any]] = {}
    for name in args.names:
        if name in failed_prepare:
            rows = [] if args.streams_only else list(SCENARIOS)
            rows += ["open_streams"] if args.streams else []
            results[name] = {row: {"error": failed_prepare[name]} for row in rows}
        else:
            results[name] = _combine(rounds[name])
    text, ratios = table(results, args)
    print(
        f"\nasyncio bench: {args.rounds} round(s), medians; loop {machine['loop']}; "
        f"{machine['cores']} cores, load {machine['loadavg']}; open streams: "
        f"{args.streams:,} over {HOLDERS[args.quick]} holder processes"
    )
    print(text, flush=True)
    if args.json:
        doc = {
            "machine": machine,
            "quick": args.quick,
            "rounds": args.rounds,
            "streams": args.streams,
            "params": {s: p[args.quick] for s, p in SCENARIOS.items()},
            "results": results,
            "ratios": ratios,
            "per_round": rounds,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    gp = results.get("gopherpipe", {})
    return 1 if any("error" in f for f in gp.values()) else 0

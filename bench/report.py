"""Turning figures into the printed header, table and ratios (and the JSON ratios)."""

from __future__ import annotations

import math
from typing import Any

from bench import frameworks

_LABELS = {
    "rawsocket": "raw socket",
    "gopherpipe": "gopherpipe",
    "grpc": "grpc",
}


def label(name: str) -> str:
    return _LABELS.get(name, name)


def header(machine: dict[str, Any], config: dict[str, Any]) -> str:
    lat = config["scenarios"]["unary_latency"]
    thr = config["scenarios"]["unary_throughput"]
    cores = machine["cores"]
    lines: list[str] = [
        "GopherPipe bench" + (" (--quick: counts too small to quote)" if config["quick"] else ""),
        f"  {machine['python']} | {cores} cores | {machine['platform']} | grpcio "
        f"{machine['grpcio'] or 'not installed'} | msgpack {machine['msgpack']} | {machine['date']}",
        f"  load average before the run: {machine['loadavg']}",
    ]
    if not config.get("echo", True):
        return "\n".join(lines)
    lines += [
        f"  payload: {config['payload_size']}-char ASCII str, echoed back unchanged; "
        f"median of {config['rounds']} round(s), framework order rotated each round",
        f"  latency: 1 client thread, {lat['calls']} calls after {lat['warmup']} warm-up",
        f"  throughput: {thr['threads']} threads sharing ONE client/channel (one connection), "
        f"{thr['threads']} x {thr['calls_per_thread']} calls after "
        f"{thr['threads']} x {thr['warmup_per_thread']} warm-up",
        f"  server stream: {config['scenarios']['server_stream']['messages']:,} Tick(seq, name, "
        "value) messages, decoded to typed objects (dataclass / protobuf) and order-checked",
        f"  bidi ping-pong: one stream, {config['scenarios']['bidi_pingpong']['rounds']:,} "
        "send-one-wait-for-its-echo round trips",
        f"  server and client are separate processes competing for the same {cores} cores, "
        "equally for every framework;",
        "  frameworks run one after another (never two servers at once), each scenario in a "
        "fresh client process.",
    ]
    return "\n".join(lines)


def _get(results: dict[str, Any], name: str, scenario: str, key: str) -> float | None:
    value = results.get(name, {}).get(scenario, {}).get(key)
    return float(value) if value is not None else None


def summary(scenario: str, figures: dict[str, Any]) -> str:
    if scenario == "unary_latency":
        return (
            f"p50 {figures['p50_us']:.1f} µs, p99 {figures['p99_us']:.1f} µs, "
            f"{figures['calls_per_s']:,.0f} calls/s"
        )
    if scenario == "unary_throughput":
        return f"{figures['calls_per_s']:,.0f} calls/s with {figures['threads']} threads"
    if scenario == "server_stream":
        return f"{figures['messages_per_s']:,.0f} typed messages/s"
    if scenario == "bidi_pingpong":
        return f"p50 {figures['p50_us']:.1f} µs, {figures['round_trips_per_s']:,.0f} round trips/s"
    return ""


_ROWS = [
    ("unary p50, 1 thread (µs)", "unary_latency", "p50_us", "{:,.1f}"),
    ("unary p99, 1 thread (µs)", "unary_latency", "p99_us", "{:,.1f}"),
    ("unary calls/s, 1 thread", "unary_latency", "calls_per_s", "{:,.0f}"),
    ("unary calls/s, 16 threads", "unary_throughput", "calls_per_s", "{:,.0f}"),
    ("server stream, typed msgs/s", "server_stream", "messages_per_s", "{:,.0f}"),
    ("bidi ping-pong p50 (µs)", "bidi_pingpong", "p50_us", "{:,.1f}"),
    ("bidi ping-pong round trips/s", "bidi_pingpong", "round_trips_per_s", "{:,.0f}"),
]


def table(results: dict[str, Any], config: dict[str, Any]) -> str:
    names = [n for n in frameworks.FRAMEWORKS if n in config["frameworks"]]
    width = 18
    first = max(len(r[0]) for r in _ROWS) + 2
    out = ["".ljust(first) + "".join(_LABELS[n].rjust(width) for n in names)]
    out.append("-" * len(out[0]))
    for label, scenario, key, fmt in _ROWS:
        cells = []
        for name in names:
            res = results.get(name, {})
            value = _get(results, name, scenario, key)
            if value is not None:
                cells.append(fmt.format(value))
            elif "error" in res:
                cells.append("FAILED")
            elif "skipped" in res:
                cells.append("skipped")
            else:
                cells.append("n/a")
        out.append(label.ljust(first) + "".join(c.rjust(width) for c in cells))
        if config["rounds"] > 1:
            spread = []
            for name in names:
                low = _get(results, name, scenario, key + "_min")
                high = _get(results, name, scenario, key + "_max")
                both = low is not None and high is not None
                spread.append(f"{fmt.format(low)}..{fmt.format(high)}" if both else "")
            out.append(
                "  (min..max over rounds)".ljust(first) + "".join(c.rjust(width) for c in spread)
            )
    for name in names:
        res = results.get(name, {})
        if "error" in res:
            out.append(f"  {_LABELS[name]}: {res['error']}")
        elif "skipped" in res:
            out.append(f"  {_LABELS[name]}: skipped, {res['skipped']}")
    return "\n".join(out)


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0 or math.isnan(num) or math.isnan(den):
        return None
    return num / den


# (key, numerator framework, denominator framework, scenario, figure, how to read it); each is
# oriented so that > 1 means gopherpipe is ahead, or, against the floor, how many floors it costs.
_RATIOS = [
    ("p50 grpc/gopherpipe", "grpc", "gopherpipe", "unary_latency", "p50_us",
     "(> 1: gopherpipe answers faster)"),
    ("p99 grpc/gopherpipe", "grpc", "gopherpipe", "unary_latency", "p99_us",
     "(> 1: gopherpipe's tail is shorter)"),
    ("1-thread calls/s gopherpipe/grpc", "gopherpipe", "grpc", "unary_latency", "calls_per_s",
     "(> 1: gopherpipe does more calls/s)"),
    ("16-thread calls/s gopherpipe/grpc", "gopherpipe", "grpc", "unary_throughput",
     "calls_per_s", "(> 1: gopherpipe does more calls/s)"),
    ("server-stream msgs/s gopherpipe/grpc", "gopherpipe", "grpc", "server_stream",
     "messages_per_s", "(> 1: gopherpipe streams more typed messages/s)"),
    ("bidi round trips/s gopherpipe/grpc", "gopherpipe", "grpc", "bidi_pingpong",
     "round_trips_per_s", "(> 1: gopherpipe ping-pongs faster)"),
    ("p50 gopherpipe/raw socket", "gopherpipe", "rawsocket", "unary_latency", "p50_us",
     "(times the floor; 1.0x would be free)"),
    ("p50 grpc/raw socket", "grpc", "rawsocket", "unary_latency", "p50_us",
     "(times the floor; 1.0x would be free)"),
    ("server-stream msgs/s gopherpipe/raw socket", "gopherpipe", "rawsocket", "server_stream",
     "messages_per_s", "(share of the typed-stream floor; 1.0x would be free)"),
]  # fmt: skip


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    return {
        key: _ratio(_get(results, num, scenario, fig), _get(results, den, scenario, fig))
        for key, num, den, scenario, fig, _ in _RATIOS
    }


def ratio_lines(values: dict[str, float | None], selected: list[str]) -> str:
    out = ["", "Ratios:"]
    for key, num, den, _, _, note in _RATIOS:
        # A ratio against a framework nobody asked for is noise, not a missing figure.
        if num not in selected or den not in selected:
            continue
        value = values.get(key)
        shown = f"{value:.2f}x" if value is not None else "n/a"
        out.append(f"  {key} = {shown}  {note}")
    return "\n".join(out)

"""The transports comparison (`--transports tcp,tls,ws,wss`): what each transport costs.

GopherPipe over each transport asked for, and grpcio over plain TCP and over TLS, all in the
same run: for each (framework, transport) a fresh server process listening on that transport
only, then the echo suite's unary-latency and server-stream scenarios, each in a fresh client
process, through the same timing loops (measure.py). The whole set is repeated `--rounds`
times with the order rotated each round, and the table shows medians (and min..max).

TLS is server-only with the project's test certificates (examples/certs): the server presents
server.pem, the client checks it against ca.pem and presents none. GopherPipe's tls:// and
wss:// use `gopherpipe_runtime.transport.tls.server_context` / `client_context` (the stdlib
`ssl`, TLS 1.2 at least); grpc uses `grpc.ssl_server_credentials` /
`grpc.ssl_channel_credentials` (its own BoringSSL). grpcio has no WebSocket transport, so
its ws and wss cells are n/a.

tcp is always measured, even when not asked for: every transport's cost is read against the
same framework's tcp:// in the same run.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

from bench import measure, report

TRANSPORTS = ["tcp", "tls", "ws", "wss"]
FRAMEWORKS = ["gopherpipe", "grpc"]
SCENARIOS = ["unary_latency", "server_stream"]

# (framework, transport) -> the scenario figures of one round.
RunRound = Callable[[str, ModuleType, str, str, list[str]], dict[str, dict[str, Any]]]


def parse(text: str) -> list[str]:
    """'tls,ws' -> ['tcp', 'tls', 'ws'] (tcp first, always); 'default' or 'all' -> all four."""
    if text.strip() in ("default", "all"):
        return list(TRANSPORTS)
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = sorted(names - set(TRANSPORTS))
    if unknown:
        raise ValueError(
            f"unknown transport(s): {', '.join(unknown)} (choose from {','.join(TRANSPORTS)})"
        )
    return [t for t in TRANSPORTS if t in names or t == "tcp"]


def _unavailable(transport: str) -> str | None:
    """Why this machine cannot run a transport, if it cannot (WebSocket is an extra)."""
    if transport in ("ws", "wss") and importlib.util.find_spec("wsproto") is None:
        return "needs wsproto (the ws extra, in dev too)"
    return None


def columns(modules: dict[str, ModuleType], transports: list[str]) -> list[tuple[str, str]]:
    """Every (framework, transport) that can run: the framework is loaded and serves it."""
    return [
        (name, transport)
        for name in FRAMEWORKS
        if name in modules
        for transport in transports
        if transport in getattr(modules[name], "TRANSPORTS", ("tcp",))
    ]


def run(
    modules: dict[str, ModuleType],
    transports: list[str],
    rounds: int,
    run_round: RunRound,
) -> dict[str, dict[str, dict[str, Any]]]:
    """framework -> transport -> the combined figures (or {"error": ...}) and every round."""
    cols = columns(modules, transports)
    skipped = {(n, t): why for n, t in cols if (why := _unavailable(t)) is not None}
    for (name, transport), why in skipped.items():
        print(f"{name} {transport}: skipped ({why})", flush=True)
    cols = [c for c in cols if c not in skipped]
    per_round: dict[tuple[str, str], list[dict[str, dict[str, Any]]]] = {c: [] for c in cols}
    errors: dict[tuple[str, str], str] = {}
    for r in range(rounds):
        # Rotate who goes first, as the echo suite does.
        shift = r % max(1, len(cols))
        for name, transport in cols[shift:] + cols[:shift]:
            if (name, transport) in errors:
                continue
            try:
                per_round[(name, transport)].append(
                    run_round(
                        name,
                        modules[name],
                        f"[transports, round {r + 1}/{rounds}] ",
                        transport,
                        SCENARIOS,
                    )
                )
            except Exception as exc:
                # One transport failing must not cost the others their figures.
                errors[(name, transport)] = f"{type(exc).__name__}: {exc}"
                print(f"{name} {transport}: FAILED: {errors[(name, transport)]}", flush=True)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for (name, transport), why in skipped.items():
        results.setdefault(name, {})[transport] = {"skipped": why}
    for (name, transport), runs in per_round.items():
        cell: dict[str, Any]
        if (name, transport) in errors:
            cell = {"error": errors[(name, transport)]}
        else:
            cell = {**measure.combine_rounds(runs), "rounds": runs}
        results.setdefault(name, {})[transport] = cell
    return results


def _get(results: dict[str, Any], name: str, transport: str, scenario: str, key: str) -> Any:
    value = results.get(name, {}).get(transport, {}).get(scenario, {}).get(key)
    return float(value) if value is not None else None


_ROWS = [
    ("unary p50, 1 thread (µs)", "unary_latency", "p50_us", "{:,.1f}"),
    ("unary p99, 1 thread (µs)", "unary_latency", "p99_us", "{:,.1f}"),
    ("unary calls/s, 1 thread", "unary_latency", "calls_per_s", "{:,.0f}"),
    ("server stream, typed msgs/s", "server_stream", "messages_per_s", "{:,.0f}"),
]


def header(config: dict[str, Any]) -> str:
    lat = config["scenarios"]["unary_latency"]
    messages = config["scenarios"]["server_stream"]["messages"]
    return "\n".join(
        [
            f"Transports: {', '.join(config['transports'])}; each (framework, transport) its own "
            "server process listening on that transport only",
            f"  unary latency: 1 client thread, {lat['calls']} calls after {lat['warmup']} "
            f"warm-up; server stream: {messages:,} Tick messages, typed and order-checked",
            "  TLS: server certificate only (examples/certs); GopherPipe: stdlib ssl, grpc: "
            "ssl_server_credentials / ssl_channel_credentials; grpcio has no ws/wss",
            f"  median of {config['rounds']} round(s), order rotated each round",
        ]
    )


def table(results: dict[str, Any], config: dict[str, Any]) -> str:
    cols = [
        (name, transport)
        for name in FRAMEWORKS
        if name in results
        for transport in config["transports"]
        if transport in results[name]
    ]
    rows: list[tuple[str, list[str]]] = [
        ("", [f"{report.label(name)} {transport}" for name, transport in cols])
    ]
    for label, scenario, key, fmt in _ROWS:
        cells = []
        for name, transport in cols:
            value = _get(results, name, transport, scenario, key)
            if value is not None:
                cells.append(fmt.format(value))
            else:
                cell = results[name][transport]
                cells.append(
                    "FAILED" if "error" in cell else "skipped" if "skipped" in cell else "n/a"
                )
        rows.append((label, cells))
        if config["rounds"] > 1:
            spread = []
            for name, transport in cols:
                low = _get(results, name, transport, scenario, key + "_min")
                high = _get(results, name, transport, scenario, key + "_max")
                both = low is not None and high is not None
                spread.append(f"{fmt.format(low)}..{fmt.format(high)}" if both else "")
            rows.append(("  (min..max over rounds)", spread))
    # As wide as the widest cell (a min..max of p99s in ms is), so columns never run together.
    width = max([16] + [len(c) + 2 for _, cells in rows for c in cells])
    first = max(len(r[0]) for r in _ROWS) + 2
    out = [label.ljust(first) + "".join(c.rjust(width) for c in cells) for label, cells in rows]
    out.insert(1, "-" * len(out[0]))
    for name, transport in cols:
        cell = results[name][transport]
        if "error" in cell:
            out.append(f"  {report.label(name)} {transport}: {cell['error']}")
        elif "skipped" in cell:
            out.append(f"  {report.label(name)} {transport}: skipped, {cell['skipped']}")
    return "\n".join(out)


def _measured(results: dict[str, Any], name: str) -> list[str]:
    """The transports with figures for `name`, tcp first (not failed, not skipped)."""
    cells = results.get(name, {})
    return [t for t in TRANSPORTS if t in cells and not {"error", "skipped"} & set(cells[t])]


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0 or math.isnan(num) or math.isnan(den):
        return None
    return num / den


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """Each transport's cost against the same framework's tcp://, and GopherPipe against grpc
    on the same transport; the per-call and per-message costs in µs beside them."""
    out: dict[str, float | None] = {}
    for name in FRAMEWORKS:
        for transport in _measured(results, name):
            if transport == "tcp":
                continue
            p50 = _get(results, name, transport, "unary_latency", "p50_us")
            p50_tcp = _get(results, name, "tcp", "unary_latency", "p50_us")
            rate = _get(results, name, transport, "server_stream", "messages_per_s")
            rate_tcp = _get(results, name, "tcp", "server_stream", "messages_per_s")
            key = f"{name} {transport}/tcp"
            out[f"{key} p50"] = _ratio(p50, p50_tcp)
            out[f"{key} p99"] = _ratio(
                _get(results, name, transport, "unary_latency", "p99_us"),
                _get(results, name, "tcp", "unary_latency", "p99_us"),
            )
            out[f"{key} stream msgs/s"] = _ratio(rate, rate_tcp)
            out[f"{name} {transport} extra p50 us per call"] = (
                p50 - p50_tcp if p50 is not None and p50_tcp is not None else None
            )
            out[f"{name} {transport} extra us per streamed message"] = (
                1e6 / rate - 1e6 / rate_tcp if rate and rate_tcp else None
            )
    for transport in TRANSPORTS:
        if transport not in _measured(results, "grpc") or transport not in _measured(
            results, "gopherpipe"
        ):
            continue
        out[f"{transport} p50 grpc/gopherpipe"] = _ratio(
            _get(results, "grpc", transport, "unary_latency", "p50_us"),
            _get(results, "gopherpipe", transport, "unary_latency", "p50_us"),
        )
        out[f"{transport} stream msgs/s gopherpipe/grpc"] = _ratio(
            _get(results, "gopherpipe", transport, "server_stream", "messages_per_s"),
            _get(results, "grpc", transport, "server_stream", "messages_per_s"),
        )
    return out


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "n/a"


def _us(value: float | None) -> str:
    return f"{value:+,.1f} µs" if value is not None else "n/a"


def ratio_lines(values: dict[str, float | None], results: dict[str, Any]) -> str:
    out = ["", "Each transport against the same framework's tcp:// (same run):"]
    for name in FRAMEWORKS:
        for transport in _measured(results, name):
            if transport == "tcp":
                continue
            key = f"{name} {transport}/tcp"
            out.append(
                f"  {key}: unary p50 {_x(values.get(key + ' p50'))} "
                f"({_us(values.get(f'{name} {transport} extra p50 us per call'))} a call), "
                f"p99 {_x(values.get(key + ' p99'))}; "
                f"stream msgs/s {_x(values.get(key + ' stream msgs/s'))} "
                f"({_us(values.get(f'{name} {transport} extra us per streamed message'))} "
                "a message)"
            )
    pairs = [t for t in TRANSPORTS if f"{t} p50 grpc/gopherpipe" in values]
    if pairs:
        out += ["", "GopherPipe against grpc on the same transport (same run):"]
    for transport in pairs:
        out.append(
            f"  {transport}: p50 grpc/gopherpipe = "
            f"{_x(values.get(f'{transport} p50 grpc/gopherpipe'))} "
            "(> 1: gopherpipe answers faster); stream msgs/s gopherpipe/grpc = "
            f"{_x(values.get(f'{transport} stream msgs/s gopherpipe/grpc'))} "
            "(> 1: gopherpipe streams more)"
        )
    return "\n".join(out)

"""The figures of one run as a PNG (matplotlib, Agg): the same layout whatever ran.

Left: every echo-suite figure as GopherPipe's advantage over grpc in the same run (log
scale; 1x is parity, bars to the right mean GopherPipe is ahead), with the raw-socket
floor's cost for both. Right: the concurrent-streams scenario, per stream count, grouped by
server: server threads, RSS per open stream, and the broadcast's p99. A figure that did not
run is drawn as "n/a" in its place, so the layout never moves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench import report, streams

_COLORS = {"gopherpipe": "#1f77b4", "grpc": "#d62728", "grpc_aio": "#ff7f0e"}
# (label, numerator, denominator, scenario, figure): each reads "how many times better".
_ADVANTAGE = [
    ("unary p50 latency", "grpc", "gopherpipe", "unary_latency", "p50_us"),
    ("unary p99 latency", "grpc", "gopherpipe", "unary_latency", "p99_us"),
    ("unary calls/s, 1 thread", "gopherpipe", "grpc", "unary_latency", "calls_per_s"),
    ("unary calls/s, 16 threads", "gopherpipe", "grpc", "unary_throughput", "calls_per_s"),
    ("server stream msgs/s", "gopherpipe", "grpc", "server_stream", "messages_per_s"),
    ("bidi round trips/s", "gopherpipe", "grpc", "bidi_pingpong", "round_trips_per_s"),
]
# (title, figure, label format, log scale): threads span 5 to 10,000, so they get a log axis.
_STREAM_PANELS = [
    ("server threads, streams open (log scale)", "server_threads", "{:,.0f}", True),
    ("server RSS per open stream (KiB)", "rss_per_stream_kb", "{:,.1f}", False),
    ("broadcast p99 to a stream (ms)", "p99_ms", "{:,.0f}", False),
]


def _value(results: dict[str, Any], name: str, scenario: str, key: str) -> float | None:
    value = results.get(name, {}).get(scenario, {}).get(key)
    return float(value) if value is not None else None


def _advantage(ax: Axes, results: dict[str, Any]) -> None:
    labels = [row[0] for row in _ADVANTAGE] + [
        "unary p50: gopherpipe / raw floor",
        "unary p50: grpc / raw floor",
    ]
    values: list[float | None] = []
    for _, num, den, scenario, key in _ADVANTAGE:
        values.append(
            report._ratio(_value(results, num, scenario, key), _value(results, den, scenario, key))
        )
    floor = _value(results, "rawsocket", "unary_latency", "p50_us")
    for name in ("gopherpipe", "grpc"):
        values.append(report._ratio(_value(results, name, "unary_latency", "p50_us"), floor))
    y = list(range(len(labels)))[::-1]
    colors = ["#1f77b4"] * len(_ADVANTAGE) + ["#7f7f7f", "#7f7f7f"]
    ax.barh(y, [v if v is not None else 0 for v in values], color=colors, height=0.6)
    for yi, v in zip(y, values, strict=True):
        ax.text(
            v if v is not None else 1.0,
            yi,
            f" {v:.2f}x" if v is not None else " n/a",
            va="center",
            fontsize=9,
        )
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(0.5, 200)
    ax.set_xticks(
        [0.5, 1, 2, 5, 10, 20, 50, 100, 200],
        ["0.5x", "1x", "2x", "5x", "10x", "20x", "50x", "100x", "200x"],
    )
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_title(
        "GopherPipe vs grpc, same run\n(blue: times better than grpc; grey: times the floor)",
        fontsize=10,
    )


def _stream_panel(
    ax: Axes,
    stream_results: dict[str, dict[str, dict[str, Any]]],
    counts: list[int],
    title: str,
    key: str,
    fmt: str,
    log: bool,
) -> None:
    variants = streams.VARIANTS
    width = 0.8 / len(variants)
    floor = 1.0 if log else 0.0
    top = floor
    for i, variant in enumerate(variants):
        for j, count in enumerate(counts):
            figures = stream_results.get(variant, {}).get(str(count), {})
            x = j + (i - (len(variants) - 1) / 2) * width
            value = figures.get(key)
            label = streams.LABELS[variant] if j == 0 else None
            if value is None:
                ax.bar(x, 0, width, bottom=floor, color=_COLORS[variant], label=label)
                ax.text(x, floor, "n/a", ha="center", va="bottom", fontsize=7)
                continue
            height = max(float(value), floor)
            top = max(top, height)
            ax.bar(x, height - floor, width, bottom=floor, color=_COLORS[variant], label=label)
            ax.text(x, height, fmt.format(value), ha="center", va="bottom", fontsize=7)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(floor, max(top, 10.0) * 4)
    else:
        ax.set_ylim(0, max(top, 1.0) * 1.25)
    ax.set_xticks(range(len(counts)), [f"{c:,} streams" for c in counts], fontsize=9)
    ax.set_title(title, fontsize=10)


def write(
    path: Path,
    machine: dict[str, Any],
    config: dict[str, Any],
    results: dict[str, Any],
    stream_results: dict[str, dict[str, dict[str, Any]]],
) -> None:
    fig = plt.figure(figsize=(14, 7.5), dpi=100)
    grid = fig.add_gridspec(
        3, 2, width_ratios=[1.1, 1], hspace=0.55, wspace=0.25, left=0.17, right=0.98
    )
    _advantage(fig.add_subplot(grid[:, 0]), results)
    counts = list(config.get("stream_counts") or [])
    for row, (title, key, fmt, log) in enumerate(_STREAM_PANELS):
        ax = fig.add_subplot(grid[row, 1])
        if counts:
            _stream_panel(ax, stream_results, counts, title, key, fmt, log)
            if row == 0:
                ax.legend(fontsize=8, loc="upper left")
        else:
            ax.set_axis_off()
            ax.set_title(title, fontsize=10)
            ax.text(0.5, 0.5, "concurrent streams not run", ha="center", va="center")
    fig.suptitle(
        f"GopherPipe bench: {machine['python']}, {machine['cores']} cores, grpcio "
        f"{machine['grpcio']}, {machine['date']}, load {machine['loadavg']}"
        + (" (--quick)" if config.get("quick") else ""),
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # No software/date metadata: the picture changes only when the figures do.
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)

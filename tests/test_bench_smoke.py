"""bench/ itself: the timing helpers, and `python -m bench --quick` end to end.

The end-to-end runs cover GopherPipe and the raw-socket floor only (the asyncio bench:
GopherPipe only), so they need no grpcio or grpclib and always run; they check that figures
come out, never how fast they are.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# bench/ is not an installed package; plain `pytest` (unlike `python -m pytest`) does not put
# the repository root on sys.path.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import measure, transports  # noqa: E402


def test_percentile_is_nearest_rank() -> None:
    samples = list(range(1, 101))
    assert measure.percentile(samples, 50) == 50
    assert measure.percentile(samples, 99) == 99
    assert measure.percentile([7], 99) == 7


def test_a_wrong_echo_is_an_error_not_a_fast_call() -> None:
    with pytest.raises(measure.EchoMismatchError):
        measure.unary_latency(lambda text: text[:-1], "abc", calls=3, warmup=0)
    with pytest.raises(measure.EchoMismatchError):
        measure.unary_throughput(lambda text: "", "abc", 4, 3, 0)


def test_throughput_counts_every_thread() -> None:
    figures = measure.unary_throughput(lambda text: text, "abc", 4, 25, 2)
    assert figures["calls"] == 100
    assert figures["calls_per_s"] > 0


def test_rounds_combine_to_medians_with_spread() -> None:
    runs = [{"s": {"p50_us": v, "calls": 10}} for v in (3.0, 1.0, 2.0)]
    combined = measure.combine_rounds(runs)["s"]
    assert (combined["p50_us"], combined["p50_us_min"], combined["p50_us_max"]) == (2.0, 1.0, 3.0)
    assert combined["calls"] == 10


def test_quick_run_over_gopherpipe_and_the_floor(tmp_path: Path) -> None:
    figures_path = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--frameworks",
            "rawsocket,gopherpipe",
            "--json",
            str(figures_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(figures_path.read_text())["results"]
    gopherpipe = results["gopherpipe"]
    assert gopherpipe["unary_latency"]["calls"] > 0
    assert gopherpipe["unary_latency"]["p50_us"] > 0
    assert gopherpipe["unary_throughput"]["threads"] == 16
    assert gopherpipe["unary_throughput"]["calls_per_s"] > 0
    # Streams go through the stubs `gopherpipe gen` writes at bench time: every item is a
    # `Tick` dataclass the generated code decoded, counted and order-checked by measure.py.
    stream = gopherpipe["server_stream"]
    assert stream["messages"] > 0 and stream["messages_per_s"] > 0
    assert stream["item_type"] == "Tick"
    pingpong = gopherpipe["bidi_pingpong"]
    assert pingpong["rounds"] > 0
    assert pingpong["p50_us"] > 0 and pingpong["round_trips_per_s"] > 0
    assert results["rawsocket"]["unary_latency"]["p50_us"] > 0
    assert "p50 gopherpipe/raw socket = " in done.stdout
    assert "server stream, typed msgs/s" in done.stdout


def test_quick_concurrent_streams_over_gopherpipe(tmp_path: Path) -> None:
    """The concurrent-streams path end to end at --quick size (200 streams, 2 client
    processes): servers, subscribers, the publisher, /proc readings and the table."""
    figures_path = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--streams-only",
            "--frameworks",
            "gopherpipe",
            "--json",
            str(figures_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(figures_path.read_text())["concurrent_streams"]["gopherpipe"]["200"]
    assert figures["streams"] == 200 and figures["clients"] == 2
    assert figures["server_threads"] >= 1
    assert figures["p50_ms"] > 0 and figures["last_ms"] >= figures["p99_ms"] >= figures["p50_ms"]
    assert "200 open streams" in done.stdout
    assert "concurrent streams: gopherpipe, 200 streams" in done.stderr  # the progress line


def test_quick_transports_over_gopherpipe(tmp_path: Path) -> None:
    """`--transports` end to end at --quick size, GopherPipe only (no grpcio needed): a server
    per transport with the test certificates, tcp added as the baseline, typed items over
    every transport, and the cost-against-tcp lines."""
    figures_path = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--transports-only",
            "--transports",
            "tls,ws,wss",
            "--frameworks",
            "gopherpipe",
            "--json",
            str(figures_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(figures_path.read_text())
    cells = doc["transports"]["gopherpipe"]
    assert sorted(cells) == ["tcp", "tls", "ws", "wss"]
    for cell in cells.values():
        assert cell["unary_latency"]["p50_us"] > 0
        assert cell["server_stream"]["messages_per_s"] > 0
        assert cell["server_stream"]["item_type"] == "Tick"
    assert doc["transport_ratios"]["gopherpipe wss/tcp p50"] > 0
    assert "gopherpipe tls/tcp: unary p50 " in done.stdout
    assert "[transports, round 1/1] gopherpipe wss: server_stream" in done.stderr


def test_transports_always_measure_tcp_as_the_baseline() -> None:
    assert transports.parse("ws,tls") == ["tcp", "tls", "ws"]
    assert transports.parse("default") == ["tcp", "tls", "ws", "wss"]
    with pytest.raises(ValueError):
        transports.parse("tcp,quic")


def test_stream_order_and_count_are_checked() -> None:
    class Item:
        def __init__(self, seq: int) -> None:
            self.seq = seq

    def swapped(count: int) -> list[Item]:
        items = [Item(i) for i in range(count)]
        items[1], items[2] = items[2], items[1]
        return items

    with pytest.raises(measure.StreamOrderError):
        measure.server_stream(swapped, 10)
    with pytest.raises(measure.StreamOrderError):
        measure.server_stream(lambda count: [Item(i) for i in range(count - 1)], 10)
    with pytest.raises(measure.StreamOrderError):
        measure.bidi_pingpong(lambda seq: seq + 1, rounds=3, warmup=0)


def test_async_loops_count_every_task_and_reject_a_wrong_echo() -> None:
    from bench.aio import measure as aio_measure

    async def echo(text: str) -> str:
        return text

    async def wrong(text: str) -> str:
        return text[:-1]

    figures = asyncio.run(aio_measure.unary_concurrent(echo, "abc", 8, 5, 1))
    assert figures["calls"] == 40 and figures["calls_per_s"] > 0
    with pytest.raises(measure.EchoMismatchError):
        asyncio.run(aio_measure.unary_concurrent(wrong, "abc", 4, 3, 1))
    with pytest.raises(measure.EchoMismatchError):
        asyncio.run(aio_measure.unary_latency(wrong, "abc", calls=3, warmup=0))


def test_quick_aio_bench_over_gopherpipe(tmp_path: Path) -> None:
    """`python -m bench.aio --quick` end to end for the GopherPipe column ONLY (grpc.aio and
    grpclib are the bench extra, which tests do not need): the asyncio stubs `gopherpipe gen
    --asyncio` writes at bench time, its server and client processes, every row."""
    figures_path = tmp_path / "aio.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.aio",
            "--quick",
            "--frameworks",
            "gopherpipe",
            "--streams",
            "100",
            "--json",
            str(figures_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(figures_path.read_text())["results"]["gopherpipe"]
    assert results["unary_latency"]["p50_us"] > 0
    assert results["unary_concurrent"]["tasks"] == 64
    assert results["unary_concurrent"]["calls_per_s"] > 0
    assert results["server_stream"]["item_type"] == "Tick"
    assert results["server_stream"]["messages_per_s"] > 0
    assert results["open_streams"]["streams"] == 100
    assert results["open_streams"]["rss_open_mb"] > 0
    assert "server stream, typed msgs/s" in done.stdout

"""Framework-agnostic timing loops; every framework module measures through these.

A framework hands in `call`, a function that sends `payload` and returns what came back, so
the loop around it (and its overhead) is identical for every framework.
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

Call = Callable[[str], str]


class EchoMismatchError(AssertionError):
    pass


def _check(sent: str, got: str) -> None:
    # A fast wrong answer must not count as a fast answer.
    if got != sent:
        raise EchoMismatchError(f"echo returned {got[:40]!r}, expected {sent[:40]!r}")


def percentile(sorted_ns: list[int], pct: float) -> float:
    """Nearest-rank percentile, in nanoseconds."""
    if not sorted_ns:
        return math.nan
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_ns)))
    return float(sorted_ns[rank - 1])


def unary_latency(call: Call, payload: str, calls: int, warmup: int) -> dict[str, Any]:
    """One thread, back-to-back calls: per-call latency percentiles and calls/s."""
    for _ in range(warmup):
        _check(payload, call(payload))
    samples = [0] * calls
    perf = time.perf_counter_ns
    # Collect now so a cycle left over from warm-up is not billed to one measured call.
    gc.collect()
    start = perf()
    for i in range(calls):
        t0 = perf()
        got = call(payload)
        samples[i] = perf() - t0
        _check(payload, got)
    elapsed_ns = perf() - start
    samples.sort()
    return {
        "calls": calls,
        "warmup": warmup,
        "p50_us": percentile(samples, 50) / 1e3,
        "p90_us": percentile(samples, 90) / 1e3,
        "p99_us": percentile(samples, 99) / 1e3,
        "max_us": samples[-1] / 1e3,
        "mean_us": sum(samples) / len(samples) / 1e3,
        "calls_per_s": calls / (elapsed_ns / 1e9),
    }


def unary_throughput(
    call: Call, payload: str, threads: int, calls_per_thread: int, warmup_per_thread: int
) -> dict[str, Any]:
    """`threads` threads sharing one client: total calls/s from a common start to the last reply."""
    errors: list[BaseException] = []
    # threads + the timing thread, so the clock starts only once every worker is warm and waiting.
    ready = threading.Barrier(threads + 1)

    def worker() -> None:
        try:
            for _ in range(warmup_per_thread):
                _check(payload, call(payload))
        except BaseException as exc:
            errors.append(exc)
            ready.abort()
            return
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        try:
            for _ in range(calls_per_thread):
                _check(payload, call(payload))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    gc.collect()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    start = time.perf_counter_ns()
    for w in workers:
        w.join()
    elapsed_ns = time.perf_counter_ns() - start
    if errors:
        raise errors[0]
    total = threads * calls_per_thread
    return {
        "threads": threads,
        "calls_per_thread": calls_per_thread,
        "warmup_per_thread": warmup_per_thread,
        "calls": total,
        "seconds": elapsed_ns / 1e9,
        "calls_per_s": total / (elapsed_ns / 1e9),
    }


def make_payload(size: int) -> str:
    """The same ASCII text for every framework, so UTF-8 and wire sizes match exactly."""
    alphabet = "gopherpipe-echo-0123456789-"
    return (alphabet * (size // len(alphabet) + 1))[:size]


def combine_rounds(runs: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per scenario, the median of every figure over the rounds, plus min and max of each."""
    combined: dict[str, dict[str, Any]] = {}
    scenarios = set.intersection(*(set(run) for run in runs)) if runs else set()
    for scenario in sorted(scenarios):
        rounds = [run[scenario] for run in runs]
        out: dict[str, Any] = {"rounds": len(rounds)}
        for key, value in rounds[0].items():
            values = [r[key] for r in rounds]
            if isinstance(value, float):
                out[key] = statistics.median(values)
                out[key + "_min"] = min(values)
                out[key + "_max"] = max(values)
            else:
                out[key] = value
        combined[scenario] = out
    return combined


class StreamOrderError(AssertionError):
    pass


def server_stream(open_stream: Callable[[int], Any], messages: int) -> dict[str, Any]:
    """One server stream of `messages` typed items; items/s from the request to the last item.

    `open_stream(count)` returns an iterable of typed objects with a `.seq`; every item is
    read as an attribute (so it was decoded) and checked for order.
    """
    for warm in open_stream(100):  # connection and code paths warm, outside the clock
        _ = warm.seq
    gc.collect()
    start = time.perf_counter_ns()
    expected = 0
    item: Any = None
    for item in open_stream(messages):
        if item.seq != expected:
            raise StreamOrderError(f"item {expected} arrived as seq {item.seq}")
        expected += 1
    elapsed_ns = time.perf_counter_ns() - start
    if expected != messages:
        raise StreamOrderError(f"{expected} items arrived, {messages} were asked for")
    return {
        "messages": messages,
        # What the caller iterated over: the proof that items arrived as typed objects.
        "item_type": type(item).__name__,
        "seconds": elapsed_ns / 1e9,
        "messages_per_s": messages / (elapsed_ns / 1e9),
    }


def bidi_pingpong(round_trip: Callable[[int], int], rounds: int, warmup: int) -> dict[str, Any]:
    """One open bidi stream; `round_trip(seq)` sends one item and waits for its echo."""
    for i in range(warmup):
        if round_trip(i) != i:
            raise StreamOrderError("ping-pong answered out of order during warm-up")
    samples = [0] * rounds
    perf = time.perf_counter_ns
    gc.collect()
    start = perf()
    for i in range(rounds):
        t0 = perf()
        got = round_trip(warmup + i)
        samples[i] = perf() - t0
        if got != warmup + i:
            raise StreamOrderError(f"ping {warmup + i} answered with {got}")
    elapsed_ns = perf() - start
    samples.sort()
    return {
        "rounds": rounds,
        "p50_us": percentile(samples, 50) / 1e3,
        "p99_us": percentile(samples, 99) / 1e3,
        "round_trips_per_s": rounds / (elapsed_ns / 1e9),
    }

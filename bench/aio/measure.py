"""The asyncio timing loops; every framework module measures through these.

A framework hands in a coroutine function (`call(payload) -> reply`, or
`open_stream(count) -> async iterable of typed items`), so the loop around it, and its
overhead, is the same for all three. Percentiles, payloads, round medians and the checks
(a wrong echo or an out-of-order item is an error, never a fast answer) are bench.measure's.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

from bench.measure import EchoMismatchError, StreamOrderError, percentile

AsyncCall = Callable[[str], Awaitable[str]]


def _check(sent: str, got: str) -> None:
    if got != sent:
        raise EchoMismatchError(f"echo returned {got[:40]!r}, expected {sent[:40]!r}")


async def unary_latency(call: AsyncCall, payload: str, calls: int, warmup: int) -> dict[str, Any]:
    """One task, back-to-back awaited calls: per-call latency percentiles and calls/s."""
    for _ in range(warmup):
        _check(payload, await call(payload))
    samples = [0] * calls
    perf = time.perf_counter_ns
    gc.collect()
    start = perf()
    for i in range(calls):
        t0 = perf()
        got = await call(payload)
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
        "calls_per_s": calls / (elapsed_ns / 1e9),
    }


async def unary_concurrent(
    call: AsyncCall, payload: str, tasks: int, calls_per_task: int, warmup_per_task: int
) -> dict[str, Any]:
    """`tasks` tasks sharing one client: total calls/s from a common start to the last reply.

    Every task warms up, then waits on one event; the clock starts when the last task is
    waiting and the event is set, so no task's warm-up is inside the timed part.
    """
    go = asyncio.Event()
    warm = 0
    all_warm = asyncio.Event()

    async def worker() -> None:
        nonlocal warm
        for _ in range(warmup_per_task):
            _check(payload, await call(payload))
        warm += 1
        if warm == tasks:
            all_warm.set()
        await go.wait()
        for _ in range(calls_per_task):
            _check(payload, await call(payload))

    workers = [asyncio.create_task(worker()) for _ in range(tasks)]
    try:
        # A worker that failed during warm-up must fail the run, not leave it waiting.
        waiter = asyncio.create_task(all_warm.wait())
        done, _ = await asyncio.wait([waiter, *workers], return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            for task in done:
                task.result()
        gc.collect()
        start = time.perf_counter_ns()
        go.set()
        await asyncio.gather(*workers)
        elapsed_ns = time.perf_counter_ns() - start
    finally:
        for task in workers:
            task.cancel()
    total = tasks * calls_per_task
    return {
        "tasks": tasks,
        "calls_per_task": calls_per_task,
        "warmup_per_task": warmup_per_task,
        "calls": total,
        "seconds": elapsed_ns / 1e9,
        "calls_per_s": total / (elapsed_ns / 1e9),
    }


async def server_stream(
    open_stream: Callable[[int], AsyncIterable[Any]], messages: int
) -> dict[str, Any]:
    """One server stream of `messages` typed items; items/s from the request to the last item.

    Every item is read as an attribute (so it was decoded) and checked for order.
    """
    async for warm in open_stream(100):  # connection and code paths warm, outside the clock
        _ = warm.seq
    gc.collect()
    start = time.perf_counter_ns()
    expected = 0
    item: Any = None
    async for item in open_stream(messages):
        if item.seq != expected:
            raise StreamOrderError(f"item {expected} arrived as seq {item.seq}")
        expected += 1
    elapsed_ns = time.perf_counter_ns() - start
    if expected != messages:
        raise StreamOrderError(f"{expected} items arrived, {messages} were asked for")
    return {
        "messages": messages,
        "item_type": type(item).__name__,
        "seconds": elapsed_ns / 1e9,
        "messages_per_s": messages / (elapsed_ns / 1e9),
    }

"""aio/stream.py's `_Pump` batching (send_stream's source side): an async generator's
items that come without suspending share a batch, one that suspends ends it and is
finished by the next take, failures come after the items before them, and a step left
suspended is ended (CancelledError) when the stream stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from gopherpipe_runtime.aio.stream import _Pump
from gopherpipe_runtime.flow import Credit, SendWindow


def _pump(source: Any) -> _Pump:
    return _Pump(source, Credit(10**9, 10**12, SendWindow(10**12)))


async def _batches(pump: _Pump, most: int = 512) -> list[list[Any]]:
    batches = []
    while (batch := await pump.take(most)) is not None:
        batches.append(batch)
    return batches


def test_an_async_generator_batches_until_it_suspends() -> None:
    async def ticking() -> AsyncIterator[int]:
        for i in range(20):
            if i % 7 == 6:
                await asyncio.sleep(0)
            yield i

    # Items 6 and 13 come after a suspension: each ends a batch and starts the next.
    assert asyncio.run(_batches(_pump(ticking()))) == [
        list(range(6)),
        list(range(6, 13)),
        list(range(13, 20)),
    ]


def test_batches_keep_to_most() -> None:
    async def many() -> AsyncIterator[int]:
        for i in range(10):
            yield i

    assert asyncio.run(_batches(_pump(many()), most=4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert asyncio.run(_batches(_pump(iter(range(10))), most=4)) == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]


def test_a_failure_comes_after_the_items_before_it() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise ValueError("broken")

    def failing_sync() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("broken")

    for source in (failing(), failing_sync()):
        pump = _pump(source)

        async def run(pump: _Pump = pump) -> tuple[list[Any], str]:
            got: list[Any] = []
            try:
                while (batch := await pump.take(512)) is not None:
                    got.append(batch)
            except ValueError as exc:
                return got, str(exc)
            return got, ""

        assert asyncio.run(run()) == ([[1, 2]], "broken")


def test_a_hand_made_awaitable() -> None:
    class Odd:
        def __init__(self) -> None:
            self.i = 0

        def __aiter__(self) -> Odd:
            return self

        def __anext__(self) -> Any:
            i = self.i
            self.i += 1

            class Step:
                def __await__(self) -> Generator[Any, None, int]:
                    if i >= 10:
                        raise StopAsyncIteration
                    if i % 3 == 2:
                        yield from asyncio.sleep(0).__await__()
                    return i

            return Step()

    batches = asyncio.run(_batches(_pump(Odd())))
    assert [i for batch in batches for i in batch] == list(range(10))


def test_a_step_left_suspended_is_cancelled_when_the_stream_stops() -> None:
    seen: list[str] = []

    async def slow() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(10)
            yield 2
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    async def main() -> None:
        pump = _pump(slow())
        assert await pump.take(5) == [1]  # the next step is suspended in sleep(10)
        await pump.stop_source()

    asyncio.run(asyncio.wait_for(main(), 5))
    assert seen == ["CancelledError"]


def test_a_cancelled_take_cancels_the_source_where_it_waits() -> None:
    seen: list[str] = []

    async def slow() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(10)
            yield 2
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    async def main() -> None:
        pump = _pump(slow())
        assert await pump.take(5) == [1]
        taking = asyncio.ensure_future(pump.take(5))
        await asyncio.sleep(0.01)
        taking.cancel()
        try:
            await taking
        except asyncio.CancelledError:
            seen.append("take cancelled")
        await pump.stop_source()

    asyncio.run(asyncio.wait_for(main(), 5))
    assert seen == ["CancelledError", "take cancelled"]

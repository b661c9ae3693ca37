"""gopherpipe_runtime.aio.Chan and select: the threaded Chan's semantics, on an event loop.

Plain test functions drive their own ``asyncio.run`` (no pytest plugin needed). Waits are
bounded by timeouts; nothing asserts wall-clock speed.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from gopherpipe_runtime.aio import Chan, ChanClosed, Selected, run, select
from gopherpipe_runtime.chan import ChanClosed as ThreadedChanClosed

_loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every `arun` test runs on asyncio's loop and on uvloop's (skipped when not installed)."""
    global _loop_factory
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop (the 'uvloop' extra) not installed")
        _loop_factory = uvloop.new_event_loop
    yield
    _loop_factory = None


def arun(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(20):  # a hang fails the test, never the run
            return await coro

    with asyncio.Runner(loop_factory=_loop_factory) as runner:
        return runner.run(bounded())


async def settle() -> None:
    """Let every ready task run until it waits (a few loop iterations)."""
    for _ in range(5):
        await asyncio.sleep(0)


def waiters(chan: Chan[Any]) -> int:
    return len(chan._senders) + len(chan._receivers)


# -- capacity -------------------------------------------------------------------------


def test_buffered_send_waits_only_when_full() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan(2)
        await chan.send(1)
        assert chan.try_send(2)
        assert len(chan) == 2
        assert not chan.try_send(3)
        with pytest.raises(TimeoutError):
            await chan.send(3, timeout=0.01)
        assert waiters(chan) == 0
        blocked = asyncio.create_task(chan.send(3))
        await settle()
        assert not blocked.done()
        assert await chan.recv() == 1
        await settle()
        assert blocked.done()  # the freed slot went to the waiting sender
        assert [await chan.recv(), await chan.recv()] == [2, 3]
        assert chan.try_recv() == (None, False)

    arun(main())


def test_unbuffered_send_is_a_hand_over() -> None:
    async def main() -> None:
        chan: Chan[str] = Chan()
        assert not chan.try_send("x")  # nobody receiving
        sender = asyncio.create_task(chan.send("a"))
        await settle()
        assert not sender.done() and len(chan) == 0
        assert chan.try_recv() == ("a", True)
        await settle()
        assert sender.done() and sender.exception() is None
        receiver = asyncio.create_task(chan.recv())
        await settle()
        assert chan.try_send("b")  # a waiting receiver counts as room
        assert await receiver == "b"
        assert waiters(chan) == 0

    arun(main())


def test_waiting_senders_keep_their_order() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan(1)
        await chan.send(0)
        senders = [asyncio.create_task(chan.send(i)) for i in range(1, 6)]
        await settle()
        assert not chan.try_send(99)  # older senders go first
        assert [await chan.recv() for _ in range(6)] == list(range(6))
        await asyncio.gather(*senders)

    arun(main())


def test_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError):
        Chan(-1)


# -- close ------------------------------------------------------------------------------


def test_close_drains_then_ends() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan(3)
        for i in range(3):
            await chan.send(i)
        chan.close()
        chan.close()  # idempotent
        assert chan.closed and chan.error is None
        assert [await chan.recv() for _ in range(3)] == [0, 1, 2]
        assert await chan.recv_ok() == (None, False)
        with pytest.raises(ChanClosed):
            await chan.recv()
        with pytest.raises(ChanClosed):
            await chan.send(9)
        with pytest.raises(ChanClosed):
            chan.try_send(9)

    arun(main())


def test_close_with_error_after_the_items() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan(2)
        await chan.send(1)
        boom = RuntimeError("boom")
        chan.close(boom)
        chan.close(ValueError("later"))  # the first close wins
        assert chan.error is boom
        assert await chan.recv() == 1
        with pytest.raises(RuntimeError, match="boom"):
            await chan.recv()
        assert await chan.recv_ok() == (None, False)

    arun(main())


def test_close_wakes_waiting_receivers_and_senders() -> None:
    async def main() -> None:
        empty: Chan[int] = Chan()
        receivers = [asyncio.create_task(empty.recv_ok()) for _ in range(3)]
        full: Chan[int] = Chan()
        senders = [asyncio.create_task(full.send(i)) for i in range(3)]
        await settle()
        empty.close()
        full.close(ChanClosed("peer went away"))
        assert await asyncio.gather(*receivers) == [(None, False)] * 3
        for sender in senders:
            with pytest.raises(ChanClosed, match="peer went away"):
                await sender
        assert waiters(empty) == waiters(full) == 0
        assert full.try_recv() == (None, False)  # the closed-out senders delivered nothing

    arun(main())


def test_chan_closed_is_the_threaded_runtimes_type() -> None:
    assert ChanClosed is ThreadedChanClosed


# -- async for / async with -------------------------------------------------------------------


def test_async_for_drains_and_stops() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan()

        async def produce() -> None:
            async with chan:
                for i in range(100):
                    await chan.send(i)

        producer = asyncio.create_task(produce())
        assert [item async for item in chan] == list(range(100))
        await producer

    arun(main())


def test_async_for_raises_the_close_error_after_the_last_item() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan(5)
        got: list[int] = []

        async def produce() -> None:
            async with chan:
                await chan.send(1)
                await chan.send(2)
                raise KeyError("producer failed")

        with pytest.raises(KeyError):
            await produce()
        with pytest.raises(KeyError, match="producer failed"):
            async for item in chan:
                got.append(item)
        assert got == [1, 2]

    arun(main())


def test_async_with_turns_a_cancellation_into_chan_closed() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan()

        async def produce() -> None:
            async with chan:
                await chan.send(1)
                await asyncio.sleep(3600)

        producer = asyncio.create_task(produce())
        assert await chan.recv() == 1
        producer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await producer
        # Receivers must not see a CancelledError of another task's as their own.
        with pytest.raises(ChanClosed, match="cancelled") as caught:
            await chan.recv()
        assert isinstance(caught.value.__cause__, asyncio.CancelledError)

    arun(main())


# -- timeouts ---------------------------------------------------------------------------------


def test_timeouts_raise_and_leave_nothing_behind() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan()
        with pytest.raises(TimeoutError, match="recv"):
            await chan.recv(timeout=0.01)
        with pytest.raises(TimeoutError, match="send"):
            await chan.send(1, timeout=0.01)
        with pytest.raises(TimeoutError):
            await chan.recv_ok(timeout=0)
        with pytest.raises(TimeoutError, match="select"):
            await select(chan, (chan, 2), timeout=0.01)
        assert waiters(chan) == 0
        assert chan.try_recv() == (None, False)  # the timed-out send delivered nothing
        # A value that arrives in time wins over a timeout.
        receiver = asyncio.create_task(chan.recv(timeout=5))
        await settle()
        await chan.send(7)
        assert await receiver == 7

    arun(main())


# -- select -------------------------------------------------------------------------------------


def test_select_receive_send_default_and_closed() -> None:
    async def main() -> None:
        a: Chan[int] = Chan(1)
        b: Chan[int] = Chan(1)
        assert await select(a, b, default=True) == Selected(-1, None, False)
        await b.send(5)
        assert await select(a, b) == Selected(1, 5, True)
        assert await select(a, (b, 6)) == Selected(1, None, True)
        assert b.try_recv() == (6, True)
        a.close()
        assert await select(a, b) == Selected(0, None, False)
        with pytest.raises(ChanClosed):
            await select((a, 1))
        with pytest.raises(TypeError):
            await select("not a chan")  # type: ignore[arg-type]

    arun(main())


def test_select_waits_for_the_first_case_and_withdraws_the_others() -> None:
    async def main() -> None:
        a: Chan[int] = Chan()
        b: Chan[int] = Chan()
        out: Chan[int] = Chan()
        selecting = asyncio.create_task(select(a, b, (out, 42)))
        await settle()
        assert waiters(a) == waiters(b) == waiters(out) == 1
        await b.send(3)
        assert await selecting == Selected(1, 3, True)
        assert waiters(a) == waiters(b) == waiters(out) == 0
        # A send case on an unbuffered chan is ready while a receiver waits on it.
        receiving = asyncio.create_task(out.recv())
        await settle()
        assert await select(a, (out, 9)) == Selected(1, None, True)
        assert await receiving == 9
        # A waiting select's send case is taken by a receiver.
        selecting = asyncio.create_task(select(a, (out, 10)))
        await settle()
        assert await out.recv() == 10
        assert await selecting == Selected(1, None, True)
        # A waiting select sees a close.
        selecting = asyncio.create_task(select(a, b))
        await settle()
        a.close()
        assert await selecting == Selected(0, None, False)

    arun(main())


def test_select_send_case_on_a_chan_closed_while_waiting_raises() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan()
        selecting = asyncio.create_task(select((chan, 1)))
        await settle()
        chan.close()
        with pytest.raises(ChanClosed):
            await selecting

    arun(main())


def test_select_is_fair_among_ready_cases() -> None:
    async def main() -> Counter[int]:
        a: Chan[int] = Chan(1)
        b: Chan[int] = Chan(1)
        counts: Counter[int] = Counter()
        for _ in range(2000):
            a.try_send(0)
            b.try_send(1)
            counts[(await select(a, b)).case] += 1
        return counts

    counts = arun(main())
    # Binomial(2000, 0.5): sd ~22; 700 is ~13 sd away, so this never flakes.
    assert counts[0] > 700 and counts[1] > 700, counts


# -- cancellation ---------------------------------------------------------------------------------


def test_a_thousand_cancelled_waiters_leave_no_residue() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan()
        other: Chan[int] = Chan()
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(chan.recv()) for _ in range(1000)]
        tasks += [asyncio.create_task(chan.send(i)) for i in range(1000)]  # pair with recvs
        await settle()
        # The recvs were all waiting when the sends came: those pairs completed.
        done = sum(task.done() for task in tasks)
        assert done == 2000
        tasks = [asyncio.create_task(chan.recv()) for _ in range(1000)]
        tasks += [asyncio.create_task(other.send(i)) for i in range(1000)]
        tasks += [asyncio.create_task(select(chan, (other, -1))) for _ in range(1000)]
        await settle()
        assert len(chan._receivers) == 2000 and len(other._senders) == 2000
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert waiters(chan) == waiters(other) == 0
        assert other.try_recv() == (None, False)  # no cancelled send delivered
        # Still a working channel.
        receiver = asyncio.create_task(chan.recv())
        await settle()
        assert chan.try_send(5) and await receiver == 5

    arun(main())


def test_a_value_handed_to_a_receiver_cancelled_at_that_moment_goes_back() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan()
        first = asyncio.create_task(chan.recv())
        await settle()
        assert chan.try_send(1)  # handed to `first`, which has not run yet
        first.cancel()  # ... and is cancelled in the same iteration
        with pytest.raises(asyncio.CancelledError):
            await first
        assert chan.try_recv() == (1, True)  # not lost
        # With another receiver waiting, the value goes on to it.
        first = asyncio.create_task(chan.recv())
        await settle()
        second = asyncio.create_task(chan.recv())
        await settle()
        assert chan.try_send(2)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second == 2
        # The same for a select's receive case, ahead of later items.
        buffered: Chan[int] = Chan(2)
        selecting = asyncio.create_task(select(buffered, chan))
        await settle()
        assert buffered.try_send(3) and buffered.try_send(4)
        selecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await selecting
        assert [await buffered.recv(), await buffered.recv()] == [3, 4]
        assert waiters(chan) == waiters(buffered) == 0

    arun(main())


def test_a_sender_cancelled_after_its_value_was_taken_raises_but_delivered_once() -> None:
    """The race asyncio cannot undo (module docstring): the hand-over stands, and the
    cancellation is not swallowed."""

    async def main() -> None:
        chan: Chan[int] = Chan()
        sender = asyncio.create_task(chan.send(1))
        await settle()
        assert chan.try_recv() == (1, True)  # taken while `sender` has not run yet
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
        assert chan.try_recv() == (None, False) and waiters(chan) == 0

    arun(main())


def test_random_cancellations_lose_and_duplicate_nothing() -> None:
    """Senders and receivers cancelled at random: every item is received at most once, and
    every send that returned is received."""

    async def main() -> None:
        rng = random.Random(1313)
        for capacity in (0, 3):
            chan: Chan[int] = Chan(capacity)
            completed: set[int] = set()
            received: list[int] = []

            async def sender(
                value: int, chan: Chan[int] = chan, done: set[int] = completed
            ) -> None:
                await chan.send(value)
                done.add(value)

            async def receiver(chan: Chan[int] = chan, got: list[int] = received) -> None:
                while True:
                    got.append(await chan.recv())

            tasks: list[asyncio.Task[None]] = []
            for value in range(2000):
                make = sender(value) if rng.random() < 0.5 else receiver()
                tasks.append(asyncio.create_task(make))
                if rng.random() < 0.3:
                    await asyncio.sleep(0)
                if tasks and rng.random() < 0.4:
                    rng.choice(tasks).cancel()
            await settle()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            received += chan.recv_many(10_000)
            assert waiters(chan) == 0
            assert len(received) == len(set(received)), "an item was received twice"
            assert completed <= set(received), "a completed send was lost"
            assert len(received) >= 100  # the mix did exchange items

    arun(main())


# -- loops ---------------------------------------------------------------------------------------


def test_one_chan_under_two_successive_asyncio_runs() -> None:
    chan: Chan[int] = Chan()  # made outside any loop

    async def exchange(value: int) -> int:
        receiver = asyncio.create_task(chan.recv())
        await chan.send(value)
        return await receiver

    assert asyncio.run(exchange(1)) == 1
    assert asyncio.run(exchange(2)) == 2


def test_a_waiter_stranded_on_a_closed_loop_is_skipped() -> None:
    chan: Chan[int] = Chan()
    loop = asyncio.new_event_loop()
    stranded = loop.create_task(chan.recv())
    loop.run_until_complete(asyncio.sleep(0))  # it waits; then the loop closes under it
    loop.close()
    assert len(chan._receivers) == 1 and not stranded.done()

    async def main() -> None:
        assert not chan.try_send(1)  # the dead loop's receiver is not a taker
        receiver = asyncio.create_task(chan.recv())
        await settle()
        await chan.send(2)
        assert await receiver == 2

    arun(main())


# -- the runtime's hook ------------------------------------------------------------------------------


def test_on_ready_lets_a_pump_drain_without_a_task() -> None:
    async def main() -> None:
        chan: Chan[int] = Chan()
        pumped: list[int] = []
        calls = 0

        def pump() -> None:
            nonlocal calls
            calls += 1
            while True:
                value, ok = chan.try_recv()  # a change made inside the hook: no nesting
                if not ok:
                    break
                pumped.append(value)  # type: ignore[arg-type]
            if not chan.closed:
                chan._on_ready = pump

        chan._on_ready = pump
        for i in range(50):
            await chan.send(i, timeout=1)  # unbuffered: the pump takes it at once
        chan.close()
        assert pumped == list(range(50))
        assert waiters(chan) == 0 and calls >= 50

    arun(main())


def test_select_takes_an_item_a_hook_buffered_while_it_registered() -> None:
    async def main() -> None:
        a: Chan[int] = Chan()
        b: Chan[int] = Chan(1)

        def fill_b() -> None:  # runs when the select starts waiting on `a`
            b.try_send(5)

        a._on_ready = fill_b
        assert await select(a, b, timeout=1) == Selected(1, 5, True)
        assert waiters(a) == waiters(b) == 0 and len(b) == 0

    arun(main())


# -- aio.run ---------------------------------------------------------------------------------------


async def _loop_module() -> str:
    chan: Chan[str] = Chan()
    receiver = asyncio.create_task(chan.recv())
    await chan.send(type(asyncio.get_running_loop()).__module__)
    return await receiver


def test_run_without_uvloop_is_asyncio_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert run(_loop_module()).startswith("asyncio")


def test_run_uses_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop", reason="uvloop (the optional 'uvloop' extra) is not installed")
    assert run(_loop_module(), debug=False).startswith("uvloop")

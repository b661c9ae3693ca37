"""Chan and select: Go semantics, and races hammered from many threads."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from gopherpipe_runtime import Chan, ChanClosed, select


def _start(target: object, *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_buffered_send_blocks_only_when_full() -> None:
    chan: Chan[int] = Chan(2)
    chan.send(1)
    chan.send(2)
    assert len(chan) == 2
    with pytest.raises(TimeoutError):
        chan.send(3, timeout=0.05)
    assert chan.recv() == 1
    chan.send(3, timeout=1)
    assert [chan.recv(), chan.recv()] == [2, 3]


def test_unbuffered_send_completes_only_when_taken() -> None:
    chan: Chan[str] = Chan()
    with pytest.raises(TimeoutError):
        chan.send("nobody listens", timeout=0.05)
    assert chan.try_recv() == (None, False)  # the timed-out value was withdrawn
    done = threading.Event()

    def sender() -> None:
        chan.send("hand-over")
        done.set()

    thread = _start(sender)
    assert not done.wait(0.05)  # blocked: no receiver yet
    assert chan.recv(timeout=1) == "hand-over"
    thread.join(1)
    assert done.is_set()


def test_recv_timeout_and_recv_ok_after_close() -> None:
    chan: Chan[int] = Chan(1)
    with pytest.raises(TimeoutError):
        chan.recv(timeout=0.05)
    chan.send(7)
    chan.close()
    chan.close()  # idempotent
    assert chan.recv_ok() == (7, True)
    assert chan.recv_ok() == (None, False)
    with pytest.raises(ChanClosed):
        chan.recv()
    with pytest.raises(ChanClosed):
        chan.send(8)


def test_iteration_drains_then_stops() -> None:
    chan: Chan[int] = Chan(10)
    for i in range(5):
        chan.send(i)
    chan.close()
    assert list(chan) == [0, 1, 2, 3, 4]


def test_close_with_error_delivers_items_then_error() -> None:
    chan: Chan[int] = Chan(10)
    with pytest.raises(ValueError), chan:
        chan.send(1)
        chan.send(2)
        raise ValueError("producer failed")
    received = []
    with pytest.raises(ValueError, match="producer failed"):
        for item in chan:
            received.append(item)
    assert received == [1, 2]
    with pytest.raises(ValueError, match="producer failed"):
        chan.recv()


def test_context_manager_closes_cleanly() -> None:
    chan: Chan[int] = Chan(1)
    with chan:
        chan.send(1)
    assert chan.closed and list(chan) == [1]


def test_close_wakes_every_blocked_receiver_and_sender() -> None:
    empty: Chan[int] = Chan()
    full: Chan[int] = Chan(1)
    full.send(0)
    outcomes: list[str] = []
    lock = threading.Lock()

    def receiver() -> None:
        _, ok = empty.recv_ok()
        with lock:
            outcomes.append(f"recv ok={ok}")

    def sender() -> None:
        try:
            full.send(1)
            result = "sent"
        except ChanClosed:
            result = "send closed"
        with lock:
            outcomes.append(result)

    threads = [_start(receiver) for _ in range(10)] + [_start(sender) for _ in range(10)]
    time.sleep(0.05)  # let them block (not synchronisation: the asserts hold either way)
    empty.close()
    full.close()
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads)
    assert Counter(outcomes) == Counter({"recv ok=False": 10, "send closed": 10})


@pytest.mark.parametrize("capacity", [0, 1, 64])
def test_many_producers_and_consumers_lose_and_duplicate_nothing(capacity: int) -> None:
    chan: Chan[tuple[int, int]] = Chan(capacity)
    producers, per_producer, consumers = 8, 2000, 8
    received: list[list[tuple[int, int]]] = [[] for _ in range(consumers)]

    def produce(p: int) -> None:
        for i in range(per_producer):
            chan.send((p, i))

    def consume(c: int) -> None:
        for item in chan:
            received[c].append(item)

    consumer_threads = [_start(consume, c) for c in range(consumers)]
    producer_threads = [_start(produce, p) for p in range(producers)]
    for thread in producer_threads:
        thread.join(60)
    chan.close()
    for thread in consumer_threads:
        thread.join(60)
    assert not any(t.is_alive() for t in consumer_threads + producer_threads)
    everything = [item for part in received for item in part]
    assert len(everything) == producers * per_producer
    assert set(everything) == {(p, i) for p in range(producers) for i in range(per_producer)}
    # Each consumer sees each producer's items in the order they were sent.
    for part in received:
        for p in range(producers):
            mine = [i for q, i in part if q == p]
            assert mine == sorted(mine)


def test_select_receives_from_whichever_is_ready() -> None:
    a: Chan[str] = Chan(1)
    b: Chan[str] = Chan(1)
    b.send("from b")
    assert tuple(select(a, b, timeout=1)) == (1, "from b", True)
    _start(lambda: (time.sleep(0.02), a.send("from a")))
    assert tuple(select(a, b, timeout=5)) == (0, "from a", True)


def test_select_send_case_and_default_and_timeout() -> None:
    out: Chan[int] = Chan(1)
    assert select((out, 5), default=True).case == 0
    assert out.recv() == 5
    out.send(1)  # now full
    assert select((out, 6), default=True).case == -1
    with pytest.raises(TimeoutError):
        select((out, 6), timeout=0.05)


def test_select_sees_close_as_ready_with_ok_false() -> None:
    chan: Chan[int] = Chan()
    _start(lambda: (time.sleep(0.02), chan.close()))
    assert tuple(select(chan, timeout=5)) == (0, None, False)


def test_select_send_to_closed_channel_raises() -> None:
    chan: Chan[int] = Chan(1)
    chan.close()
    with pytest.raises(ChanClosed):
        select((chan, 1), default=True)


def test_select_send_on_unbuffered_hands_over_to_waiting_receiver() -> None:
    chan: Chan[int] = Chan()
    got: list[int] = []
    thread = _start(lambda: got.append(chan.recv(timeout=5)))
    assert select((chan, 99), timeout=5).case == 0
    thread.join(5)
    assert got == [99]


def test_select_is_fair_between_ready_cases() -> None:
    a: Chan[int] = Chan(1000)
    b: Chan[int] = Chan(1000)
    for i in range(1000):
        a.send(i)
        b.send(i)
    picks = Counter(select(a, b).case for _ in range(1000))
    assert picks[0] > 300 and picks[1] > 300


def test_many_selecting_consumers_lose_and_duplicate_nothing() -> None:
    left: Chan[int] = Chan(4)
    right: Chan[int] = Chan()
    total = 4000
    seen: list[int] = []
    lock = threading.Lock()
    closed = [0]

    def consume() -> None:
        open_cases = {0: left, 1: right}
        while open_cases:
            chosen = select(*open_cases.values())
            chan = list(open_cases.values())[chosen.case]
            if not chosen.ok:
                open_cases = {k: c for k, c in open_cases.items() if c is not chan}
                continue
            with lock:
                seen.append(chosen.value)
        with lock:
            closed[0] += 1

    consumers = [_start(consume) for _ in range(6)]
    producers = [
        _start(lambda: [left.send(i) for i in range(0, total, 2)]),
        _start(lambda: [right.send(i) for i in range(1, total, 2)]),
    ]
    for thread in producers:
        thread.join(60)
    left.close()
    right.close()
    for thread in consumers:
        thread.join(60)
    assert closed[0] == 6
    assert sorted(seen) == list(range(total))


def test_recv_many_takes_what_is_ready_and_frees_blocked_senders() -> None:
    chan: Chan[int] = Chan(3)
    for i in range(3):
        chan.send(i)
    sender = _start(lambda: chan.send(3))  # blocks: the channel is full
    deadline = time.monotonic() + 5
    while not chan._senders:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert chan.recv_many(2) == [0, 1]
    sender.join(5)
    assert not sender.is_alive()  # a freed slot took the blocked sender's value
    assert chan.recv_many(10) == [2, 3]
    assert chan.recv_many(10) == []

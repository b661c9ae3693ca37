"""The leader/followers pool's queue: owners (connections) take turns."""

from __future__ import annotations

import functools
import selectors
import socket
import threading
import time

from gopherpipe_runtime.pool import LeaderFollowerPool


def _wait_until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_a_backlog_on_one_connection_does_not_delay_another_connections_call() -> None:
    stopping = threading.Event()

    def poll_once() -> bool:
        stopping.wait(0.005)
        return not stopping.is_set()

    pool = LeaderFollowerPool(1, 1000, poll_once, lambda: None)
    gate = threading.Event()
    ran: list[tuple[str, int]] = []
    pool.try_submit(gate.wait, owner="busy handler")
    pool.start()
    _wait_until(lambda: pool.pending == 1 and not pool._queued)
    for index in range(50):
        assert pool.try_submit(ran.append, ("backlog", index), owner="connection A")
    assert pool.try_submit(ran.append, ("other", 0), owner="connection B")
    gate.set()
    _wait_until(lambda: len(ran) == 51)
    stopping.set()
    pool.join(1.0)
    # One worker: A's first call, then B's (its turn), then the rest of A's in order.
    assert ran[:2] == [("backlog", 0), ("other", 0)]
    assert [i for owner, i in ran if owner == "backlog"] == list(range(50))
    assert not pool._queues and not pool._turns  # no owner kept once its queue is empty


def test_pending_counts_queued_and_running_tasks_against_the_limit() -> None:
    stopping = threading.Event()
    pool = LeaderFollowerPool(1, 3, lambda: not stopping.wait(0.005), lambda: None)
    gate = threading.Event()
    pool.try_submit(gate.wait, owner=1)
    pool.start()
    _wait_until(lambda: not pool._queued)
    assert pool.try_submit(lambda: None, owner=2)
    assert pool.try_submit(lambda: None, owner=3)
    assert not pool.try_submit(lambda: None, owner=4)  # 1 running + 2 queued = max_pending
    assert pool.try_submit(lambda: None, admitted=True, owner=4)  # a stream's next step
    gate.set()
    _wait_until(lambda: pool.pending == 0)
    stopping.set()
    pool.join(1.0)


def test_with_a_poll_descriptor_idle_threads_poll_while_user_code_runs() -> None:
    """Idle threads wait in the kernel for the descriptor (pool.py, "Waiting"): a
    task that blocks in user code does not stop the polling, and at the cap a new
    task waits queued until the running one ends."""
    selector = selectors.EpollSelector()
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    selector.register(reader, selectors.EVENT_READ)
    stopping = threading.Event()
    gate = threading.Event()
    ran: list[int] = []
    read: list[int] = []

    def poll_once() -> bool:
        for _ in selector.select(0):
            for byte in reader.recv(100):
                read.append(byte)
                task = gate.wait if byte == ord("b") else functools.partial(ran.append, byte)
                assert pool.try_submit(task, owner=byte)
        return not stopping.is_set()

    pool = LeaderFollowerPool(
        1,
        10,
        poll_once,
        lambda: None,
        poll_fd=selector.fileno(),
        poll_timeout=lambda: 30.0,  # only events wake the threads here
    )
    pool.start()
    writer.send(b"b")  # one worker, now blocked in "user code"
    _wait_until(lambda: pool._running == 1)
    writer.send(b"x")
    _wait_until(lambda: read == [ord("b"), ord("x")])  # read while the worker is busy
    time.sleep(0.05)
    assert ran == [] and pool.pending == 2  # at the cap: queued, not run
    gate.set()
    _wait_until(lambda: ran == [ord("x")])
    stopping.set()
    writer.send(b"y")  # a round that sees `stopping`
    pool.join(1.0)
    assert not any(thread.is_alive() for thread in pool._threads)
    pool.close()
    selector.close()
    reader.close()
    writer.close()


def test_with_a_poll_descriptor_tasks_queued_by_one_round_run_at_once() -> None:
    """One read may hold several calls: the thread that takes the first wakes an idle
    thread for the next, which no event would wake."""
    selector = selectors.EpollSelector()
    reader, writer = socket.socketpair()
    waker_r, waker_w = socket.socketpair()
    for sock in (reader, waker_r):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    stopping = threading.Event()
    both = threading.Barrier(2, timeout=5.0)

    def poll_once() -> bool:
        for key, _ in selector.select(0):
            data = key.fileobj.recv(100)  # type: ignore[union-attr]
            if key.fileobj is reader:
                for byte in data:
                    task = (lambda: None) if byte == ord("x") else both.wait
                    assert pool.try_submit(task, owner=byte)
        return not stopping.is_set()

    pool = LeaderFollowerPool(
        2,
        10,
        poll_once,
        lambda: waker_w.send(b"\0") and None,
        poll_fd=selector.fileno(),
        poll_timeout=lambda: 30.0,  # only events wake the threads here
    )
    pool.start()
    writer.send(b"x")  # a task: the pool starts a second thread, idle afterwards
    _wait_until(lambda: pool.pending == 0 and len(pool._threads) == 2)
    time.sleep(0.05)  # both threads back waiting for the descriptor
    writer.send(b"ab")  # two tasks from one round; each waits for the other
    _wait_until(lambda: pool.pending == 0)
    assert not both.broken
    stopping.set()
    waker_w.send(b"\0")
    pool.join(1.0)
    pool.close()
    selector.close()
    for sock in (reader, writer, waker_r, waker_w):
        sock.close()

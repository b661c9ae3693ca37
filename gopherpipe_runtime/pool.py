"""Leader/followers: a bounded set of threads that take turns polling the sockets.

One thread at a time -- the leader -- waits in `poll_once` (the server's
selector round). When that round yields work, the leader hands leadership to a
follower *before* running the work itself. So the thread that read a request is
the thread that answers it: no thread handoff sits between a request and its
handler. On a small machine a handoff (futex wake, then a scheduling delay and a
GIL acquisition) costs as much as all the Python work of a call, and this design
removes it from every request's path.

What the design guarantees, as a dedicated I/O thread would:
- the thread polling the sockets never runs user code: before running a task a
  thread either leaves a follower behind to lead or, at the cap, leaves the task
  queued and keeps polling;
- at most `max_workers` tasks run at once; new calls queued plus tasks running
  never exceed `max_pending` (`try_submit` refuses beyond that, and the server
  answers RESOURCE_EXHAUSTED); the steps of streams already admitted are queued
  beyond it, at most one per open stream;
- a thread that finishes a task takes the next queued task directly, without
  waiting for the leader's poll to return;
- queued tasks are taken in turns by owner (the server passes the connection):
  each owner's tasks in the order they came, owners round-robin. So a connection
  that queues thousands of calls at once (2,000 members joining a room) delays
  another connection's call by at most one task per busy connection, not by all
  of its backlog.

Waiting. Where the poller has an epoll descriptor (`poll_fd`: Linux), idle
threads do not wait for leadership on a lock: each waits in the kernel, in a
second epoll that watches `poll_fd` armed for one wake-up (EPOLLONESHOT). An
event wakes exactly one idle thread; it takes leadership, runs a round that
does not block, gives leadership back and re-arms the watch before it runs any
task it got. So the next event wakes another idle thread while this one runs
user code, which keeps the guarantees above, and the common round trip (an
idle server, one call) is one thread: no futex hand-off to a follower, no GIL
ping-pong between the reader and the next leader. Idle threads also wake on
`poll_timeout` (at most every sweep interval) so that the round's timers run;
one of them runs the round, the others wait again. When a round queued more
tasks than the thread that ran it takes, it wakes one idle thread directly
(an eventfd in the same epoll, edge-triggered: one waiter per write), which
takes the next without running a round. Without `poll_fd` the pool
works as described first: followers queue on the leadership lock and the
leader's round blocks in the selector.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

Task = tuple[Callable[..., object], tuple[Any, ...]]


class LeaderFollowerPool:
    def __init__(
        self,
        max_workers: int,
        max_pending: int,
        poll_once: Callable[[], bool],
        wake_poller: Callable[[], None],
        name: str = "gopherpipe-server",
        poll_fd: int | None = None,
        poll_timeout: Callable[[], float] | None = None,
    ) -> None:
        """`poll_once` runs one polling round and returns False once the pool must
        stop; `wake_poller` makes a poll in progress return soon.

        With `poll_fd` (an epoll descriptor that is readable when a round has work)
        and `poll_timeout` (seconds until a round is due anyway), idle threads wait
        in the kernel for that descriptor and `poll_once` must not block; see
        "Waiting" in the module docstring. Linux only; elsewhere it is ignored."""
        if max_workers < 1 or max_pending < max_workers:
            raise ValueError("need max_workers >= 1 and max_pending >= max_workers")
        self.max_workers = max_workers
        self.max_pending = max_pending
        self._poll_once = poll_once
        self._wake_poller = wake_poller
        self._name = name
        self._lock = threading.Lock()  # guards everything below
        self._leadership = threading.Lock()
        self._leader: int | None = None
        self._queues: dict[object, deque[Task]] = {}  # owner -> its queued tasks
        self._turns: deque[object] = deque()  # owners with queued tasks, next first
        self._queued = 0
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._exiting = False
        self._poll_fd = poll_fd if hasattr(select, "epoll") and hasattr(os, "eventfd") else None
        self._poll_timeout = poll_timeout
        self._watch: Any = None
        self._stop_r = self._stop_w = -1
        self._work = -1

    @property
    def pending(self) -> int:
        """Tasks queued or running."""
        return self._queued + self._running

    def start(self) -> None:
        if self._poll_fd is not None:
            # Idle threads wait here for the poller's descriptor, armed for one
            # wake-up at a time (EPOLLONESHOT); the stop pipe wakes them all to leave.
            self._watch = select.epoll()
            self._watch.register(self._poll_fd, select.EPOLLIN | select.EPOLLONESHOT)
            self._stop_r, self._stop_w = os.pipe()
            self._watch.register(self._stop_r, select.EPOLLIN)
            # Work for an idle thread that no event announces: each write wakes
            # one waiter (edge-triggered, never read; see _signal_work).
            self._work = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._watch.register(self._work, select.EPOLLIN | select.EPOLLET)
        with self._lock:
            self._spawn()

    def try_submit(
        self,
        fn: Callable[..., object],
        *args: Any,
        admitted: bool = False,
        owner: object = None,
    ) -> bool:
        """Queue `fn(*args)`; False (and nothing queued) when full or stopping.

        `admitted` work continues something already accepted (the next steps of a
        stream) and is queued whatever `max_pending` says: refusing it would lose
        the stream, and each stream has at most one such task queued. `owner`
        (hashable) is whose turn the task waits for (see the module docstring).
        """
        with self._lock:
            if self._exiting or (not admitted and self._queued + self._running >= self.max_pending):
                return False
            queue = self._queues.get(owner)
            if queue is None:
                queue = self._queues[owner] = deque()
                self._turns.append(owner)
            queue.append((fn, args))
            self._queued += 1
            from_leader = self._leader == threading.get_ident()
        if not from_leader:
            self._wake_poller()  # the leader takes new work when its poll returns
        return True

    def is_leader(self) -> bool:
        """True on the thread running `poll_once` now."""
        return self._leader == threading.get_ident()

    def join(self, timeout: float | None) -> None:
        """Wait for the threads to leave after `poll_once` returned False.

        Threads stuck in user code are not waited for beyond `timeout`; they are
        daemons and cannot hold the process open.
        """
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    # -- the threads ----------------------------------------------------------------

    def _spawn(self) -> None:
        thread = threading.Thread(
            target=self._thread_main, name=f"{self._name}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _take(self) -> Task | None:
        """Dequeue a task if one may run now (lock held)."""
        if not self._queued or self._running >= self.max_workers or self._exiting:
            return None
        owner = self._turns.popleft()
        queue = self._queues[owner]
        task = queue.popleft()
        if queue:
            self._turns.append(owner)  # its next task waits for the others' turns
        else:
            del self._queues[owner]  # forget the owner (a connection) at once
        self._queued -= 1
        self._running += 1
        # Everybody else is running a task: start a thread to poll meanwhile.
        if len(self._threads) == self._running and len(self._threads) <= self.max_workers:
            self._spawn()
        return task

    def _next_task(self) -> Task | None:
        with self._lock:
            task = self._take()
        if task is not None:
            return task
        if self._poll_fd is not None:
            return self._next_task_watching()
        with self._leadership:
            self._leader = threading.get_ident()
            try:
                while True:
                    with self._lock:
                        if self._exiting:
                            return None
                        task = self._take()
                    if task is not None:
                        return task
                    if not self._poll_once():
                        with self._lock:
                            self._exiting = True
                        return None
            finally:
                self._leader = None

    def _next_task_watching(self) -> Task | None:
        """`_next_task` when idle threads wait in the kernel (see "Waiting")."""
        assert self._poll_timeout is not None
        watch = self._watch
        armed = select.EPOLLIN | select.EPOLLONESHOT
        while True:
            with self._lock:
                if self._exiting:
                    return None
                task = self._take()
                more = task is not None and self._queued and self._running < self.max_workers
            if task is not None:
                if more:
                    # A round queued several tasks: no event will wake an idle thread
                    # for the rest, so wake one directly.
                    self._signal_work()
                return task
            try:
                # At least 1 ms: threads woken together by their timeouts, which lost
                # the round to one of them, must not spin while it runs.
                events = watch.poll(max(0.001, self._poll_timeout()), 1)
            except (OSError, ValueError):  # closed after stop(): leave
                return None
            if events and events[0][0] == self._work:
                continue  # woken to take a queued task, not to poll
            if not self._leadership.acquire(blocking=False):
                continue  # another thread (woken by its timeout) runs this round
            self._leader = threading.get_ident()
            alive: bool | None = None  # None: the round raised
            try:
                alive = not self._exiting and self._poll_once()
            finally:
                self._leader = None
                self._leadership.release()
                if alive is not False:
                    # Re-armed before this thread can run a task: from here on the next
                    # event wakes an idle thread, which polls while this one runs user
                    # code. (Also when the round raised, so polling goes on.)
                    watch.modify(self._poll_fd, armed)
                else:
                    with self._lock:
                        self._exiting = True
                    os.write(self._stop_w, b"x")  # wake every idle thread to leave
            if alive is False:
                return None

    def _signal_work(self) -> None:
        """Wake one idle thread (if any waits; else the next to wait) to take a task."""
        try:
            os.eventfd_write(self._work, 1)
        except BlockingIOError:  # the counter is full (after 2**64 - 2 writes): reset it
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._work)
            os.eventfd_write(self._work, 1)

    def close(self) -> None:
        """Free the descriptors of the idle threads' wait, once the threads are gone."""
        if self._watch is not None and not self._watch.closed:
            self._watch.close()
            os.close(self._stop_r)
            os.close(self._stop_w)
            os.close(self._work)

    def _thread_main(self) -> None:
        while True:
            task = self._next_task()
            if task is None:
                return
            fn, args = task
            try:
                fn(*args)
            except BaseException:  # a task must never take its thread down with it
                traceback.print_exc()
            finally:
                # An idle thread must not keep its last task's arguments (a
                # connection, a request body) alive until it runs another task.
                del task, fn, args
                with self._lock:
                    self._running -= 1


class StepRunner:
    """One thread that runs short steps that never block, in the order submitted.

    The server's streams use it to send what their channels hold: taking queued
    items, encoding them and queueing frames never waits, so one thread serves
    every stream. Waking it is a condition variable, which costs less on the
    path of every item than waking the poller through its socket would, and
    items that arrive while a step is scheduled go out in that step's batch.

    The thread starts with the first step. With `idle_exit` (seconds) it ends
    once no step came for that long, and the next `submit` starts another (the
    client's connections use that: a Pipe with no stream sending holds no thread).
    """

    def __init__(self, name: str = "gopherpipe-streams", idle_exit: float | None = None) -> None:
        self._name = name
        self._idle_exit = idle_exit
        self._ready = threading.Condition(threading.Lock())
        self._steps: deque[Callable[[], None]] = deque()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, step: Callable[[], None]) -> bool:
        """Queue `step`; False once stopping."""
        with self._ready:
            if self._stopping:
                return False
            self._steps.append(step)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            else:
                self._ready.notify()
        return True

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._steps and not self._stopping:
                    if not self._ready.wait(self._idle_exit) and not self._steps:
                        self._thread = None  # idle: the next submit starts a thread
                        return
                if not self._steps:
                    return
                step = self._steps.popleft()
            try:
                step()
            except BaseException:  # a step must never take the thread down with it
                traceback.print_exc()

"""Keepalive: the defaults both sides share, and the client's one timer thread.

What each side does (RFC §8.1): it sends PING on a connection from which it has
read nothing for `keepalive_interval`, and if nothing at all arrives within
`keepalive_timeout` after that PING it declares the peer dead and closes the
connection; every call on it ends with UNAVAILABLE naming keepalive. Any bytes
are an answer, as in gRPC and HTTP/2: a PONG is only the least a live peer sends,
and a busy connection never pings.

Server (server.py): its periodic sweep pings, and only connections with an open
call, where the client is reading (a client reads its idle connections only when
it uses them; `idle_timeout`, which PINGs do not reset, deals with those). It also
keeps the ping policy: a PING sooner than `min_ping_interval` after the previous
one is a strike, the third strike in a row (`MAX_PING_STRIKES` = 2, as gRPC) gets
GOAWAY RESOURCE_EXHAUSTED "too many pings" and the connection is closed.

Client (pipe.py): reading a connection is a role taken by waiting callers, not a
thread, so an idle connection has nobody reading it and a PONG would never be read.
Instead of a thread per connection, `Timer` is one process-wide thread, started
with the first connection that wants keepalive and gone as soon as none does. It
keeps a heap of due times over weak references (it never keeps a connection
alive) and, when one is due, calls the connection's `keepalive_check(now)`, which
reads what has arrived if nobody else is reading, pings, or declares the peer
dead, and returns when it is next due (None: no longer watched).

The defaults are chosen so that they never trip on a loaded machine and never
refuse each other: a default client pings a silent connection after 60 s and gives
it 20 s to answer; a default server permits a PING every 10 s, so any client
interval of 10 s and more is accepted (gRPC's server permits one per 5 minutes,
which refuses the 10-30 s intervals its users commonly set); a server pings a
client only after 2 h of silence on a connection with calls open (gRPC's default).

Fork: the thread does not exist in a child, and its lock may have been held by a
parent thread at the moment of the fork. `after_fork()` (registered with
`os.register_at_fork`; calling it again is harmless) gives the child a fresh
timer; connections inherited from the parent are not watched in the child.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from typing import Protocol

log = logging.getLogger("gopherpipe.keepalive")

DEFAULT_CLIENT_INTERVAL = 60.0
"""`Pipe(keepalive_interval=)`: seconds of reading nothing before a client pings."""
DEFAULT_SERVER_INTERVAL = 2 * 60 * 60.0
"""`Server(keepalive_interval=)`: gRPC's default; clients ping far sooner themselves."""
DEFAULT_TIMEOUT = 20.0
"""`keepalive_timeout=` on both sides (gRPC's default): seconds a peer has to send
anything after a PING. Generous, so that a busy peer is not taken for a dead one."""
DEFAULT_MIN_PING_INTERVAL = 10.0
"""`Server(min_ping_interval=)`: a PING sooner than this after the previous one is a strike."""
MAX_PING_STRIKES = 2
"""Strikes in a row a server tolerates; the next early PING gets GOAWAY (gRPC's number)."""
TOO_MANY_PINGS = "too many pings"
"""The GOAWAY message of the ping policy; a client that gets it doubles its interval."""


class Watched(Protocol):
    def keepalive_check(self, now: float) -> float | None:
        """Ping, read or declare dead as due; when to look again (None: stop watching)."""


class Watch:
    """One watched connection's place in the timer: its connection, weakly."""

    __slots__ = ("active", "ref", "timer")

    def __init__(self, target: Watched, timer: Timer) -> None:
        self.ref = weakref.ref(target)
        self.timer = timer
        self.active = True


class Timer:
    """The process-wide keepalive thread (module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Watch]] = []
        """(due, tie-breaker, watch): one entry per active watch, except the one being
        checked."""
        self._order = itertools.count()
        self._watched = 0
        self._thread: threading.Thread | None = None
        self._wake_at: float | None = None
        """When the thread's wait ends; None while it is not waiting."""

    @property
    def running(self) -> bool:
        return self._thread is not None

    def settle(self, timeout: float) -> None:
        """If no connection is watched, wait up to `timeout` for the thread to leave, so
        that closing the last client leaves no thread behind (not from the thread)."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        deadline = time.monotonic() + timeout
        # In slices: a connection watched meanwhile (another Pipe connecting) keeps the
        # thread, and closing must not wait out the whole timeout for it.
        while not self._watched and thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.01)

    def watch(self, target: Watched, due: float) -> Watch:
        """Call `target.keepalive_check` at `due`, and then whenever it asks."""
        watch = Watch(target, self)
        with self._cond:
            self._watched += 1
            self._push(due, watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="gopherpipe-keepalive", daemon=True
                )
                self._thread.start()
        return watch

    def unwatch(self, watch: Watch) -> None:
        """The connection closed: forget it (the thread leaves if it was the last)."""
        with self._cond:
            if not watch.active:
                return
            watch.active = False
            self._watched -= 1
            if not self._watched:
                self._heap.clear()
                self._cond.notify()

    def _push(self, due: float, watch: Watch) -> None:
        """Schedule `watch` (lock held), waking the thread if it is now the earliest."""
        heapq.heappush(self._heap, (due, next(self._order), watch))
        if self._wake_at is not None and due < self._wake_at:
            self._cond.notify()

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while True:
                    if not self._watched:
                        self._heap.clear()
                        self._thread = None
                        return
                    due, _, watch = self._heap[0]
                    if not watch.active:
                        heapq.heappop(self._heap)
                        continue
                    now = time.monotonic()
                    if due <= now:
                        heapq.heappop(self._heap)
                        break
                    self._wake_at = due
                    cond.wait(due - now)
                    self._wake_at = None
            target = watch.ref()
            next_due: float | None = None
            if target is not None:
                try:
                    next_due = target.keepalive_check(time.monotonic())
                except Exception:
                    # A bug must cost one connection its keepalive, not every connection.
                    log.exception("keepalive check failed; no longer watching that connection")
                del target  # the thread must not keep a connection alive while it waits
            with cond:
                if not watch.active:
                    continue
                if next_due is None:
                    watch.active = False
                    self._watched -= 1
                else:
                    self._push(next_due, watch)


_timer = Timer()


def watch(target: Watched, due: float) -> Watch:
    """Watch `target` with the process's timer (see `Timer.watch`)."""
    return _timer.watch(target, due)


def unwatch(watch: Watch) -> None:
    """Stop watching; a watch inherited across fork is left alone (its timer's lock
    may be held for ever by a thread that does not exist in this process)."""
    if watch.timer is _timer:
        _timer.unwatch(watch)


def settle(timeout: float = 1.0) -> None:
    """See `Timer.settle` (Pipe.close calls it, holding no lock the thread could need)."""
    _timer.settle(timeout)


def timer_running() -> bool:
    """Whether the keepalive thread exists (for tests and diagnostics)."""
    return _timer.running


def after_fork() -> None:
    """In a forked child: a fresh timer, with no thread and no inherited lock state."""
    global _timer
    _timer = Timer()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=after_fork)

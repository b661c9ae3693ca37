"""Chan[T]: Go channels for threads.

A channel is a bounded, thread-safe FIFO that can be closed:

- ``Chan(capacity)``: ``send`` blocks while ``capacity`` items are buffered. With
  capacity 0 (the default, as in Go) a send completes only once a receiver has
  taken the value -- a hand-over, not a mailbox.
- ``recv()`` blocks while the channel is empty and open. Once it is closed and
  drained, ``recv()`` raises `ChanClosed` -- or the error the channel was closed
  with -- and ``recv_ok()`` returns ``(None, False)``, Go's ``v, ok := <-ch``.
- ``for item in chan`` drains the channel and stops at close; if the channel was
  closed with an error, the loop raises it after the last item.
- ``close()`` is idempotent; ``close(error=exc)`` makes receivers get every item
  sent before, then `exc`. ``with chan:`` closes on exit, with the escaping
  exception if there is one. Sending on a closed channel raises `ChanClosed`.
- `select` waits on several send/receive cases at once.

Every blocking call takes an optional ``timeout`` (seconds) and raises
``TimeoutError`` when it passes.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, NamedTuple, TypeVar, Union

T = TypeVar("T")


class ChanClosed(Exception):
    """Receive on a closed, drained channel, or send on a closed channel."""


class _Sender:
    """A blocked sender on a full channel; `taken` once a receiver has its value."""

    __slots__ = ("taken", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.taken = False


class Chan(Generic[T]):
    def __init__(self, capacity: int = 0) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._buffer: deque[T] = deque()
        self._senders: deque[_Sender] = deque()  # blocked senders, oldest first
        self._receivers = 0  # threads blocked in recv (or in a select with a recv case here)
        self._closed = False
        self._error: BaseException | None = None
        self._selectors: set[_Selector] = set()
        self._on_ready: Callable[[bool], None] | None = None
        """Called once on the next change, then disarmed: how a reader that holds no
        thread (the runtime sending a stream's items) waits. It counts itself in
        `_receivers` while armed, so senders do notify. Its argument says whether
        it may do its work right here: True from a `send` that has released the
        lock, False when called with the lock held. While it is armed, a `send` to an
        empty channel hands its item over at once, even unbuffered (the reader
        takes it in the step the hook runs)."""

    # -- state ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def error(self) -> BaseException | None:
        """The error the channel was closed with, if any."""
        return self._error

    def __len__(self) -> int:
        """Items buffered (not counting blocked senders)."""
        return len(self._buffer)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Chan {state} {len(self._buffer)}/{self.capacity}>"

    # -- send -------------------------------------------------------------------------

    def send(self, value: T, timeout: float | None = None) -> None:
        """Send `value`, blocking while the channel is full (or, unbuffered, until taken)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._closed:
                raise self._send_closed_error()
            if not self._senders and (
                len(self._buffer) < self.capacity
                or (self._on_ready is not None and not self._buffer)
            ):
                # A reader armed on `_on_ready` is a waiting receiver: as in `try_send`,
                # the hand-over is immediate, even on an unbuffered channel.
                self._buffer.append(value)
                ready, self._on_ready = self._on_ready, None
                # A receiver that holds no thread (`ready`) counts in `_receivers`, but
                # waits on no condition: wake threads only if some may wait.
                if self._receivers > (ready is not None) or self._selectors:
                    self._notify()
                if ready is None:
                    return
            else:
                self._send_blocking(value, deadline)
                return
        ready(True)

    def _send_blocking(self, value: T, deadline: float | None) -> None:
        """Wait (lock held) until a receiver takes `value`, the channel closes or time runs out."""
        sender = _Sender(value)
        self._senders.append(sender)
        self._notify()
        while not sender.taken:
            if self._closed:
                self._senders.remove(sender)
                raise self._send_closed_error()
            if not self._wait(deadline):
                self._senders.remove(sender)
                raise TimeoutError("send timed out")

    def try_send(self, value: T) -> bool:
        """Send without blocking: True if a buffer slot or a waiting receiver took it."""
        with self._lock:
            return self._try_send_locked(value)

    def _try_send_locked(self, value: T) -> bool:
        if self._closed:
            raise self._send_closed_error()
        if self._senders:
            return False  # older senders go first
        if len(self._buffer) < self.capacity or len(self._buffer) < self._receivers:
            # A waiting receiver counts as a free slot: the hand-over is immediate.
            self._buffer.append(value)
            self._notify()
            return True
        return False

    # -- receive ------------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> T:
        """The next value; raises ChanClosed (or the close error) once closed and drained."""
        value, ok = self.recv_ok(timeout)
        if not ok:
            raise self._closed_error()
        return value  # type: ignore[return-value]

    def recv_ok(self, timeout: float | None = None) -> tuple[T | None, bool]:
        """``(value, True)``, or ``(None, False)`` once the channel is closed and drained."""
        try:
            return self._recv_ok(timeout)
        finally:
            self._after_take()

    def _after_take(self) -> None:
        """Runs after a receive, outside the lock (subclasses send flow-control credit here)."""

    def _recv_ok(self, timeout: float | None) -> tuple[T | None, bool]:
        with self._lock:
            taken, value = self._try_recv_locked()
            if taken:
                return value, True
            if self._closed:
                return None, False
            deadline = None if timeout is None else time.monotonic() + timeout
            self._receivers += 1
            for selector in self._selectors:
                selector.signal()  # a select sending on an unbuffered chan may hand over now
            try:
                while True:
                    if not self._wait(deadline):
                        raise TimeoutError("recv timed out")
                    taken, value = self._try_recv_locked()
                    if taken:
                        return value, True
                    if self._closed:
                        return None, False
            finally:
                self._receivers -= 1

    def recv_many(self, most: int) -> list[T]:
        """Take up to `most` items that are ready now, without blocking (maybe none)."""
        items: list[T] = []
        with self._lock:
            while len(items) < most:
                taken, value = self._try_recv_locked()
                if not taken:
                    break
                items.append(value)  # type: ignore[arg-type]
        self._after_take()
        return items

    def try_recv(self) -> tuple[T | None, bool]:
        """Receive without blocking: ``(value, True)`` or ``(None, False)`` if nothing is there."""
        with self._lock:
            taken, value = self._try_recv_locked()
        self._after_take()
        return (value, True) if taken else (None, False)

    def _try_recv_locked(self) -> tuple[bool, T | None]:
        # Waking is paid only when somebody can be waiting for the change: a blocked
        # sender (always in `_senders`) or a select. Receivers never wait on a take.
        if self._buffer:
            value = self._buffer.popleft()
            if self._senders and len(self._buffer) < self.capacity:
                # The oldest blocked sender's value moves into the freed slot.
                sender = self._senders.popleft()
                sender.taken = True
                self._buffer.append(sender.value)
                self._notify()
            elif self._selectors:
                self._notify()
            return True, value
        if self._senders:  # unbuffered (or full and drained): take straight from a sender
            sender = self._senders.popleft()
            sender.taken = True
            self._notify()
            return True, sender.value
        return False, None

    def __iter__(self) -> Iterator[T]:
        while True:
            value, ok = self.recv_ok()
            if not ok:
                if self._error is not None:
                    raise self._error
                return
            yield value  # type: ignore[misc]

    # -- close --------------------------------------------------------------------------

    def close(self, error: BaseException | None = None) -> None:
        """Close; receivers drain what was sent, then see the end (or `error`). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._error = error
            self._notify()

    def _send_closed_error(self) -> ChanClosed:
        # Whoever closed it may have said why (e.g. "the client cancelled the stream").
        if isinstance(self._error, ChanClosed):
            return ChanClosed(f"send on a closed channel: {self._error}")
        return ChanClosed("send on a closed channel")

    def _closed_error(self) -> BaseException:
        return self._error if self._error is not None else ChanClosed("channel is closed")

    def __enter__(self) -> Chan[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(error=exc)

    # -- waiting ------------------------------------------------------------------------

    def _wait(self, deadline: float | None) -> bool:
        """Wait for a change (lock held); False if the deadline passed."""
        if deadline is None:
            self._changed.wait()
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self._changed.wait(remaining)
        return True

    def _notify(self) -> None:
        # Condition.notify_all is Python code that costs a few microseconds even with
        # nobody waiting; its waiters list only changes under our lock, which we hold.
        if self._changed._waiters:  # type: ignore[attr-defined]
            self._changed.notify_all()
        for selector in self._selectors:
            selector.signal()
        ready = self._on_ready
        if ready is not None:
            self._on_ready = None
            ready(False)


class _Selector:
    """What a `select` sleeps on; every channel in it signals it on any change.

    Lock order is always channel lock, then selector lock, never the reverse:
    select checks its channels without holding its own lock.
    """

    __slots__ = ("condition", "signalled")

    def __init__(self) -> None:
        self.condition = threading.Condition(threading.Lock())
        self.signalled = False

    def signal(self) -> None:
        with self.condition:
            self.signalled = True
            self.condition.notify()


class Selected(NamedTuple):
    case: int
    """Which case fired: its position in the `select` call; -1 for the default."""
    value: Any
    """The received value (None for a send case, or a receive on a closed channel)."""
    ok: bool
    """False when a receive case found its channel closed and drained."""


SelectCase = Union["Chan[Any]", tuple["Chan[Any]", Any]]


def select(*cases: SelectCase, timeout: float | None = None, default: bool = False) -> Selected:
    """Wait until one of `cases` can proceed, do it, and say which.

    A case is a channel (receive from it) or a ``(channel, value)`` pair (send
    `value` on it). When several are ready one is chosen at random, as in Go, so
    no case starves. ``default=True`` returns ``Selected(-1, None, False)`` at once
    if none is ready; otherwise `timeout` bounds the wait (TimeoutError).
    A receive case on a closed, drained channel is ready and yields ``ok=False``;
    a send case on a closed channel raises ChanClosed.

    A send case on an unbuffered channel is ready while a receiver is waiting on
    it (in `recv` or in another `select`).
    """
    parsed: list[tuple[Chan[Any], bool, Any]] = []
    for case in cases:
        if isinstance(case, Chan):
            parsed.append((case, False, None))
        elif isinstance(case, tuple) and len(case) == 2 and isinstance(case[0], Chan):
            parsed.append((case[0], True, case[1]))
        else:
            raise TypeError(f"select case must be a Chan or a (Chan, value) pair, got {case!r}")
    deadline = None if timeout is None else time.monotonic() + timeout
    selector = _Selector()
    receiving = {chan for chan, is_send, _ in parsed if not is_send}
    for chan, _, _ in parsed:
        with chan._lock:
            chan._selectors.add(selector)
            if chan in receiving:
                chan._receivers += 1
                chan._notify()
    order = list(range(len(parsed)))
    try:
        while True:
            with selector.condition:
                selector.signalled = False
            random.shuffle(order)
            for index in order:
                chan, is_send, value = parsed[index]
                with chan._lock:
                    if is_send:
                        if chan._try_send_locked(value):
                            return Selected(index, None, True)
                        continue
                    taken, received = chan._try_recv_locked()
                    closed = chan._closed
                if taken:
                    chan._after_take()
                    return Selected(index, received, True)
                if closed:
                    return Selected(index, None, False)
            if default:
                return Selected(-1, None, False)
            with selector.condition:
                while not selector.signalled:
                    if deadline is None:
                        selector.condition.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError("select timed out")
                    selector.condition.wait(remaining)
    finally:
        for chan, _, _ in parsed:
            with chan._lock:
                chan._selectors.discard(selector)
                if chan in receiving:
                    chan._receivers -= 1
                    receiving.discard(chan)

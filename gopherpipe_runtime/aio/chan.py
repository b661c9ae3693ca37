"""Chan[T] and select for asyncio tasks: Go channels on an event loop.

The same semantics as the threaded `gopherpipe_runtime.chan` (read its docstring), awaited
instead of blocked on:

- ``Chan(capacity)``: ``await send(v)`` waits while ``capacity`` items are buffered. With
  capacity 0 (the default, as in Go) a send completes only once a receiver has taken the
  value -- a hand-over, not a mailbox.
- ``await recv()`` waits while the channel is empty and open; once it is closed and drained
  it raises `ChanClosed` (or the error it was closed with), and ``await recv_ok()`` returns
  ``(None, False)``. ``try_send`` / ``try_recv`` / ``recv_many`` never wait.
- ``async for item in chan`` drains it and stops at close (raising the close error, if
  any, after the last item). ``close(error=None)`` is synchronous and idempotent;
  ``async with chan:`` closes on exit, with the escaping exception (a CancelledError
  becomes a ChanClosed caused by it, so receivers never see another task's cancellation
  as their own).
- `select` waits on several send/receive cases at once and picks a ready one at random.
- Every waiting call takes ``timeout`` (seconds) and raises ``TimeoutError`` when it passes.
- `ChanClosed` and `Selected` are the threaded runtime's own classes: one error type for
  both runtimes.

Loops: a Chan is not bound to a loop. It makes no future until a task has to wait, and then
on that task's running loop, so a Chan made outside any loop, or used under two successive
``asyncio.run()`` calls, just works. It belongs to one loop (one thread) at a time: calling
it from another thread is undefined -- the threaded `gopherpipe_runtime.Chan` is for threads.

Cancellation: a cancelled (or timed-out) waiter removes itself at once and leaves nothing
behind. A send cancelled while it waits never delivers. A value handed to a receiver (or a
select's receive case) in the same loop iteration as that receiver's cancellation is not
lost: it goes back to the front of the channel, to the next receiver. The converse race
cannot be undone: a sender whose value a receiver took in the very iteration the sender
was cancelled raises CancelledError although the value was delivered (asyncio has no way
to take it back, and swallowing the cancellation would break ``asyncio.timeout`` and task
groups).

Costs: waiters wait in insertion-ordered dicts (FIFO with O(1) removal on cancellation), so
every operation is O(1) amortised; nothing polls.

Internals for the runtime (not public API): ``_on_ready``, a one-shot synchronous hook
called on the next change that may let a ``try_send``/``try_recv`` succeed (an item, free
space, a waiting sender or receiver, close), so the runtime can pump a channel without a
task per channel; and ``_after_take``, which subclasses override to return flow-control
credit after each receive.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar, Union

from ..chan import ChanClosed, Selected

T = TypeVar("T")

_CLOSED: Any = object()
"""A plain receiver's result when the channel closed (empty) while it waited."""


class _Waiter:
    """One task waiting on one channel: a plain send/recv (``case`` -1) or a select case.

    A select registers one waiter per case, all sharing its future: the first case to
    complete it wins, and a waiter whose future is done is dead wherever it still sits.
    """

    __slots__ = ("case", "future", "value")

    def __init__(self, future: asyncio.Future[Any], value: Any = None, case: int = -1) -> None:
        self.future = future
        self.value = value
        self.case = case

    def deliver(self, value: Any) -> None:
        """A receiver gets `value`."""
        self.future.set_result(value if self.case < 0 else Selected(self.case, value, True))

    def sent(self) -> None:
        """A sender's value was taken."""
        self.future.set_result(None if self.case < 0 else Selected(self.case, None, True))

    def closed(self) -> None:
        """A receiver learns the channel is closed and drained."""
        self.future.set_result(_CLOSED if self.case < 0 else Selected(self.case, None, False))


def _pop_live(waiters: OrderedDict[_Waiter, None]) -> _Waiter | None:
    """Remove and return the oldest waiter still waiting (dead ones are dropped on the way)."""
    while waiters:
        waiter, _ = waiters.popitem(last=False)
        future = waiter.future
        # A waiter whose loop was closed under it (the loop stopped without cancelling its
        # tasks) can never run again: completing its future would raise, so it is dropped.
        if not future.done() and not future.get_loop().is_closed():
            return waiter
    return None


def _first_live(waiters: OrderedDict[_Waiter, None]) -> _Waiter | None:
    """The oldest waiter still waiting, left in place (dead ones before it are dropped)."""
    while waiters:
        waiter = next(iter(waiters))
        future = waiter.future
        if not future.done() and not future.get_loop().is_closed():
            return waiter
        del waiters[waiter]
    return None


def _expire(future: asyncio.Future[Any], message: str) -> None:
    # The timer and a hand-over both complete the future: whichever comes first decides,
    # so a timeout never loses a value the way a cancellation could.
    if not future.done():
        future.set_exception(TimeoutError(message))


class Chan(Generic[T]):
    def __init__(self, capacity: int = 0) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._buffer: deque[T] = deque()
        # Invariants: receivers wait only while the buffer is empty; senders only while it
        # is full (a cancelled receiver's value put back may overfill it by that much).
        self._senders: OrderedDict[_Waiter, None] = OrderedDict()
        self._receivers: OrderedDict[_Waiter, None] = OrderedDict()
        self._closed = False
        self._error: BaseException | None = None
        self._on_ready: Callable[[], None] | None = None
        """Internal: called once on the next change (an item, space, a waiter, close), then
        disarmed; never from inside itself (a change it makes re-runs it if it re-armed).
        It may call try_send/try_recv/recv_many and re-arm; it must not raise. Calls can be
        spurious: re-check with a try_* call."""
        self._firing = False
        self._refire = False

    # -- state ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def error(self) -> BaseException | None:
        """The error the channel was closed with, if any."""
        return self._error

    def __len__(self) -> int:
        """Items buffered (not counting waiting senders)."""
        return len(self._buffer)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<aio.Chan {state} {len(self._buffer)}/{self.capacity}>"

    # -- send -------------------------------------------------------------------------

    async def send(self, value: T, timeout: float | None = None) -> None:
        """Send `value`, waiting while the channel is full (or, unbuffered, until taken)."""
        if self._closed:
            raise self._send_closed_error()
        if self._give(value):
            return
        if timeout is not None and timeout <= 0:
            raise TimeoutError("send timed out")
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), value)
        self._senders[waiter] = None
        if self._on_ready is not None:
            self._fire()  # a waiting sender is an item for a try_recv pump
        handle = (
            None
            if timeout is None
            else loop.call_later(timeout, _expire, waiter.future, "send timed out")
        )
        try:
            await waiter.future
        finally:
            # Cancelled or timed out before a receiver took it: out of the queue, never
            # delivered. (If it was taken in the same iteration, see the module docstring.)
            self._senders.pop(waiter, None)
            if handle is not None:
                handle.cancel()

    def try_send(self, value: T) -> bool:
        """Send without waiting: True if a waiting receiver or a free buffer slot took it."""
        if self._closed:
            raise self._send_closed_error()
        return self._give(value)

    def _give(self, value: T) -> bool:
        # (The emptiness tests spare the common case two calls.)
        receiver = _pop_live(self._receivers) if self._receivers else None
        if receiver is not None:
            receiver.deliver(value)
        elif len(self._buffer) < self.capacity and (
            not self._senders or _first_live(self._senders) is None
        ):
            # Older waiting senders go first: a free slot with senders waiting is theirs.
            self._buffer.append(value)
        else:
            return False
        if self._on_ready is not None:
            self._fire()
        return True

    # -- receive ----------------------------------------------------------------------

    async def recv(self, timeout: float | None = None) -> T:
        """The next value; raises ChanClosed (or the close error) once closed and drained."""
        value, ok = await self.recv_ok(timeout)
        if not ok:
            raise self._closed_error()
        return value  # type: ignore[return-value]

    async def recv_ok(self, timeout: float | None = None) -> tuple[T | None, bool]:
        """``(value, True)``, or ``(None, False)`` once the channel is closed and drained."""
        taken, value = self._take()
        if taken:
            self._after_take()
            return value, True
        if self._closed:
            return None, False
        if timeout is not None and timeout <= 0:
            raise TimeoutError("recv timed out")
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future())
        self._receivers[waiter] = None
        if self._on_ready is not None:
            self._fire()  # a waiting receiver is room for a try_send pump
        handle = (
            None
            if timeout is None
            else loop.call_later(timeout, _expire, waiter.future, "recv timed out")
        )
        try:
            result = await waiter.future
        except asyncio.CancelledError:
            future = waiter.future
            if not future.cancelled() and future.exception() is None:
                # Handed a value in the iteration we were cancelled in: it goes back.
                result = future.result()
                if result is not _CLOSED:
                    self._put_back(result)
            raise
        finally:
            self._receivers.pop(waiter, None)
            if handle is not None:
                handle.cancel()
        if result is _CLOSED:
            return None, False
        self._after_take()
        return result, True

    def try_recv(self) -> tuple[T | None, bool]:
        """Receive without waiting: ``(value, True)``, or ``(None, False)`` if nothing is there."""
        taken, value = self._take()
        if not taken:
            return None, False
        self._after_take()
        return value, True

    def recv_many(self, most: int) -> list[T]:
        """Take up to `most` items that are ready now, without waiting (maybe none)."""
        items: list[T] = []
        while len(items) < most:
            taken, value = self._take()
            if not taken:
                break
            items.append(value)  # type: ignore[arg-type]
        if items:
            self._after_take()
        return items

    def _after_take(self) -> None:
        """Internal: runs after a receive (subclasses return flow-control credit here)."""

    def _take(self) -> tuple[bool, T | None]:
        if self._buffer:
            value = self._buffer.popleft()
            if self._senders and len(self._buffer) < self.capacity:
                # The freed slot goes to the oldest waiting sender.
                sender = _pop_live(self._senders)
                if sender is not None:
                    self._buffer.append(sender.value)
                    sender.sent()
        else:
            # Unbuffered (or drained): straight from the oldest waiting sender.
            sender = _pop_live(self._senders)
            if sender is None:
                return False, None
            value = sender.value
            sender.sent()
        if self._on_ready is not None:
            self._fire()
        return True, value

    def _put_back(self, value: T) -> None:
        """A value a cancelled receiver was handed returns to the front of the channel.

        Even once closed: a closed channel still yields what was sent before the close.
        """
        receiver = _pop_live(self._receivers)
        if receiver is not None:
            receiver.deliver(value)
        else:
            self._buffer.appendleft(value)
        if self._on_ready is not None:
            self._fire()

    def __aiter__(self) -> Chan[T]:
        return self

    async def __anext__(self) -> T:
        value, ok = await self.recv_ok()
        if not ok:
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return value  # type: ignore[return-value]

    # -- close ------------------------------------------------------------------------

    def close(self, error: BaseException | None = None) -> None:
        """Close; receivers drain what was sent, then see the end (or `error`). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._error = error
        # Receivers wait only on an empty buffer: they are at the end now.
        while (receiver := _pop_live(self._receivers)) is not None:
            receiver.closed()
        while (sender := _pop_live(self._senders)) is not None:
            sender.future.set_exception(self._send_closed_error())
        if self._on_ready is not None:
            self._fire()

    def _send_closed_error(self) -> ChanClosed:
        # Whoever closed it may have said why (e.g. "the client cancelled the stream").
        if isinstance(self._error, ChanClosed):
            return ChanClosed(f"send on a closed channel: {self._error}")
        return ChanClosed("send on a closed channel")

    def _closed_error(self) -> BaseException:
        return self._error if self._error is not None else ChanClosed("channel is closed")

    async def __aenter__(self) -> Chan[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, asyncio.CancelledError):
            # Re-raising a CancelledError in the receivers' tasks would look to them (and
            # to their task groups and timeouts) as if they had been cancelled themselves.
            error: BaseException = ChanClosed("the sending task was cancelled")
            error.__cause__ = exc
            self.close(error)
        else:
            self.close(exc)

    # -- the runtime's hook -----------------------------------------------------------

    def _fire(self) -> None:
        """Run the armed `_on_ready` hook; re-entrant changes re-run it instead of nesting."""
        if self._firing:
            self._refire = True
            return
        self._firing = True
        try:
            while (hook := self._on_ready) is not None:
                self._on_ready = None
                self._refire = False
                try:
                    hook()
                except Exception as exc:  # a broken hook must not break the sender's send
                    _report(exc, self)
                if not self._refire:
                    break
        finally:
            self._firing = False


def _report(exc: Exception, chan: Chan[Any]) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise exc from None
    loop.call_exception_handler({"message": f"{chan!r}: _on_ready hook raised", "exception": exc})


def _try_case(index: int, chan: Chan[Any], is_send: bool, value: Any) -> Selected | None:
    """Do case `index` if it can proceed now (the caller runs `_after_take`)."""
    if is_send:
        return Selected(index, None, True) if chan.try_send(value) else None
    taken, received = chan._take()
    if taken:
        return Selected(index, received, True)
    if chan._closed:
        return Selected(index, None, False)
    return None


SelectCase = Union["Chan[Any]", tuple["Chan[Any]", Any]]


async def select(
    *cases: SelectCase, timeout: float | None = None, default: bool = False
) -> Selected:
    """Wait until one of `cases` can proceed, do it, and say which.

    A case is a channel (receive from it) or a ``(channel, value)`` pair (send `value` on
    it). When several are ready one is chosen at random, as in Go, so no case starves.
    ``default=True`` returns ``Selected(-1, None, False)`` at once if none is ready;
    otherwise `timeout` bounds the wait (TimeoutError). A receive case on a closed, drained
    channel is ready and yields ``ok=False``; a send case on a closed channel raises
    ChanClosed. A send case on an unbuffered channel is ready while a receiver waits on it.

    Cancellation is as for `Chan.send`/`Chan.recv`: a value a receive case was handed as
    the select was cancelled goes back to its channel.
    """
    parsed: list[tuple[Chan[Any], bool, Any]] = []
    for case in cases:
        if isinstance(case, Chan):
            parsed.append((case, False, None))
        elif isinstance(case, tuple) and len(case) == 2 and isinstance(case[0], Chan):
            parsed.append((case[0], True, case[1]))
        else:
            raise TypeError(f"select case must be a Chan or a (Chan, value) pair, got {case!r}")
    order = list(range(len(parsed)))
    random.shuffle(order)
    for index in order:
        chan, is_send, value = parsed[index]
        ready = _try_case(index, chan, is_send, value)
        if ready is not None:
            if ready.ok and not is_send:
                chan._after_take()
            return ready
    if default:
        return Selected(-1, None, False)
    if timeout is not None and timeout <= 0:
        raise TimeoutError("select timed out")
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Selected] = loop.create_future()
    registered: list[tuple[Chan[Any], _Waiter]] = []
    handle = None
    try:
        for index, (chan, is_send, value) in enumerate(parsed):
            waiter = _Waiter(future, value, index)
            (chan._senders if is_send else chan._receivers)[waiter] = None
            registered.append((chan, waiter))
        # Hooks run only once every case waits: one run mid-registration could make a
        # later case ready (an item buffered beside a waiting receiver breaks the order).
        for chan, _ in registered:
            if chan._on_ready is not None:
                chan._fire()
        if timeout is not None:
            handle = loop.call_later(timeout, _expire, future, "select timed out")
        try:
            selected = await future
        except asyncio.CancelledError:
            if not future.cancelled() and future.exception() is None:
                selected = future.result()
                chan, is_send, _ = parsed[selected.case]
                if selected.ok and not is_send:
                    chan._put_back(selected.value)
            raise
        if selected.ok and not parsed[selected.case][1]:
            parsed[selected.case][0]._after_take()
        return selected
    finally:
        for chan, waiter in registered:
            chan._senders.pop(waiter, None)
            chan._receivers.pop(waiter, None)
        if handle is not None:
            handle.cancel()

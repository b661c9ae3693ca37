"""The two halves of a stream on an event loop, shared by the asyncio Server and Pipe.

`Inbound` is what a peer streams to us: a client's output, or the `AsyncIterator` a
handler's ``Chan[T]`` parameter arrives as. The owner `deliver`s each MESSAGE's batch,
which the receive side of flow control (`flow.Inflow`, the threaded runtime's) admits
against the windows we announced; a batch that breaks them is the owner's connection
error. Items are decoded as they are taken, and taking returns credit (CREDIT frames,
through the Inflow's callback) as the threaded `InboundChan` does: so the peer never
has more than a window in flight, however slowly we read.

`send_stream` moves a source's items to the wire within the peer's credit
(`flow.Credit`): it suspends on the credit, on the source and on the connection's
`drain()`, so a slow consumer suspends the producer and nothing buffers without bound.
It is a coroutine run by the owner's task for the stream; cancelling that task is how
a stream is stopped from outside (a CANCEL, a lost connection), and the source is then
stopped as the threaded `stop_source` does: an `aio.Chan` is closed, an async
generator is closed (`aclose`), a generator too. A task cancelled before it first
runs never enters the coroutine, so there the owner stops the source itself (the Pipe
closes a Chan source; a generator that never started has nothing to close).

Items share frames where that costs no waiting: an `aio.Chan` is drained with
`recv_many`, the items an async generator yields without suspending go out together
(each `__anext__` is stepped by hand: one that suspends ends the batch, and the next
take finishes it), and a sync iterable fills the credit.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from typing import Any, Generic, Self, TypeVar

from ..chan import ChanClosed
from ..flow import Credit, Inflow
from ..status import InvalidArgumentError, RpcError
from ..stream import MAX_BATCH_ITEMS, PumpOutcome, message_payload_size
from ..wire.codec import CodecError
from .connection import Connection

T = TypeVar("T")


class Inbound(AsyncIterator[T], Generic[T]):
    """Items a peer streams to us; see the module docstring."""

    __slots__ = (
        "_bad_item",
        "_decode_item",
        "_error",
        "_finished",
        "_items",
        "_on_abandon",
        "_waiter",
        "ended",
        "inflow",
    )

    def __init__(
        self,
        inflow: Inflow,
        *,
        decode_item: Callable[[Any], T] | None = None,
        bad_item: Callable[[InvalidArgumentError], BaseException] | None = None,
        on_abandon: Callable[[], None] | None = None,
    ) -> None:
        self.inflow = inflow
        self._decode_item = decode_item
        self._bad_item = bad_item
        self._on_abandon = on_abandon
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._finished = False
        self._error: BaseException | None = None
        self.ended = False
        """The reader has seen the end (or left): nothing more will be taken."""

    def __len__(self) -> int:
        return len(self._items)

    def deliver(self, items: list[Any], nbytes: int) -> bool:
        """A MESSAGE's batch (wire form) arrived; False if it broke the windows."""
        if self._finished:
            return True  # the stream is over for us: dropped, and counts for nothing
        if not self.inflow.admit(len(items), nbytes):
            return False
        self._items.extend(items)
        self._wake()
        return True

    def finish(self, error: BaseException | None = None, *, discard: bool = False) -> None:
        """No more items will come; `error` is raised after what is queued (at once
        with `discard`, which also drops the queue). Idempotent."""
        if discard and self._items:
            self._items.clear()
        if self._finished:
            return
        self._finished = True
        self._error = error
        if not self._items:
            self.inflow.release()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        items = self._items
        while not items:
            if self._finished:
                self.ended = True
                self.inflow.release()
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        value = items.popleft()
        for send, count, nbytes in self.inflow.consumed(1):
            send(count, nbytes)
        decode = self._decode_item
        if decode is None:
            return value  # type: ignore[no-any-return]
        try:
            return decode(value)
        except InvalidArgumentError as exc:
            error = exc if self._bad_item is None else self._bad_item(exc)
            self.finish(error, discard=True)
            self._abandon()
            raise error from None

    async def recv(self) -> T:
        """The next item; ChanClosed at the end (or the stream's error)."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise ChanClosed("stream ended") from None

    async def aclose(self) -> None:
        """The reader stops before the end: the owner is told (a client cancels)."""
        if not self._finished:
            self.finish(ChanClosed("stream closed by its reader"), discard=True)
            self._abandon()
        self.ended = True
        self.inflow.release()

    def _abandon(self) -> None:
        callback, self._on_abandon = self._on_abandon, None
        if callback is not None:
            callback()


async def send_stream(
    source: AsyncIterable[Any] | Iterable[Any],
    *,
    encode_item: Callable[[Any], Any],
    make_frames: Callable[[list[Any]], list[bytes]],
    credit: Credit,
    connection: Connection,
) -> tuple[str, BaseException | None]:
    """Send `source` within `credit`; how it ended (a `stream.PumpOutcome`) and why."""
    pump = _Pump(source, credit)
    finished = False
    try:
        while True:
            allowance = credit.available(MAX_BATCH_ITEMS)
            if allowance < 0:
                return PumpOutcome.ABORTED, None
            if not allowance:
                await pump.credit_ready(1)
                continue
            try:
                taken = await pump.take(allowance)
            except Exception as exc:  # the source failed: user code, or a Chan closed with it
                finished = True
                return PumpOutcome.FAILED, exc
            if taken is None:
                finished = True
                return PumpOutcome.DONE, None
            try:
                frames = make_frames([encode_item(item) for item in taken])
            except (CodecError, InvalidArgumentError) as exc:
                return PumpOutcome.BAD_ITEM, exc
            except RpcError as exc:  # an item larger than the peer's frames
                return PumpOutcome.FAILED, exc
            except Exception as exc:
                return PumpOutcome.BAD_ITEM, exc
            credit.spend(len(taken), 0)
            for frame in frames:
                while (go := credit.spend_frame(message_payload_size(frame))) == 0:
                    await pump.credit_ready(0)
                if go < 0:
                    return PumpOutcome.ABORTED, None
                connection.write(frame)
            if connection.paused:
                await connection.drain()
    except (ConnectionError, OSError):
        return PumpOutcome.ABORTED, None
    finally:
        if not finished:
            await pump.stop_source()


class _Pump:
    """Taking from a source of any kind, and waiting on credit, for `send_stream`."""

    def __init__(self, source: AsyncIterable[Any] | Iterable[Any], credit: Credit) -> None:
        from .chan import Chan  # the Chan module imports nothing of ours; lazily all the same

        self._credit = credit
        self._source = source
        self._chan: Chan[Any] | None = source if isinstance(source, Chan) else None
        self._async: AsyncIterator[Any] | None = None
        self._sync: Iterator[Any] | None = None
        self._sequence: list[Any] | tuple[Any, ...] | None = None
        self._position = 0
        self._step: Generator[Any, Any, Any] | None = None
        """An async source's `__anext__` that suspended while a batch was being taken:
        its items went out first, and the next `take` finishes it (`_resume`)."""
        self._yielded: Any = None
        self._failure: BaseException | None = None
        """How the source failed after the items of the last batch: raised next."""
        self._exhausted = False
        if self._chan is not None:
            pass
        elif isinstance(source, list | tuple):
            self._sequence = source
        elif isinstance(source, AsyncIterable):
            self._async = aiter(source)
        else:
            self._sync = iter(source)

    async def credit_ready(self, most: int) -> None:
        waiter = asyncio.get_running_loop().create_future()

        def resume() -> None:
            if not waiter.done():
                waiter.set_result(None)

        if self._credit.park(resume, most):
            await waiter

    async def take(self, most: int) -> list[Any] | None:
        """Up to `most` items, at least one; None once the source is exhausted."""
        chan = self._chan
        if chan is not None:
            items = chan.recv_many(most)
            if items:
                return items
            value, ok = await chan.recv_ok()
            if not ok:
                if chan.error is not None:
                    raise chan.error
                return None
            return [value]
        if self._sequence is not None:
            batch = list(self._sequence[self._position : self._position + most])
            self._position += len(batch)
            return batch or None
        failure = self._failure
        if failure is not None:
            self._failure = None
            raise failure
        if self._exhausted:
            return None
        if self._async is not None:
            return await self._take_async(most)
        return self._take_sync(most)

    def _take_sync(self, most: int) -> list[Any] | None:
        """A sync iterable runs inline whatever the batch: take what credit allows."""
        source = self._sync
        assert source is not None
        batch: list[Any] = []
        try:
            for item in source:
                batch.append(item)
                if len(batch) >= most:
                    break
            else:
                self._exhausted = True
        except Exception as exc:
            if not batch:
                raise
            self._failure = exc  # after the items that came before it
        return batch or None

    async def _take_async(self, most: int) -> list[Any] | None:
        """Items of an async source, batched: each `__anext__` is stepped by hand, and
        the items it yields without suspending (an async generator with nothing to wait
        for) join the batch; the first one that suspends ends the batch if it has items,
        and is finished (awaited) by the next `take`. So a fast producer fills frames and
        a slow one's items go out as they come, one await per item."""
        source = self._async
        assert source is not None
        items: list[Any] = []
        while len(items) < most:
            step, yielded = self._step, self._yielded
            self._step = self._yielded = None
            if step is None:
                # The awaitable's iterator (a coroutine's, an async generator's asend):
                # what a task steps with send/throw.
                step = source.__anext__().__await__()
                if not hasattr(step, "throw"):  # a hand-made awaitable's plain iterator
                    step = _stepper(step)
                try:
                    yielded = step.send(None)
                except StopIteration as done:
                    items.append(done.value)
                    continue
                except StopAsyncIteration:
                    self._exhausted = True
                    break
                except Exception as exc:
                    if not items:
                        raise
                    self._failure = exc
                    break
                if items:  # it waits for something: send what we have meanwhile
                    self._step, self._yielded = step, yielded
                    break
            try:
                items.append(await _resume(step, yielded))
            except StopAsyncIteration:
                self._exhausted = True
                break
        return items or None

    async def stop_source(self) -> None:
        """Nobody reads the source any more: tell whoever feeds it."""
        if self._chan is not None:
            self._chan.close(ChanClosed("the stream ended"))
            return
        step, self._step = self._step, None
        if step is not None:
            # The source is suspended inside a step nobody will finish: it gets the
            # CancelledError a cancelled stream gives it at its await, and ends there
            # (or aclose, below, ends it).
            with contextlib.suppress(BaseException):
                step.throw(asyncio.CancelledError())
        closer = self._async if self._async is not None else self._sync
        if closer is None:
            return
        aclose = getattr(closer, "aclose", None)
        with contextlib.suppress(Exception):
            if aclose is not None:
                await aclose()
            elif callable(close := getattr(closer, "close", None)):
                close()


def _stepper(iterator: Iterator[Any]) -> Generator[Any, Any, Any]:
    """A generator (send, throw) around an awaitable's plain iterator."""
    return (yield from iterator)


@types.coroutine
def _resume(step: Generator[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Await the rest of `step`, a coroutine already stepped by hand that yielded
    `yielded` (what it waits for: a future, or None for a bare yield). Its yields go to
    the running task as if the task had stepped it; a cancellation is thrown into it."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:
            try:
                yielded = step.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            yielded = step.send(sent)
        except StopIteration as done:
            return done.value


__all__ = ["Inbound", "send_stream"]

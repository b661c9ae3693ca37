"""The pieces both ends of a stream share: credit, inbound channels, and the pump.

Flow control is counted in items. Each side announces in HELLO how many items it
will buffer per stream (`stream_window`); a sender may have at most that many
items unconsumed at the receiver. The receiver returns credit (a CREDIT frame)
as its user takes items out, half a window at a time. So a consumer that stops
reading stops the producer -- its `send` blocks -- and the items queued for one
stream never exceed one window, however fast the producer is.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from .chan import Chan, ChanClosed
from .codec import Codec
from .frames import STREAM_ID_SIZE, FrameType, encode_stream_frame
from .status import InvalidArgumentError, ResourceExhaustedError

T = TypeVar("T")

DEFAULT_STREAM_WINDOW = 1024
MAX_BATCH_ITEMS = 512
_ITER_CHUNK = 128


class Credit:
    """How many items we may still send on one stream."""

    def __init__(self, initial: int) -> None:
        self._available = initial
        self._aborted = False
        self._changed = threading.Condition(threading.Lock())

    def wait(self, most: int) -> int:
        """Block until some credit is there; return how much to use (<= most), 0 if aborted."""
        with self._changed:
            while self._available <= 0 and not self._aborted:
                self._changed.wait()
            return 0 if self._aborted else min(most, self._available)

    def spend(self, count: int) -> None:
        with self._changed:
            self._available -= count

    def grant(self, count: int) -> None:
        with self._changed:
            self._available += count
            self._changed.notify_all()

    def abort(self) -> None:
        with self._changed:
            self._aborted = True
            self._changed.notify_all()


class InboundChan(Chan[T]):
    """A channel fed by the connection with items from the peer.

    It holds at most one window of items (the peer's credit guarantees that), and
    every item the user takes out -- by `recv`, iteration, `try_recv` or `select`
    -- counts towards the next CREDIT. Closing it from user code tells the peer
    to stop (`on_abandon`); the connection ends it with `finish`.
    """

    def __init__(
        self,
        window: int,
        on_consumed: Callable[[int], None],
        on_abandon: Callable[[], None],
    ) -> None:
        super().__init__(window)
        self._on_consumed = on_consumed
        self._on_abandon = on_abandon
        self._consumed = 0
        self._credit_due = 0
        self._credit_step = max(1, window // 2)
        self._finished = False
        self.decode_item: Callable[[Any], Any] | None = None
        """Applied as the user takes each item, on the user's thread: items travel in
        wire form until then, so decoding cost lands on the consumer, not on the
        thread that reads the socket for every stream."""
        self.bad_item: Callable[[InvalidArgumentError], BaseException] | None = None
        """What an item that does not decode raises instead (on the client, a server
        breaking the contract is INTERNAL); None raises the InvalidArgumentError."""

    def deliver(self, items: Sequence[T]) -> bool:
        """Queue items from the peer without blocking; False if that breaks the window."""
        with self._lock:
            if self._closed:
                return True  # the user closed it: drop what is still in flight
            if len(self._buffer) + len(items) > self.capacity:
                return False
            self._buffer.extend(items)
            if self._receivers or self._selectors:
                self._notify()
            return True

    def finish(self, error: BaseException | None = None) -> None:
        """The stream ended (peer half-closed, failed, or the connection dropped)."""
        self._finished = True
        super().close(error)

    def close(self, error: BaseException | None = None) -> None:
        """Stop receiving: the peer is told to stop sending; buffered items are dropped."""
        with self._lock:
            abandoning = not self._closed and not self._finished
            self._buffer.clear()
        super().close(error)
        if abandoning:
            self._on_abandon()

    def __iter__(self) -> Iterator[T]:
        """Yield items as they arrive; raises the stream's error after the last one.

        Takes what is queued in chunks, under one lock acquisition, and decodes
        outside the lock: at a few hundred thousand items a second, per-item
        locking would cost more than the decoding. Items of a chunk being yielded
        count as consumed, so memory stays bounded by one window plus one chunk.
        """
        decode = self.decode_item
        while True:
            chunk = self._take_chunk(_ITER_CHUNK)
            if chunk:
                if decode is None:
                    yield from chunk
                    continue
                try:
                    decoded = [decode(raw) for raw in chunk]
                except InvalidArgumentError as exc:
                    raise self._bad(exc) from None
                yield from decoded
                continue
            value, ok = self.recv_ok()  # nothing queued: wait for the next item or the end
            if not ok:
                if self._error is not None:
                    raise self._error
                return
            yield value  # type: ignore[misc]

    def _take_chunk(self, most: int) -> list[Any]:
        with self._lock:
            buffer = self._buffer
            count = min(len(buffer), most)
            if not count:
                return []
            chunk = [buffer.popleft() for _ in range(count)]
            if self._selectors:
                self._notify()
            self._count_consumed(count)
        self._after_take()
        return chunk

    def _count_consumed(self, count: int) -> None:
        """Lock held: note consumed items; credit is due every half window."""
        if not self._finished:
            self._consumed += count
            if self._consumed >= self._credit_step:
                self._credit_due += self._consumed
                self._consumed = 0

    def _after_take(self) -> None:
        # The CREDIT frame goes out after the lock is released: a socket send under
        # it would stall the connection's reader, which needs the lock to deliver.
        if self._credit_due:
            with self._lock:
                due, self._credit_due = self._credit_due, 0
            if due:
                self._on_consumed(due)

    def _try_recv_locked(self) -> tuple[bool, T | None]:
        taken, value = super()._try_recv_locked()
        if not taken:
            return taken, value
        self._count_consumed(1)
        if self.decode_item is not None:
            try:
                value = self.decode_item(value)
            except InvalidArgumentError as exc:
                raise self._bad(exc) from None
        return taken, value

    def _bad(self, error: InvalidArgumentError) -> BaseException:
        return error if self.bad_item is None else self.bad_item(error)


class PumpOutcome:
    """How a pump ended: the source was exhausted or failed, an item could not be
    encoded (the producer's bug, told apart so the status can say so), or sending
    was aborted."""

    DONE = "done"
    FAILED = "failed"
    BAD_ITEM = "bad item"
    ABORTED = "aborted"


def pump(
    source: Iterable[Any],
    encode_item: Callable[[Any], Any],
    send_batch: Callable[[list[Any]], None],
    credit: Credit,
) -> tuple[str, BaseException | None]:
    """Move items from `source` to the wire in batches, never beyond the credit.

    Credit is awaited *before* an item is taken from the source, so when the
    receiver stops reading, the producer feeding `source` blocks too. From a
    `Chan` it batches whatever is already queued (up to the credit) into one
    frame; a list or tuple is sliced; any other iterable goes one item a frame
    (the writer still coalesces frames on the socket).

    Returns (outcome, error): the error is the source's close error, the
    exception raised while producing an item (FAILED), or while encoding one
    (BAD_ITEM).
    """
    if isinstance(source, Chan):
        return _pump_chan(source, encode_item, send_batch, credit)
    if isinstance(source, list | tuple):
        position = 0
        while position < len(source):
            allowance = credit.wait(MAX_BATCH_ITEMS)
            if not allowance:
                return PumpOutcome.ABORTED, None
            chunk = source[position : position + allowance]
            try:
                batch = [encode_item(item) for item in chunk]
            except Exception as exc:
                return PumpOutcome.BAD_ITEM, exc
            credit.spend(len(batch))
            send_batch(batch)
            position += len(batch)
        return PumpOutcome.DONE, None
    iterator = iter(source)
    while True:
        if not credit.wait(1):
            return PumpOutcome.ABORTED, None
        try:
            item = next(iterator)
        except StopIteration:
            return PumpOutcome.DONE, None
        except Exception as exc:
            return PumpOutcome.FAILED, exc
        try:
            encoded = encode_item(item)
        except Exception as exc:
            return PumpOutcome.BAD_ITEM, exc
        credit.spend(1)
        send_batch([encoded])


def _pump_chan(
    source: Chan[Any],
    encode_item: Callable[[Any], Any],
    send_batch: Callable[[list[Any]], None],
    credit: Credit,
) -> tuple[str, BaseException | None]:
    while True:
        allowance = credit.wait(MAX_BATCH_ITEMS)
        if not allowance:
            return PumpOutcome.ABORTED, None
        item, ok = source.recv_ok()
        if not ok:
            error = source.error
            return (PumpOutcome.FAILED, error) if error is not None else (PumpOutcome.DONE, None)
        more = source.recv_many(allowance - 1) if allowance > 1 else []
        try:
            batch = [encode_item(item)]
            batch += [encode_item(extra) for extra in more]
        except Exception as exc:
            return PumpOutcome.BAD_ITEM, exc
        credit.spend(len(batch))
        send_batch(batch)


def message_frames(
    codec: Codec, stream_id: int, batch: list[Any], peer_max_frame_size: int
) -> list[bytes]:
    """MESSAGE frames carrying `batch`: one, or several if it is too big for one.

    Raises CodecError for an item the codec cannot carry, ResourceExhaustedError
    for a single item larger than the peer accepts.
    """
    body = codec.encode(batch)
    if len(body) + STREAM_ID_SIZE <= peer_max_frame_size:
        return [encode_stream_frame(FrameType.MESSAGE, stream_id, body)]
    if len(batch) == 1:
        raise ResourceExhaustedError(
            f"stream item of {len(body)} bytes exceeds the peer's max frame size "
            f"of {peer_max_frame_size}"
        )
    half = len(batch) // 2
    return message_frames(codec, stream_id, batch[:half], peer_max_frame_size) + message_frames(
        codec, stream_id, batch[half:], peer_max_frame_size
    )


def stop_source(source: Iterable[Any], reason: str) -> None:
    """Tell whoever feeds `source` that nobody will read it any more.

    A Chan is closed, so its producer's next `send` raises ChanClosed; a
    generator is closed, so it gets GeneratorExit at its `yield`.
    """
    if isinstance(source, Chan):
        source.close(ChanClosed(reason))
    else:
        close = getattr(source, "close", None)
        if callable(close):
            # ValueError: a generator running in another thread cannot be closed.
            with contextlib.suppress(Exception):
                close()

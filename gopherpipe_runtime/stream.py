"""The pieces both ends of a stream share: inbound channels and the sender.

Flow control (flow.py) counts items and bytes. A consumer that stops reading
stops the producer -- its `send` blocks -- and what is queued for one stream
never exceeds its windows, however fast the producer is.

`Outbound` moves a source's items to the wire within the credit, on both ends,
and holds no thread while it waits: it runs in short steps, parks when the
credit, the source or the socket's queue says wait, and is resumed by the event
that ends the wait (CREDIT, an item sent on the source `Chan`, the queue
draining). Who runs a step: the producer's own `send` when items come sparsely
(no hand-off), else one thread of the owner's (the server's stream-sending
thread, a client connection's step thread), where a burst shares frames. Taking
from a `Chan`, list or tuple never blocks; a generator or other iterator is
user code that may, so its steps run on a thread that may block while it
produces an item (a pool thread on the server, a thread of its own on the
client, ending when the step parks).

On the client, a receiver that finds an `InboundChan` empty may read the
connection itself (`Leader`), as a unary caller does, instead of waiting to be
handed the item by another thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from .chan import Chan, ChanClosed
from .flow import Credit, CreditSend, Inflow
from .status import InvalidArgumentError, ResourceExhaustedError, RpcError
from .wire.codec import Codec, CodecError
from .wire.frames import STREAM_HEADER_SIZE, STREAM_ID_SIZE, FrameType, encode_stream_frame

T = TypeVar("T")

MAX_BATCH_ITEMS = 512
_ITER_CHUNK = 128


LEAD_DONE, LEAD_TIMED_OUT, LEAD_WAIT = range(3)


class Leader(Protocol):
    """What lets a receiver on an `InboundChan` read the connection itself (the client's)."""

    def lead(self, chan: InboundChan[Any], deadline: float | None) -> int:
        """Read until `chan` changes: LEAD_DONE once it did (or reading stopped),
        LEAD_TIMED_OUT at `deadline`; LEAD_WAIT if another thread is reading, and
        `chan` is then registered to be offered the role (`unregister` ends that)."""
        ...

    def unregister(self, chan: InboundChan[Any]) -> None: ...


class InboundChan(Chan[T]):
    """A channel fed by the connection with items from the peer.

    It holds at most one window of items (the peer's credit guarantees that), and
    every item the user takes out -- by `recv`, iteration, `try_recv` or `select`
    -- counts towards the next CREDIT. Closing it from user code tells the peer
    to stop (`on_abandon`); the connection ends it with `finish`.
    """

    def __init__(self, inflow: Inflow, window: int, on_abandon: Callable[[], None]) -> None:
        super().__init__(window)
        self.inflow = inflow
        self._on_abandon = on_abandon
        self._credit_out: list[CreditSend] = []
        self._finished = False
        self.decode_item: Callable[[Any], Any] | None = None
        """Applied as the user takes each item, on the user's thread: items travel in
        wire form until then, so decoding cost lands on the consumer, not on the
        thread that reads the socket for every stream."""
        self.bad_item: Callable[[InvalidArgumentError], BaseException] | None = None
        """What an item that does not decode raises instead (on the client, a server
        breaking the contract is INTERNAL); None raises the InvalidArgumentError."""
        self.leader: Leader | None = None
        """The client's connection, which a receiver may read itself (see `_wait`)."""
        self.lead_offered = False
        """Set (then the channel notified) when a waiting receiver may take the reading role."""

    def _wait(self, deadline: float | None) -> bool:
        """Wait for a change (lock held); on the client, by reading the socket.

        With a `leader` (the client's connection), a receiver that finds the
        channel empty reads the connection itself when nobody else is reading,
        so an item reaches the thread that wants it without a thread hand-off.
        If another thread is reading, it waits to be handed an item, the end, or
        the reading role (`lead_offered`).
        """
        leader = self.leader
        if leader is None:
            return super()._wait(deadline)
        self._lock.release()
        try:
            outcome = leader.lead(self, deadline)
        finally:
            self._lock.acquire()
        if outcome != LEAD_WAIT:
            return outcome == LEAD_DONE
        try:
            if self._buffer or self._closed or self.lead_offered:
                return True
            return super()._wait(deadline)
        finally:
            leader.unregister(self)

    def deliver(self, items: Sequence[T], nbytes: int) -> bool:
        """Queue items from a MESSAGE of `nbytes` without blocking; False if that
        breaks the windows we announced (see flow.py)."""
        with self._lock:
            if self._closed:
                return True  # ended or closed by the user: drop what is still in flight
            if not self.inflow.admit(len(items), nbytes):
                return False
            self._buffer.extend(items)
            if self._receivers or self._selectors:
                self._notify()
            return True

    def finish(
        self, error: BaseException | None = None, *, discard: bool = False, release: bool = True
    ) -> None:
        """The stream ended (peer half-closed, failed, or the connection dropped).

        Buffered items stay for the user to drain unless `discard`. `release=False`
        keeps counting them against our windows: the peer's half-close is not the
        end of the stream for its flow control, which ends with the call.
        """
        if discard:
            with self._lock:
                self._buffer.clear()
        if release:
            self.inflow.release()
        self._finished = True
        super().close(error)

    def close(self, error: BaseException | None = None) -> None:
        """Stop receiving: the peer is told to stop sending; buffered items are dropped."""
        with self._lock:
            abandoning = not self._closed and not self._finished
            self._buffer.clear()
        self.inflow.release()
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
        """Lock held: note consumed items; the CREDIT they make due goes out unlocked."""
        due = self.inflow.consumed(count)
        if due:
            self._credit_out += due

    def _after_take(self) -> None:
        # The CREDIT frame goes out after the lock is released: a socket send under
        # it would stall the connection's reader, which needs the lock to deliver.
        if self._credit_out:
            with self._lock:
                due, self._credit_out = self._credit_out, []
            for send, items, nbytes in due:
                send(items, nbytes)

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
    """How sending a source ended: the source was exhausted or failed, an item could not be
    encoded (the producer's bug, told apart so the status can say so), or sending
    was aborted."""

    DONE = "done"
    FAILED = "failed"
    BAD_ITEM = "bad item"
    ABORTED = "aborted"


def message_payload_size(frame: bytes) -> int:
    """The bytes a MESSAGE frame counts against the byte windows."""
    return len(frame) - STREAM_HEADER_SIZE


_PARKED, _SCHEDULED, _RUNNING, _DONE = range(4)
_SPARSE_S = 50e-6
"""An item sent this long after the stream ran dry goes out on the sender's thread."""


class Outbound:
    """Sends a stream's source (a Chan or any iterable) without holding a thread: what
    a server handler returned, or what a client streams.

    `start` runs the first steps on the calling thread (or schedules them). Each step takes what the
    item credit allows from the source, encodes it into MESSAGE frames and queues
    them on the connection's writer, each frame once the byte credit allows. When
    it must wait it registers a callback with what it waits on and returns; the
    callback runs the next steps (see `_wake`). A wake-up that comes while steps
    run makes them go round once more, so none is lost. `on_done(outcome,
    error)` is called once, from a step's thread. Steps never block, except a
    generator source's own code.
    """

    def __init__(
        self,
        source: Iterable[Any],
        encode_item: Callable[[Any], Any],
        make_frames: Callable[[list[Any]], list[bytes]],
        credit: Credit,
        write: Callable[[bytes], None],
        park_writer: Callable[[Callable[[], None]], bool],
        schedule: Callable[[Callable[[], None]], bool],
        on_done: Callable[[str, BaseException | None], None],
    ) -> None:
        self._source = source
        self._encode_item = encode_item
        self._make_frames = make_frames
        self._credit = credit
        self._write = write
        self._park_writer = park_writer
        self._schedule = schedule
        self._on_done = on_done
        self._lock = threading.Lock()
        self._state = _RUNNING
        self._again = False
        self._parked_at = 0.0
        self._held: deque[bytes] = deque()
        self._chan = source if isinstance(source, Chan) else None
        self._iterator: Iterator[Any] | None = None
        self._position = 0
        self._receiving = False
        if self._chan is None and not isinstance(source, list | tuple):
            self._iterator = iter(source)

    def start(self, here: bool = True) -> None:
        """Run the first steps on this thread, or (`here` False) hand them to `schedule`."""
        if here:
            self._run()
            return
        with self._lock:
            self._state = _SCHEDULED
        if not self._schedule(self._run):
            self._end(PumpOutcome.ABORTED, None)

    def _wake(self, may_run_here: bool = False) -> None:
        """Something we waited for happened: run the next steps.

        A producer's `send` that wakes us may run them itself, at once (no thread
        hand-off, which is most of a round trip's cost), when items come sparsely:
        in a burst, a step per item would cost a frame and a syscall per item, so
        the wake goes to `schedule`, and the items sent meanwhile share a frame.
        """
        with self._lock:
            if self._state != _PARKED:
                self._again = True
                return
            # Sparse: the source stayed empty a while after the last step parked.
            # (Timed from the park, not from the last send: a producer running
            # steps itself is busy meanwhile, and would look sparse.)
            inline = may_run_here and time.monotonic() - self._parked_at > _SPARSE_S
            self._state = _RUNNING if inline else _SCHEDULED
        if inline:
            self._run()
        elif not self._schedule(self._run):  # only while the runtime stops
            if may_run_here:
                self._end(PumpOutcome.ABORTED, None)
            else:
                # Woken by the source channel's _notify, inside that channel's lock,
                # which _end takes to stop receiving: end from another thread.
                threading.Thread(
                    target=self._end, args=(PumpOutcome.ABORTED, None), daemon=True
                ).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._state == _DONE:
                    return
                self._state = _RUNNING
                self._again = False
            if self._receiving:
                self._stop_receiving()
            outcome = self._step()
            if outcome is None:  # parked
                with self._lock:
                    if not self._again:
                        self._state = _PARKED
                        return
                continue
            self._end(*outcome)
            return

    def _step(self) -> tuple[str, BaseException | None] | None:
        """Send until something says wait (then None: a callback is parked where it
        waits) or the stream is over (how). Written for few calls per item: on a
        round trip at a time, this is most of the sender's cost."""
        credit = self._credit
        held = self._held
        while True:
            while held:
                go = credit.spend_frame(message_payload_size(held[0]))
                if go < 0:
                    return PumpOutcome.ABORTED, None
                if not go:
                    if credit.park(self._wake, 0):
                        return None
                    continue
                self._write(held.popleft())
            if self._park_writer(self._wake):
                return None
            allowance = credit.available(MAX_BATCH_ITEMS)
            if allowance < 0:
                return PumpOutcome.ABORTED, None
            if not allowance:
                if credit.park(self._wake):
                    return None
                continue
            taken = self._take(allowance)
            if taken is None:
                return None
            if isinstance(taken, tuple):
                return taken
            try:
                batch = [self._encode_item(item) for item in taken]
                frames = self._make_frames(batch)
            except (CodecError, InvalidArgumentError) as exc:
                return PumpOutcome.BAD_ITEM, exc
            except RpcError as exc:  # an item larger than the peer's frames
                return PumpOutcome.FAILED, exc
            except Exception as exc:
                return PumpOutcome.BAD_ITEM, exc
            credit.spend(len(batch), 0)
            held.extend(frames)

    def _take(self, most: int) -> list[Any] | tuple[str, BaseException | None] | None:
        """Items from the source (never more than `most`), how the source ended, or
        None once parked on the source `Chan` (nothing there yet)."""
        chan = self._chan
        if chan is not None:
            items: list[Any] = []
            with chan._lock:
                while len(items) < most:
                    taken, value = chan._try_recv_locked()
                    if not taken:
                        break
                    items.append(value)
                if not items:
                    if chan._closed:
                        error = chan._error
                        return (PumpOutcome.FAILED, error) if error else (PumpOutcome.DONE, None)
                    # Wait like a thread in `recv` would, counted as a receiver: a send
                    # (or `try_send`, or a select's send case) may then hand its item
                    # over, even on an unbuffered channel; its next change wakes us.
                    chan._receivers += 1
                    chan._on_ready = self._wake
                    self._receiving = True
                    self._parked_at = time.monotonic()
                    for selector in chan._selectors:
                        selector.signal()
                    return None
            chan._after_take()  # e.g. an InboundChan relayed as is: its CREDIT goes out
            return items
        if self._iterator is None:
            items = list(self._source[self._position : self._position + most])  # type: ignore[index]
            if not items:
                return PumpOutcome.DONE, None
            self._position += len(items)
            return items
        try:
            return [next(self._iterator)]
        except StopIteration:
            return PumpOutcome.DONE, None
        except Exception as exc:
            return PumpOutcome.FAILED, exc

    def _stop_receiving(self) -> None:
        if self._receiving and self._chan is not None:
            with self._chan._lock:
                self._chan._receivers -= 1
                self._chan._on_ready = None
                self._receiving = False

    def _end(self, outcome: str, error: BaseException | None) -> None:
        with self._lock:
            if self._state == _DONE:
                return
            self._state = _DONE
        self._stop_receiving()
        self._held.clear()
        if error is not None:
            # Its traceback holds the step's frame, which holds the error: a cycle
            # that would keep the stream (and its connection) for the cycle collector.
            error.__traceback__ = None
        self._on_done(outcome, error)


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

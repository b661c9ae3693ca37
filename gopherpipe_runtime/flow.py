"""Flow control: how much a sender may have in flight, counted in items and in bytes.

A receiver announces three windows in HELLO: items per stream (`stream_window`),
bytes per stream (`stream_window_bytes`) and bytes across all of a connection's
streams (`connection_window_bytes`). The bytes of a MESSAGE are its payload (the
frame body after the stream id). A sender may send a MESSAGE while it has fewer
than the window's bytes unacknowledged, on the stream and on the connection, and
one item per item of credit. So one frame may overshoot a byte window, which is
what guarantees progress for an item larger than the window, and the receiver
holds at most `window + max_frame_size` bytes of items per stream and per
connection however the peer behaves: it checks the same rule on arrival, from its
own count, and a frame that breaks it is a connection error.

The receiver returns credit (a CREDIT frame carrying items and bytes) as its user
takes items out: for a stream once half of either of its windows is due, and for
every stream that owes something once half of the connection window is due --
otherwise many streams each holding less than half a stream window could fill
the connection window and wait on each other for ever.

Each side counts only streams it still thinks open. A sender forgets a stream's
bytes when it ends the stream (after writing its STATUS or CANCEL, or on
receiving one), a receiver when it drops the stream's items; frames are ordered
on the wire, so the receiver's count never exceeds the sender's.

The windows themselves (`wire.windows.Windows`, what HELLO announces) are wire.
`Credit` and `SendWindow` are the sender's side, `ReceiveWindow` the receiver's
(the per-stream half of it lives in `stream.InboundChan`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from .wire.frames import ProtocolError

# The windows are the wire's (HELLO announces them); re-exported here for the
# accounting's users.
from .wire.windows import (
    DEFAULT_CONNECTION_WINDOW_BYTES,
    DEFAULT_STREAM_WINDOW,
    DEFAULT_STREAM_WINDOW_BYTES,
    DEFAULT_WINDOWS,
    MAX_WINDOW_BYTES,
    MAX_WINDOW_ITEMS,
    Windows,
)


class SendWindow:
    """Our view of the peer's connection-wide byte window; shared by a connection's
    outbound streams, whose `Credit`s use its lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.outstanding = 0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.blocked: set[Credit] = set()
        """Parked credits waiting for connection bytes (lock held to touch)."""

    def _released(self) -> list[Callable[[], None]]:
        """Bytes came back (lock held): the parked credits that may go on now."""
        if not self.blocked or self.outstanding >= self.limit:
            return []
        ready = [credit for credit in self.blocked if credit._allowance(0) != 0]
        for credit in ready:
            self.blocked.discard(credit)
        return [resume for credit in ready if (resume := credit._take_resume()) is not None]


class Credit:
    """What we may still send on one stream.

    A sender that may block `wait`s; senders that hold no thread (`Outbound`)
    `park` a callback, run once sending may go on (or the stream ended).
    """

    def __init__(self, items: int, window_bytes: int, connection: SendWindow) -> None:
        self._items = items
        self._item_window = items
        self._window_bytes = window_bytes
        self._outstanding = 0
        self._aborted = False
        self._connection = connection
        self._lock = connection.lock  # `with` on the Lock itself: no Python-level wrapper
        self._changed = connection.changed
        self._resume: Callable[[], None] | None = None

    def _allowance(self, most: int) -> int:
        """Items we may send now (lock held): 0 to wait, -1 once aborted. With
        `most` 0, whether a frame's bytes may go (1) or must wait (0)."""
        if self._aborted:
            return -1
        if (
            self._outstanding >= self._window_bytes
            or self._connection.outstanding >= self._connection.limit
        ):
            return 0
        if not most:
            return 1
        return min(most, self._items) if self._items > 0 else 0

    def wait(self, most: int) -> int:
        """Block until some credit is there; how many items to send (<= most), 0 if
        aborted. With `most` 0: 1 once a frame's bytes may go, 0 if aborted."""
        with self._changed:
            while (allowance := self._allowance(most)) == 0:
                self._changed.wait()
            return max(allowance, 0)

    def available(self, most: int) -> int:
        """Like `wait` without blocking: 0 means wait (see `park`), -1 aborted."""
        with self._lock:
            return self._allowance(most)

    def park(self, resume: Callable[[], None], most: int = 1) -> bool:
        """Call `resume` once sending may go on (`most` as in `available`); False, and
        nothing parked, if it may now or the stream ended."""
        with self._lock:
            if self._allowance(most) != 0:
                return False
            self._resume = resume
            if self._connection.outstanding >= self._connection.limit:
                self._connection.blocked.add(self)
            return True

    def _take_resume(self) -> Callable[[], None] | None:
        resume, self._resume = self._resume, None
        return resume

    def spend_frame(self, nbytes: int) -> int:
        """Spend a frame's bytes if they may go now: 1 if so, 0 to wait, -1 if aborted."""
        with self._lock:
            allowance = self._allowance(0)
            if allowance > 0:
                self._outstanding += nbytes
                self._connection.outstanding += nbytes
            return allowance

    def spend(self, items: int, nbytes: int) -> None:
        with self._lock:
            self._items -= items
            self._outstanding += nbytes
            self._connection.outstanding += nbytes

    def grant(self, items: int, nbytes: int) -> None:
        """A CREDIT arrived. Raises ProtocolError for credit never spent (a broken peer)."""
        with self._changed:
            if self._aborted:
                return
            if items > self._item_window - self._items or nbytes > self._outstanding:
                raise ProtocolError(
                    f"CREDIT returns {items} items / {nbytes} bytes, more than was sent"
                )
            self._items += items
            self._outstanding -= nbytes
            self._connection.outstanding -= nbytes
            self._changed.notify_all()
            ready = self._connection._released()
            if self._resume is not None and self._allowance(0) != 0:
                self._connection.blocked.discard(self)
                ready.append(self._take_resume())  # type: ignore[arg-type]
        for resume in ready:
            resume()

    def abort(self) -> None:
        """The stream ended: stop sending, and give its bytes back to the connection."""
        with self._changed:
            if self._aborted:
                return
            self._aborted = True
            self._connection.outstanding -= self._outstanding
            self._outstanding = 0
            self._connection.blocked.discard(self)
            self._changed.notify_all()
            ready = self._connection._released()
            resume = self._take_resume()
        if resume is not None:
            ready.append(resume)
        for callback in ready:
            callback()


class ReceiveWindow:
    """The bytes a connection's inbound streams buffer, against the window we announced,
    and the consumed bytes not yet returned to the sender."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffered = 0
        self.due = 0
        self.lock = threading.Lock()
        self.owing: set[Inflow] = set()
        """Streams with consumed items not yet credited back (lock held to touch)."""


CreditSend = tuple[Callable[[int, int], None], int, int]
"""A CREDIT to send once locks are released: (send, items, bytes)."""


class Inflow:
    """The receiving half of one stream's flow control; its state is guarded by the
    connection's `ReceiveWindow.lock`."""

    __slots__ = (
        "_byte_step",
        "_connection",
        "_frames",
        "_item_step",
        "_items",
        "_send",
        "buffered_bytes",
        "buffered_items",
        "due_bytes",
        "due_items",
        "released",
        "window_bytes",
    )

    def __init__(
        self,
        connection: ReceiveWindow,
        items: int,
        window_bytes: int,
        send_credit: Callable[[int, int], None],
    ) -> None:
        self._connection = connection
        self._items = items
        self.window_bytes = window_bytes
        self._item_step = max(1, items // 2)
        self._byte_step = max(1, window_bytes // 2)
        self._send = send_credit
        # [items not yet consumed, bytes] per MESSAGE still buffered: its bytes come
        # back when its last item is taken. Per frame, not per item, to keep the
        # hot path free of per-item bookkeeping.
        self._frames: deque[list[int]] = deque()
        self.buffered_items = 0
        self.buffered_bytes = 0
        self.due_items = 0
        self.due_bytes = 0
        self.released = False

    def admit(self, count: int, nbytes: int) -> bool:
        """A MESSAGE of `count` items and `nbytes` arrived; False if it breaks a window."""
        connection = self._connection
        with connection.lock:
            if self.released:
                return True
            if (
                self.buffered_items + count > self._items
                or self.buffered_bytes >= self.window_bytes
                or connection.buffered >= connection.limit
            ):
                return False
            self._frames.append([count, nbytes])
            self.buffered_items += count
            self.buffered_bytes += nbytes
            connection.buffered += nbytes
            return True

    def consumed(self, count: int) -> list[CreditSend]:
        """The user took `count` items: the CREDIT frames now due (send them unlocked)."""
        connection = self._connection
        with connection.lock:
            if self.released:
                return []
            freed = 0
            frames = self._frames
            left = count
            while left and frames:
                head = frames[0]
                taken = min(left, head[0])
                head[0] -= taken
                left -= taken
                if not head[0]:
                    freed += head[1]
                    frames.popleft()
            self.buffered_items -= count - left
            self.buffered_bytes -= freed
            connection.buffered -= freed
            self.due_items += count - left
            self.due_bytes += freed
            connection.due += freed
            if self.due_items or self.due_bytes:
                connection.owing.add(self)
            if connection.due >= connection.limit // 2:
                owing = list(connection.owing)
            elif self.due_items >= self._item_step or self.due_bytes >= self._byte_step:
                owing = [self]
            else:
                return []
            return [stream._take_due() for stream in owing]

    def _take_due(self) -> CreditSend:
        """This stream's CREDIT, as a send to make (connection lock held)."""
        items, nbytes = self.due_items, self.due_bytes
        self.due_items = self.due_bytes = 0
        self._connection.due -= nbytes
        self._connection.owing.discard(self)
        return self._send, items, nbytes

    def release(self) -> None:
        """The stream is over for us: its bytes stop counting and nothing more is returned."""
        connection = self._connection
        with connection.lock:
            if self.released:
                return
            self.released = True
            connection.buffered -= self.buffered_bytes
            connection.due -= self.due_bytes
            connection.owing.discard(self)
            self._frames.clear()
            self.buffered_items = self.buffered_bytes = 0
            self.due_items = self.due_bytes = 0


__all__ = [
    "DEFAULT_CONNECTION_WINDOW_BYTES",
    "DEFAULT_STREAM_WINDOW",
    "DEFAULT_STREAM_WINDOW_BYTES",
    "DEFAULT_WINDOWS",
    "MAX_WINDOW_BYTES",
    "MAX_WINDOW_ITEMS",
    "Credit",
    "Inflow",
    "ReceiveWindow",
    "SendWindow",
    "Windows",
]

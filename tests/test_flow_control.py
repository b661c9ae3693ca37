"""Flow control in items and bytes (flow.py), without sockets: the sender's credit,
the receiver's windows, and the credit it returns."""

from __future__ import annotations

import threading

import pytest

from gopherpipe_runtime.flow import Credit, Inflow, ReceiveWindow, SendWindow, Windows
from gopherpipe_runtime.stream import InboundChan
from gopherpipe_runtime.wire.frames import ProtocolError


def test_sender_waits_once_a_byte_window_is_reached_and_one_frame_may_overshoot() -> None:
    connection = SendWindow(1000)
    credit = Credit(10, 100, connection)
    assert credit.available(5) == 5
    credit.spend(1, 5000)  # one frame far larger than the window: allowed, it was below
    assert credit.available(5) == 0
    assert credit.available(0) == 0
    credit.grant(0, 4950)
    assert credit.available(5) == 5  # 50 bytes outstanding < 100


def test_the_connection_window_stops_every_stream() -> None:
    connection = SendWindow(100)
    first, second = Credit(10, 1000, connection), Credit(10, 1000, connection)
    first.spend(1, 100)
    assert second.available(1) == 0
    resumed: list[str] = []
    assert second.park(lambda: resumed.append("second"))
    first.grant(1, 100)  # bytes back on another stream free the connection
    assert resumed == ["second"]
    assert second.available(1) == 1


def test_items_bound_the_sender_as_well() -> None:
    credit = Credit(2, 1 << 20, SendWindow(1 << 20))
    credit.spend(2, 10)
    assert credit.available(1) == 0
    credit.grant(1, 0)
    assert credit.available(4) == 1


def test_credit_for_what_was_never_sent_is_a_protocol_error() -> None:
    credit = Credit(4, 100, SendWindow(1000))
    credit.spend(1, 10)
    with pytest.raises(ProtocolError):
        credit.grant(2, 0)
    with pytest.raises(ProtocolError):
        credit.grant(1, 11)


def test_abort_wakes_a_blocked_sender_and_returns_its_bytes() -> None:
    connection = SendWindow(100)
    credit = Credit(1, 100, connection)
    credit.spend(1, 100)
    results: list[int] = []
    waiter = threading.Thread(target=lambda: results.append(credit.wait(1)))
    waiter.start()
    credit.abort()
    waiter.join(5)
    assert results == [0]
    assert connection.outstanding == 0
    assert credit.available(1) == -1


def _inbound(window: ReceiveWindow, items: int, nbytes: int) -> tuple[InboundChan[int], list]:
    sent: list[tuple[int, int]] = []
    inflow = Inflow(window, items, nbytes, lambda i, b: sent.append((i, b)))
    return InboundChan(inflow, items, lambda: None), sent


def test_receiver_applies_the_senders_rules() -> None:
    window = ReceiveWindow(10_000)
    chan, _ = _inbound(window, 8, 100)
    assert chan.deliver([1, 2], 99)
    assert chan.deliver([3], 5000)  # 99 < 100: one more frame may come, however large
    assert not chan.deliver([4], 1)  # now over the stream's byte window
    other, _ = _inbound(window, 8, 100_000)
    assert other.deliver([1] * 8, 4900)
    assert not other.deliver([1], 1)  # items: 8 already buffered
    assert _inbound(window, 8, 100_000)[0].deliver([1], 1)  # the connection: 9999 < 10000
    assert not _inbound(window, 8, 100_000)[0].deliver([1], 1)  # 10000: full


def test_bytes_come_back_when_a_frames_last_item_is_taken() -> None:
    window = ReceiveWindow(1 << 20)
    chan, sent = _inbound(window, 4, 100)
    chan.deliver([1, 2, 3], 60)
    assert chan.recv() == 1
    assert sent == []
    assert chan.recv() == 2  # two items: half of the item window
    assert sent == [(2, 0)]
    assert chan.recv() == 3  # the frame is consumed: 60 bytes due, over half of 100
    assert sent == [(2, 0), (1, 60)]
    chan.deliver([4], 10)
    assert chan.recv() == 4
    assert sent == [(2, 0), (1, 60)]  # 1 item and 10 bytes due: below both halves
    assert window.buffered == 0


def test_half_the_connection_window_due_credits_every_stream_owing() -> None:
    # Many streams each holding less than half their own window must not fill the
    # connection window and then wait on each other for ever.
    window = ReceiveWindow(1000)
    chans = [_inbound(window, 100, 10_000) for _ in range(5)]
    for chan, _ in chans:
        chan.deliver([0], 200)
    for chan, _ in chans[:2]:
        chan.recv()
    assert [sent for _, sent in chans] == [[], [], [], [], []]
    chans[2][0].recv()  # 600 bytes due >= half of 1000
    assert [sent for _, sent in chans] == [[(1, 200)], [(1, 200)], [(1, 200)], [], []]
    assert window.due == 0


def test_a_finished_stream_stops_counting_and_drops_late_frames() -> None:
    window = ReceiveWindow(1000)
    chan, sent = _inbound(window, 10, 1000)
    chan.deliver([1, 2], 300)
    chan.finish(release=False)  # half-close: still counted until the call ends
    assert window.buffered == 300
    chan.finish(discard=True)
    assert window.buffered == 0
    assert chan.deliver([3], 10)  # in flight when it ended: dropped, not an error
    assert list(chan) == []
    assert sent == []


def test_windows_are_range_checked() -> None:
    with pytest.raises(ValueError):
        Windows(items=0)
    with pytest.raises(ValueError):
        Windows(stream_bytes=1 << 32)

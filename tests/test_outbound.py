"""`Outbound` in process, with a fake connection: a server stream's sender that holds
no thread. Parking and waking on credit, on the source channel and on a full write
queue; Go's channel semantics kept for a producer whose reader is the wire."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgpack

from gopherpipe_runtime import Chan, select
from gopherpipe_runtime.flow import Credit, SendWindow
from gopherpipe_runtime.stream import Outbound, PumpOutcome, message_frames
from gopherpipe_runtime.wire.codec import CODECS
from gopherpipe_runtime.wire.frames import FrameDecoder, FrameType


class FakeWire:
    """Collects the frames an Outbound writes; runs scheduled steps when told to."""

    def __init__(self, items: int = 1000, window_bytes: int = 1 << 20) -> None:
        self.credit = Credit(items, window_bytes, SendWindow(1 << 30))
        self.decoder = FrameDecoder(1 << 20)
        self.items: list[Any] = []
        self.frames = 0
        self.scheduled: list[Callable[[], None]] = []
        self.done = threading.Event()
        self.outcome: tuple[str, BaseException | None] | None = None
        self.backed_up = False
        self.writer_waiters: list[Callable[[], None]] = []

    def write(self, frame: bytes) -> None:
        for decoded in self.decoder.feed(frame):
            assert decoded.type == FrameType.MESSAGE
            self.frames += 1
            self.items += msgpack.unpackb(decoded.payload)

    def park_writer(self, resume: Callable[[], None]) -> bool:
        if self.backed_up:
            self.writer_waiters.append(resume)
        return self.backed_up

    def schedule(self, step: Callable[[], None]) -> bool:
        self.scheduled.append(step)
        return True

    def run_scheduled(self) -> None:
        while self.scheduled:
            self.scheduled.pop(0)()

    def on_done(self, outcome: str, error: BaseException | None) -> None:
        self.outcome = (outcome, error)
        self.done.set()

    def outbound(self, source: Any) -> Outbound:
        def make_frames(batch: list[Any]) -> list[bytes]:
            return message_frames(CODECS["msgpack"], 1, batch, 1 << 20)

        return Outbound(
            source,
            lambda item: item,
            make_frames,
            self.credit,
            self.write,
            self.park_writer,
            self.schedule,
            self.on_done,
        )


def test_a_list_goes_out_in_one_step_within_the_item_credit() -> None:
    wire = FakeWire(items=3)
    wire.outbound(list(range(5))).start()
    assert wire.items == [0, 1, 2]  # parked on credit, holding no thread
    assert not wire.done.is_set()
    wire.credit.grant(3, 0)  # a CREDIT frame: the next steps are scheduled
    wire.run_scheduled()
    assert wire.items == [0, 1, 2, 3, 4]
    assert wire.outcome == (PumpOutcome.DONE, None)


def test_byte_credit_holds_frames_and_one_frame_may_overshoot() -> None:
    wire = FakeWire(window_bytes=10)
    out: Chan[str] = Chan(10)
    stream = wire.outbound(out)
    stream.start()
    out.send("x" * 50)  # 0 bytes outstanding < 10: goes, though larger
    wire.run_scheduled()
    out.send("y")
    wire.run_scheduled()
    assert wire.items == ["x" * 50]  # 53 bytes outstanding: "y" waits
    wire.credit.grant(1, 53)
    wire.run_scheduled()
    assert wire.items == ["x" * 50, "y"]


def test_sparse_sends_go_out_on_the_producers_thread() -> None:
    wire = FakeWire()
    out: Chan[int] = Chan(16)
    wire.outbound(out).start()  # nothing yet: parked on the channel
    for item in range(3):
        threading.Event().wait(0.01)  # a reply now and then, like a bidi echo
        out.send(item)
        assert wire.items == list(range(item + 1))  # sent by `send` itself
    assert wire.scheduled == []


def test_a_burst_is_batched_into_few_frames() -> None:
    wire = FakeWire()
    out: Chan[int] = Chan(1000)
    wire.outbound(out).start()
    for i in range(500):
        out.send(i)
    wire.run_scheduled()
    assert wire.items == list(range(500))
    assert wire.frames <= 3  # the first send's own step, then the rest together


def test_an_unbuffered_channel_hands_over_to_the_wire() -> None:
    wire = FakeWire()
    out: Chan[int] = Chan()
    wire.outbound(out).start()
    sender = threading.Thread(target=lambda: [out.send(i) for i in range(3)])
    sender.start()
    for _ in range(1000):  # bounded: each round runs what the sends scheduled
        wire.run_scheduled()
        if len(wire.items) == 3:
            break
        threading.Event().wait(0.001)
    sender.join(5)
    assert wire.items == [0, 1, 2]
    # The parked stream counts as a waiting receiver, as a thread in recv would:
    assert out.try_send(3)
    wire.run_scheduled()
    assert select((out, 4), timeout=5).case == 0
    wire.run_scheduled()
    assert wire.items == [0, 1, 2, 3, 4]


def test_a_full_write_queue_parks_the_stream_until_it_drains() -> None:
    wire = FakeWire()
    wire.backed_up = True
    out: Chan[int] = Chan(10)
    wire.outbound(out).start()
    out.send(1)
    wire.run_scheduled()
    assert wire.items == []
    wire.backed_up = False
    for resume in wire.writer_waiters:
        resume()
    wire.run_scheduled()
    assert wire.items == [1]


def test_closing_the_source_ends_the_stream_with_its_error() -> None:
    wire = FakeWire()
    out: Chan[int] = Chan(4)
    wire.outbound(out).start()
    out.send(1)
    failure = ValueError("producer failed")
    out.close(failure)
    wire.run_scheduled()
    assert wire.items == [1]
    assert wire.outcome == (PumpOutcome.FAILED, failure)


def test_abort_wakes_a_parked_stream_and_ends_it() -> None:
    wire = FakeWire(items=1)
    out: Chan[int] = Chan(4)
    wire.outbound(out).start()
    out.send(1)
    out.send(2)  # no credit left: parked on credit
    wire.run_scheduled()
    wire.credit.abort()  # the client cancelled, or the connection is gone
    wire.run_scheduled()
    assert wire.outcome == (PumpOutcome.ABORTED, None)


def test_a_generator_is_pulled_only_within_the_credit() -> None:
    pulled: list[int] = []

    def numbers() -> Any:
        for i in range(10):
            pulled.append(i)
            yield i

    wire = FakeWire(items=2)
    wire.outbound(numbers()).start()
    assert wire.items == [0, 1]
    assert pulled == [0, 1]


def test_a_refused_schedule_ends_the_stream_without_taking_the_channel_lock_twice() -> None:
    # The source's close wakes the parked stream from inside the channel's lock; when
    # the runtime refuses the step (it is stopping), ending the stream must not take
    # that lock again on the same thread.
    wire = FakeWire()
    wire.schedule = lambda step: False  # type: ignore[method-assign]
    out: Chan[int] = Chan(4)
    wire.outbound(out).start()
    closer = threading.Thread(target=out.close, daemon=True)
    closer.start()
    closer.join(5)
    assert not closer.is_alive(), "close deadlocked on the channel's own lock"
    assert wire.done.wait(5)
    assert wire.outcome == (PumpOutcome.ABORTED, None)

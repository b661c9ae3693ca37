"""The threaded layer with real sockets: writer coalescing, the leader/followers pool,
and the leader/follower client, hammered from many threads."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gopherpipe_runtime import (
    CallOptions,
    DeadlineExceededError,
    MethodDef,
    MethodKind,
    Pipe,
    ResourceExhaustedError,
    RpcError,
    Server,
    ServiceDef,
    StatusCode,
)
from gopherpipe_runtime.wire.frames import FrameDecoder, FrameType, encode_frame
from gopherpipe_runtime.writer import FrameWriter


def _service(**handlers: Any) -> ServiceDef:
    return ServiceDef(
        "T",
        {
            name: MethodDef(MethodKind.UNARY, lambda args: tuple(args), fn, lambda r: r)
            for name, fn in handlers.items()
        },
    )


def test_writer_keeps_frames_whole_under_concurrent_writers() -> None:
    left, right = socket.socketpair()
    left.setblocking(False)
    writer = FrameWriter(left, 10.0, on_error=lambda exc: None, offload=lambda fn: False)
    per_thread, threads = 500, 8
    received: list[Any] = []

    def read() -> None:
        decoder = FrameDecoder(1 << 20)
        while len(received) < per_thread * threads:
            received.extend(decoder.feed(right.recv(1 << 16)))

    reader = threading.Thread(target=read)
    reader.start()

    def write(thread_index: int) -> None:
        for i in range(per_thread):
            payload = f"{thread_index}:{i}:".encode() * random.randint(1, 300)
            writer.write(encode_frame(FrameType.CALL, payload, thread_index + 1))

    writers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(30)
    reader.join(30)
    assert not reader.is_alive()
    # Each thread's frames arrive whole and in its own order.
    for thread_index in range(threads):
        mine = [f for f in received if f.stream_id == thread_index + 1]
        assert [int(f.payload.split(b":")[1]) for f in mine] == list(range(per_thread))
        assert all(f.payload.startswith(f"{thread_index}:".encode()) for f in mine)
    left.close()
    right.close()


@pytest.fixture
def blocking_server() -> Iterator[tuple[Server, threading.Event, list[int]]]:
    """max_workers=2, max_pending=3; `hold` blocks until the event is set."""
    release = threading.Event()
    running: list[int] = []
    lock = threading.Lock()
    peak = [0]

    def hold() -> str:
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        release.wait(20)
        with lock:
            running.pop()
        return "released"

    server = Server("tcp://127.0.0.1:0", max_workers=2, max_pending_calls=3)
    server.add_service(_service(hold=hold, add=lambda a, b: a + b))
    server.start()
    yield server, release, peak
    release.set()
    server.stop(2.0)


def test_busy_handlers_never_stall_io_and_limits_hold(
    blocking_server: tuple[Server, threading.Event, list[int]],
) -> None:
    server, release, peak = blocking_server
    address = server.addresses[0]
    pipe = Pipe(address)
    results: list[Any] = []

    def call_hold() -> None:
        try:
            results.append(pipe.unary("T", "hold", [], CallOptions()))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    holders = [threading.Thread(target=call_hold) for _ in range(3)]
    for thread in holders:
        thread.start()
    deadline = time.monotonic() + 10
    while server._pool.pending < 3:  # two running, one queued
        assert time.monotonic() < deadline
        time.sleep(0.01)

    # With every handler thread busy, the sockets are still served: an HTTP probe
    # is answered, and a fourth call is refused at once instead of queued.
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as probe:
        probe.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert probe.recv(100).startswith(b"HTTP/1.1 400")
    with Pipe(address) as other, pytest.raises(ResourceExhaustedError, match="limit"):
        other.unary("T", "add", [1, 2], CallOptions())

    release.set()
    for thread in holders:
        thread.join(10)
    assert results == ["released"] * 3
    assert peak[0] == 2  # never more than max_workers handlers at once
    assert pipe.unary("T", "add", [1, 2], CallOptions()) == 3
    pipe.close()


def test_many_threads_with_random_deadlines_never_hang_or_mix_answers() -> None:
    def nap(seconds: float, token: int) -> int:
        time.sleep(seconds)
        return token

    server = Server("tcp://127.0.0.1:0", max_workers=16)
    server.add_service(_service(nap=nap))
    server.start()
    pipe = Pipe(server.addresses[0])
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(40):
            token = seed * 1000 + i
            sleep = rng.choice([0.0, 0.0, 0.001, 0.02])
            timeout = rng.choice([None, 0.01, 0.5])
            try:
                got = pipe.unary("T", "nap", [sleep, token], CallOptions(timeout=timeout))
                outcome = "ok" if got == token else f"WRONG {got} != {token}"
            except DeadlineExceededError:
                outcome = "deadline"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    assert len(outcomes) == 16 * 40
    assert not [o for o in outcomes if o.startswith("WRONG")]
    assert outcomes.count("ok") > 0 and outcomes.count("deadline") > 0
    # Nothing is left registered on the connection once every caller is gone.
    assert pipe._connection is not None and pipe._connection.calls == {}
    pipe.close()
    server.stop(1.0)


def test_server_stop_joins_its_threads() -> None:
    before = {t.ident for t in threading.enumerate()}
    server = Server("tcp://127.0.0.1:0", max_workers=4)
    server.add_service(_service(add=lambda a, b: a + b))
    server.start()
    with Pipe(server.addresses[0]) as pipe:
        for i in range(20):
            assert pipe.unary("T", "add", [i, 1], CallOptions()) == i + 1
    server.stop(1.0)
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == []


def test_closing_a_pipe_wakes_a_call_in_progress() -> None:
    started = threading.Event()
    release = threading.Event()

    def block() -> str:
        started.set()
        release.wait(30)
        return "late"

    server = Server("tcp://127.0.0.1:0", max_workers=2)
    server.add_service(_service(block=block))
    server.start()
    pipe = Pipe(server.addresses[0])
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            pipe.unary("T", "block", [], CallOptions())
        except Exception as exc:  # asserted below
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(10)
    pipe.close()  # from another thread, while the caller leads the reading
    caller.join(10)
    assert not caller.is_alive()
    assert len(outcome) == 1 and type(outcome[0]).__name__ == "UnavailableError"
    release.set()
    server.stop(2.0)


def test_stream_item_the_codec_cannot_carry_ends_the_call_with_internal() -> None:
    def huge(count: int) -> list[int]:
        return [1, 2, 2**70]  # passes an int check, but msgpack carries 64 bits at most

    server = Server("tcp://127.0.0.1:0")
    server.add_service(
        ServiceDef(
            "T",
            {
                "huge": MethodDef(
                    MethodKind.SERVER_STREAM,
                    lambda args: tuple(args),
                    huge,
                    lambda r: r,
                    encode_item=lambda item: item,
                )
            },
        )
    )
    server.start()
    with Pipe(server.addresses[0]) as pipe:
        output = pipe.stream("T", "huge", [3], CallOptions(), decode_item=lambda v: v).take_output()
        with pytest.raises(RpcError) as info:
            list(output)
        assert info.value.code is StatusCode.INTERNAL
        assert "handler sent a wrong value" in info.value.message
    server.stop(1.0)

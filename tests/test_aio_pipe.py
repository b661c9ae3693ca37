"""gopherpipe_runtime.aio.Pipe against the THREADED Server, in one process: the four
call shapes, errors, deadlines, cancellation (task, token, aclose), flow control,
balancing, resending, GOAWAY, keepalive, wait_for_ready, the loop binding, and 1,000
cancelled streams freeing everything. Across processes (a killed server, interop):
test_aio_pipe_e2e.py; every transport: test_aio_pipe_transports.py."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aio_pipe_service import STATE, service

from gopherpipe_runtime import (
    CancelToken,
    DeadlineExceededError,
    NotFoundError,
    PermissionDeniedError,
    RpcError,
    Server,
    StatusCode,
    UnavailableError,
)
from gopherpipe_runtime.aio import AsyncClientBase, Chan, ChanClosed, Pipe, StreamCall
from gopherpipe_runtime.aio import pipe as aio_pipe
from gopherpipe_runtime.interceptors import CallInfo, Interceptor, TokenAuthClient
from gopherpipe_runtime.pipe import CallOptions
from gopherpipe_runtime.resolver import Resolver, WatchedEndpoints
from gopherpipe_runtime.wire.frames import (
    PREFACE,
    FrameDecoder,
    FrameType,
    encode_frame,
    encode_goaway,
)
from gopherpipe_runtime.wire.handshake import server_choose

T = TypeVar("T")
NONE = CallOptions()


def run(main: Callable[[], Awaitable[T]], limit: float = 30.0) -> T:
    """asyncio.run with a bound: a test that would hang fails instead."""

    async def bounded() -> T:
        return await asyncio.wait_for(main(), limit)

    return asyncio.run(bounded())


def same(value: Any) -> Any:
    return value


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    server = Server("tcp://127.0.0.1:0", max_workers=64)
    server.add_service(service("one"))
    server.start()
    yield server.addresses[0]
    server.stop(1)


@pytest.fixture
def server() -> Iterator[Server]:
    """A server of its own, for tests that count its open calls."""
    server = Server("tcp://127.0.0.1:0", max_workers=16)
    server.add_service(service("own"))
    server.start()
    yield server
    server.stop(1)


async def wait_until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- the four shapes ----------------------------------------------------------------------


def test_four_call_shapes(address: str) -> None:
    pipe = Pipe(address)

    async def gen(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def main() -> None:
        assert await pipe.unary("T", "echo", [{"a": [1, 2]}], NONE) == {"a": [1, 2]}
        items = [x async for x in pipe.stream("T", "count", [5, "shapes"], NONE, decode_item=same)]
        assert items == [0, 1, 2, 3, 4]
        sync_total = pipe.stream("T", "total", [], NONE, source=range(100), encode_item=same)
        assert await sync_total.result() == sum(range(100))
        async_total = pipe.stream("T", "total", [], NONE, source=gen(50), encode_item=same)
        assert await async_total.result() == sum(range(50))
        empty = pipe.stream("T", "total", [], NONE, source=[], encode_item=same)
        assert await empty.result() == 0
        bidi = pipe.stream(
            "T", "double", [], NONE, source=gen(10), encode_item=same, decode_item=same
        )
        assert [x async for x in bidi] == [2 * i for i in range(10)]
        assert await bidi.result() is None
        await pipe.close()

    run(main)


class _TAsyncClient(AsyncClientBase):
    """What a generated ``<Service>AsyncClient`` looks like, written by hand."""

    _gp_service_name = "T"

    async def echo(self, value: Any) -> Any:
        return await self._gp_unary("echo", [value], same)

    async def hold(self, tag: str, seconds: float) -> str:
        result: str = await self._gp_unary("hold", [tag, seconds], same)
        return result

    def count(self, n: int, tag: str) -> AsyncIterator[int]:
        return self._gp_server_stream("count", [n, tag], same)

    async def total(self, items: AsyncIterable[int] | Iterable[int]) -> int:
        result: int = await self._gp_client_stream("total", [], items, same, same)
        return result

    def double(self, items: AsyncIterable[int] | Iterable[int]) -> AsyncIterator[int]:
        return self._gp_bidi("double", [], items, same, same)


def test_an_async_client_stub_over_the_pipe(address: str) -> None:
    client = _TAsyncClient.dial(address)  # outside any loop

    async def main() -> None:
        async with client:
            assert await client.echo("stub") == "stub"
            assert [x async for x in client.count(3, "stub")] == [0, 1, 2]
            assert await client.total(range(4)) == 6
            assert [x async for x in client.double([1, 2, 3])] == [2, 4, 6]
            with pytest.raises(DeadlineExceededError):
                await client.with_options(timeout=0.1).hold("stub", 5.0)
        assert not client.pipe.connected

    run(main)


def test_a_stream_used_without_holding_it(address: str) -> None:
    """Chained uses hold the StreamCall while they run: not taken for dropped ones."""
    pipe = Pipe(address)

    async def main() -> None:
        total = pipe.stream("T", "total", [], NONE, source=range(10), encode_item=same)
        assert await total.result() == 45
        assert (
            await pipe.stream("T", "total", [], NONE, source=range(10), encode_item=same).result()
            == 45
        )
        assert await anext(pipe.stream("T", "count", [3, "chained"], NONE, decode_item=same)) == 0
        gc.collect()
        await wait_until(lambda: pipe.open_streams == 0)  # the last one, dropped, is cancelled
        await pipe.close()

    run(main)


def test_many_concurrent_calls_share_one_connection(address: str) -> None:
    pipe = Pipe(address)

    async def main() -> None:
        results = await asyncio.gather(*(pipe.unary("T", "echo", [i], NONE) for i in range(200)))
        assert results == list(range(200))
        streams = [
            pipe.stream("T", "count", [20, "many"], NONE, decode_item=same) for _ in range(20)
        ]
        assert [[x async for x in s] for s in streams] == [list(range(20))] * 20
        endpoint = pipe._endpoints[0]
        assert endpoint.connection is not None and pipe.connected
        await pipe.close()
        assert not pipe.connected

    run(main)


def test_errors_carry_code_message_and_trailers(address: str) -> None:
    pipe = Pipe(address)

    async def main() -> None:
        with pytest.raises(NotFoundError) as caught:
            await pipe.unary("T", "fail", [StatusCode.NOT_FOUND, "no such", {"k": "v"}], NONE)
        assert caught.value.message == "no such"
        assert dict(caught.value.trailers) == {"k": "v"}
        with pytest.raises(RpcError) as unknown:
            await pipe.unary("T", "nope", [], NONE)
        assert unknown.value.code == StatusCode.UNIMPLEMENTED
        stream = pipe.stream("T", "headers", [], NONE)
        assert await stream.result() == "ok"
        assert stream.headers == {"x-head": "h"} and stream.trailers == {"x-trail": "t"}
        # A server stream that fails raises after the items sent before the failure.
        call = pipe.stream("T", "nope", [], NONE, decode_item=same)
        with pytest.raises(RpcError) as failed:
            async for _ in call:
                pass
        assert failed.value.code == StatusCode.UNIMPLEMENTED
        await pipe.close()

    run(main)


def test_an_unreachable_server_is_unavailable_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: refused
        pipe = Pipe(f"tcp://127.0.0.1:{port}")

        async def main() -> None:
            with pytest.raises(UnavailableError, match="cannot reach"):
                await pipe.unary("T", "echo", [1], NONE)
            with pytest.raises(UnavailableError):  # backing off now: fails at once
                await pipe.unary("T", "echo", [1], NONE)
            stream = pipe.stream("T", "count", [1, "x"], NONE, decode_item=same)
            with pytest.raises(UnavailableError):
                async for _ in stream:
                    pass
            await pipe.close()

        run(main)


# -- deadlines and cancellation -----------------------------------------------------------


def test_a_unary_deadline_raises_deadline_exceeded_and_cancels_the_handler(address: str) -> None:
    pipe = Pipe(address)

    async def main() -> None:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match=r"within 0\.5s"):
            await pipe.unary("T", "hold", ["deadline", 10.0], CallOptions(timeout=0.5))
        assert time.monotonic() - started < 5
        await wait_until(lambda: "deadline" in STATE.cancelled)
        assert pipe.open_calls == 0
        await pipe.close()

    run(main)


def test_cancelling_the_awaiting_task_sends_cancel(address: str) -> None:
    pipe = Pipe(address)

    async def main() -> None:
        task = asyncio.create_task(pipe.unary("T", "hold", ["task-cancel", 10.0], NONE))
        await wait_until(lambda: "task-cancel" in STATE.started)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # No deadline was sent: only the CANCEL frame can have told the handler.
        await wait_until(lambda: "task-cancel" in STATE.cancelled)
        assert pipe.open_calls == 0
        assert await pipe.unary("T", "echo", ["still fine"], NONE) == "still fine"
        await pipe.close()

    run(main)


def test_a_cancel_token_from_another_thread_cancels_calls_and_streams(address: str) -> None:
    pipe = Pipe(address)

    async def main() -> None:
        token = CancelToken()
        options = CallOptions(cancel=token)
        unary = asyncio.create_task(pipe.unary("T", "hold", ["token", 10.0], options))
        stream = pipe.stream("T", "count", [-1, "token-stream"], options, decode_item=same)
        assert await stream.__anext__() == 0
        await wait_until(lambda: "token" in STATE.started)
        threading.Thread(target=token.cancel, args=("stop now",)).start()
        with pytest.raises(RpcError) as caught:
            await unary
        assert caught.value.code == StatusCode.CANCELLED and "stop now" in caught.value.message
        with pytest.raises(RpcError) as stream_caught:
            async for _ in stream:
                pass
        assert stream_caught.value.code == StatusCode.CANCELLED
        await wait_until(lambda: "token" in STATE.cancelled)
        # A token already cancelled: nothing is sent.
        with pytest.raises(RpcError, match="stop now"):
            await pipe.unary("T", "echo", [1], options)
        assert pipe.open_streams == 0 and pipe.open_calls == 0
        await pipe.close()

    run(main)


def test_a_stream_deadline_ends_it_after_the_items_received(address: str) -> None:
    pipe = Pipe(address, stream_window=8)

    async def main() -> None:
        stream = pipe.stream(
            "T", "count", [-1, "deadline-stream"], CallOptions(timeout=0.3), decode_item=same
        )
        received = []
        with pytest.raises(DeadlineExceededError):
            async for item in stream:
                received.append(item)
                await asyncio.sleep(0.01)
        assert received[:3] == [0, 1, 2]
        assert stream.ended and pipe.open_streams == 0
        await pipe.close()

    run(main)


def test_cancelling_a_stream_reader_cancels_the_stream(server: Server) -> None:
    pipe = Pipe(server.addresses[0])

    async def main() -> None:
        stream = pipe.stream("T", "count", [-1, "reader-cancel"], NONE, decode_item=same)

        async def read() -> None:
            async for _ in stream:
                pass

        task = asyncio.create_task(read())
        await wait_until(lambda: STATE.produced["reader-cancel"] > 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stream.ended and stream.code == StatusCode.CANCELLED
        await wait_until(lambda: server._open_calls() == 0)
        assert pipe.open_streams == 0
        # aclose() before the end cancels too; a client stream's source is closed.
        closed = asyncio.Event()

        async def endless() -> AsyncIterator[int]:
            try:
                while True:
                    yield 1
                    await asyncio.sleep(0.001)
            finally:
                closed.set()

        bidi = pipe.stream(
            "T", "double", [], NONE, source=endless(), encode_item=same, decode_item=same
        )
        assert await bidi.__anext__() == 2
        await bidi.aclose()
        assert closed.is_set()
        await wait_until(lambda: server._open_calls() == 0)

        # A stream dropped unfinished by a task that returned normally is cancelled
        # once nothing holds it.
        async def first_only() -> int:
            stream = pipe.stream("T", "count", [-1, "dropped"], NONE, decode_item=same)
            item: int = await stream.__anext__()
            return item

        assert await asyncio.create_task(first_only()) == 0
        gc.collect()
        await wait_until(lambda: server._open_calls() == 0)
        assert pipe.open_streams == 0
        await pipe.close()

    run(main)


def test_an_aio_chan_as_the_source(address: str) -> None:
    """The seed's chat shape: a task sends on a Chan while another reads the replies;
    closing the Chan half-closes the stream, and a stream that ends first closes it."""
    pipe = Pipe(address)

    async def main() -> None:
        outgoing: Chan[int] = Chan(4)
        bidi = pipe.stream(
            "T", "double", [], NONE, source=outgoing, encode_item=same, decode_item=same
        )

        async def produce() -> None:
            async with outgoing:  # closed on exit: the server's loop ends
                for i in range(50):
                    await outgoing.send(i)

        producer = asyncio.create_task(produce())
        assert [x async for x in bidi] == [2 * i for i in range(50)]
        await producer
        # The stream ends first (cancelled here): the producer's next send fails.
        feed: Chan[int] = Chan(1)
        call = pipe.stream("T", "total", [], NONE, source=feed, encode_item=same)
        await feed.send(1)
        call.cancel()
        with pytest.raises(ChanClosed):
            for _ in range(10):
                await feed.send(2)
        with pytest.raises(RpcError) as caught:
            await call.result()
        assert caught.value.code == StatusCode.CANCELLED
        await pipe.close()

    run(main)


def test_a_slow_consumer_suspends_the_servers_producer(address: str) -> None:
    pipe = Pipe(address, stream_window=16)

    async def main() -> None:
        stream = pipe.stream("T", "count", [-1, "slow"], NONE, decode_item=same)
        for expected in range(5):
            assert await stream.__anext__() == expected
        await asyncio.sleep(0.5)  # the consumer stops reading
        held = STATE.produced["slow"]
        await asyncio.sleep(0.5)
        # The producer is suspended: no more than the window (plus what the server's
        # sender took from the generator for its next batch) has been produced.
        assert STATE.produced["slow"] == held
        assert held <= 5 + 16 + 128, held
        for expected in range(5, 200):  # reading again lets it go on
            assert await stream.__anext__() == expected
        assert STATE.produced["slow"] > held
        stream.cancel()
        await pipe.close()

    run(main)


def test_a_client_stream_waits_for_credit() -> None:
    """A server that does not read: the client's source is taken only as far as credit."""
    release = threading.Event()
    taken: list[int] = []

    def lazy_total(items: Any) -> int:
        release.wait(10)
        return sum(items)

    from gopherpipe_runtime.service import MethodDef, MethodKind, ServiceDef

    svc = ServiceDef(
        "L",
        {
            "total": MethodDef(
                MethodKind.CLIENT_STREAM,
                tuple,
                lazy_total,
                same,
                stream_param=0,
                decode_item=same,
            )
        },
    )
    with Server("tcp://127.0.0.1:0", stream_window=8) as server:
        server.add_service(svc)
        pipe = Pipe(server.addresses[0])

        def source() -> Iterator[int]:
            for i in range(1000):
                taken.append(i)
                yield i

        async def main() -> None:
            call = pipe.stream("L", "total", [], NONE, source=source(), encode_item=same)
            await wait_until(lambda: len(taken) >= 8)
            await asyncio.sleep(0.3)
            assert len(taken) <= 8 + 1, len(taken)  # the window, and one waiting for credit
            release.set()
            assert await call.result() == sum(range(1000))
            await pipe.close()

        run(main)


def test_a_thousand_cancelled_streams_free_everything(server: Server) -> None:
    # A small window keeps the server's producers parked on credit (not busy) while
    # the readers wait; half the readers are cancelled while waiting in the stream,
    # half elsewhere (a sleep between items).
    pipe = Pipe(server.addresses[0], stream_window=2)

    async def main() -> None:
        assert await pipe.unary("T", "echo", [0], NONE) == 0  # connected: its task exists
        baseline = len(asyncio.all_tasks())
        started: list[None] = []

        async def read_one(pause: float) -> None:
            stream = pipe.stream("T", "count", [-1, "thousand"], NONE, decode_item=same)
            await stream.__anext__()
            started.append(None)
            async for _ in stream:
                if pause:
                    await asyncio.sleep(pause)

        for _ in range(10):
            tasks = [asyncio.create_task(read_one((i % 2) * 0.05)) for i in range(100)]
            await wait_until(lambda: len(started) == 100, 20)
            started.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await wait_until(lambda: len(asyncio.all_tasks()) == baseline)
        assert pipe.open_streams == 0
        connection = pipe._endpoints[0].connection
        assert connection is not None and connection.receive_window.buffered == 0
        assert connection.send_window is not None and connection.send_window.outstanding == 0
        await wait_until(lambda: server._open_calls() == 0, 20)
        assert await pipe.unary("T", "echo", ["after"], NONE) == "after"
        await pipe.close()

    run(main, 120)


# -- endpoints, balancing, resending --------------------------------------------------------


@pytest.fixture
def two_servers() -> Iterator[list[str]]:
    servers = []
    for name in ("a", "b"):
        server = Server("tcp://127.0.0.1:0")
        server.add_service(service(name))
        server.start()
        servers.append(server)
    yield [s.addresses[0] for s in servers]
    for server in servers:
        server.stop(0.5)


def test_round_robin_and_pick_first_over_two_servers(two_servers: list[str]) -> None:
    listed = ",".join(two_servers)

    async def main() -> None:
        async with Pipe(listed) as pipe:
            names = [await pipe.unary("T", "who", [], NONE) for _ in range(6)]
            assert sorted(set(names)) == ["a", "b"] and names.count("a") == 3
            streams = [
                pipe.stream("T", "count", [1, "rr"], NONE, decode_item=same) for _ in range(4)
            ]
            for stream in streams:
                assert [x async for x in stream] == [0]
        async with Pipe(listed, balance="pick_first") as pipe:
            assert {await pipe.unary("T", "who", [], NONE) for _ in range(6)} == {"a"}

    run(main)


def test_a_dead_endpoint_is_skipped(two_servers: list[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
        pipe = Pipe(f"tcp://{dead},{two_servers[1].removeprefix('tcp://')}")

        async def main() -> None:
            assert {await pipe.unary("T", "who", [], NONE) for _ in range(6)} == {"b"}
            await pipe.close()

        run(main)


def test_idempotent_calls_are_retried_and_others_are_not(address: str) -> None:
    pipe = Pipe(address)

    async def main() -> None:
        assert await pipe.unary("T", "flaky", ["retried", 2], NONE, idempotent=True) == 3
        with pytest.raises(UnavailableError, match="flaky"):
            await pipe.unary("T", "flaky", ["not-retried", 2], NONE)
        assert STATE.attempts["not-retried"] == 1
        await pipe.close()

    run(main)


async def _fake_server(
    on_call: Callable[[asyncio.StreamWriter, int], None] | None,
    read: bool = True,
) -> tuple[asyncio.Server, str, list[int]]:
    """A TCP_LITE peer that answers HELLO and hands every CALL's stream id to `on_call`
    (None: it never answers anything, PING included); with `read` False it reads
    nothing after the HELLO."""
    calls: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(len(PREFACE))
        decoder = FrameDecoder()
        hello = False
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    if not hello:
                        _, answer = server_choose(frame.payload, ("msgpack",), 1 << 20)
                        writer.write(encode_frame(FrameType.HELLO, answer))
                        hello = True
                        if not read:
                            await asyncio.sleep(60)
                    elif frame.type in (FrameType.CALL, FrameType.CALL_STREAM):
                        calls.append(frame.stream_id)
                        if on_call is not None:
                            on_call(writer, frame.stream_id)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"tcp://127.0.0.1:{port}", calls


def test_a_call_refused_by_goaway_goes_to_the_next_endpoint(address: str) -> None:
    def refuse(writer: asyncio.StreamWriter, stream_id: int) -> None:
        writer.write(encode_goaway(stream_id - 1, StatusCode.UNAVAILABLE, "draining"))

    async def main() -> None:
        fake, fake_address, calls = await _fake_server(refuse)
        async with fake:
            pipe = Pipe(f"{fake_address},{address}", balance="pick_first")
            # Not idempotent: resent all the same, since the server never processed it.
            assert await pipe.unary("T", "who", [], NONE) == "one"
            assert calls == [1]
            await pipe.close()

    run(main)


def test_keepalive_declares_a_silent_server_dead() -> None:
    async def main() -> None:
        fake, fake_address, calls = await _fake_server(None)
        async with fake:
            pipe = Pipe(fake_address, keepalive_interval=0.2, keepalive_timeout=0.2)
            stream = pipe.stream("T", "count", [-1, "x"], NONE, decode_item=same)
            with pytest.raises(UnavailableError, match="keepalive"):
                await pipe.unary("T", "echo", [1], NONE)
            with pytest.raises(UnavailableError, match="keepalive"):
                await stream.__anext__()
            assert calls == [1, 2] or calls == [2, 1] or len(calls) == 2
            await pipe.close()

    run(main)


def test_a_server_that_stops_reading_hits_the_write_timeout() -> None:
    async def main() -> None:
        fake, fake_address, _ = await _fake_server(None, read=False)
        async with fake:
            pipe = Pipe(fake_address, write_timeout=0.3)
            # Megabytes of calls (a CALL is not flow-controlled): the socket buffers
            # fill, the transport pauses, and stays paused past the write timeout.
            calls = [pipe.unary("T", "echo", [b"x" * 900_000], NONE) for _ in range(32)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, UnavailableError) for r in results), results[:1]
            assert "write timeout" in str(results[-1])
            await pipe.close()

    run(main)


def test_closing_the_pipe_ends_what_is_open(address: str) -> None:
    pipe = Pipe(address)

    async def main() -> None:
        unary = asyncio.create_task(pipe.unary("T", "hold", ["closing", 5.0], NONE))
        stream = pipe.stream("T", "count", [-1, "closing"], NONE, decode_item=same)
        assert await stream.__anext__() == 0
        await wait_until(lambda: pipe.open_calls == 1)
        await pipe.close()
        with pytest.raises(UnavailableError):
            await unary
        with pytest.raises(UnavailableError):
            async for _ in stream:
                pass
        with pytest.raises(UnavailableError, match="closed"):
            await pipe.unary("T", "echo", [1], NONE)

    run(main)


def test_wait_for_ready_waits_for_the_server_to_come_up(tmp_path: Path) -> None:
    path = tmp_path / "late.sock"
    pipe = Pipe(f"unix://{path}", backoff_base=0.05, backoff_max=0.1)
    late: list[Server] = []

    def start_later() -> None:
        time.sleep(0.4)
        server = Server(f"unix://{path}")
        server.add_service(service("late"))
        server.start()
        late.append(server)

    async def main() -> None:
        with pytest.raises(UnavailableError):
            await pipe.unary("T", "who", [], NONE)
        threading.Thread(target=start_later).start()
        ready = CallOptions(timeout=10, wait_for_ready=True)
        assert await pipe.unary("T", "who", [], ready) == "late"
        await pipe.close()

    try:
        run(main)
    finally:
        for server in late:
            server.stop(0.5)


class _Moving(Resolver):
    """A resolver whose list changes on another thread, as a discovery one's does."""

    def __init__(self, first: list[str]) -> None:
        self.watched = WatchedEndpoints(first)

    def endpoints(self) -> list[str]:
        return self.watched.current()

    def subscribe(self, callback: Callable[[list[str]], None]) -> Callable[[], None]:
        return self.watched.subscribe(callback)


def test_endpoints_from_a_resolver_change_from_another_thread(
    two_servers: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    moving = _Moving([two_servers[0]])
    monkeypatch.setattr(aio_pipe, "is_discovery_address", lambda text: True)
    monkeypatch.setattr(aio_pipe, "resolver_for", lambda text, options: moving)
    pipe = Pipe("fake://T")

    async def main() -> None:
        assert await pipe.unary("T", "who", [], NONE) == "a"
        old = pipe._endpoints[0].connection
        stream = pipe.stream("T", "count", [-1, "moving"], NONE, decode_item=same)
        assert await stream.__anext__() == 0
        thread = threading.Thread(target=moving.watched.update, args=([two_servers[1]],))
        thread.start()
        thread.join()
        await wait_until(lambda: pipe.endpoints == [two_servers[1]])
        assert await pipe.unary("T", "who", [], NONE) == "b"
        # The removed endpoint's connection drains: its stream goes on, then it closes.
        assert old is not None and old.draining is not None and old.closed_reason is None
        assert await stream.__anext__() == 1
        stream.cancel()
        assert old.closed_reason is not None
        await pipe.close()

    run(main)


# -- the loop binding ----------------------------------------------------------------------


def test_one_pipe_under_two_asyncio_runs(address: str) -> None:
    pipe = Pipe(address)  # made outside any loop
    connections = []

    async def main() -> None:
        assert await pipe.unary("T", "echo", ["run"], NONE) == "run"
        assert [
            x async for x in pipe.stream("T", "count", [3, "runs"], NONE, decode_item=same)
        ] == [0, 1, 2]
        connections.append(pipe._endpoints[0].connection)

    run(main)
    first = connections[0]
    assert first is not None and first.closed_reason is not None  # closed with its loop
    run(main)
    assert connections[1] is not first
    asyncio.run(pipe.close())


def test_a_pipe_in_use_by_another_running_loop_fails_clearly(address: str) -> None:
    pipe = Pipe(address)
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever)
    thread.start()
    try:
        first = asyncio.run_coroutine_threadsafe(pipe.unary("T", "echo", [1], NONE), other)
        assert first.result(10) == 1

        async def main() -> None:
            with pytest.raises(RuntimeError, match="another running event loop"):
                await pipe.unary("T", "echo", [2], NONE)
            with pytest.raises(RuntimeError, match="another running event loop"):
                pipe.stream("T", "count", [1, "x"], NONE, decode_item=same)

        run(main)
        # The owning loop goes on using it.
        again = asyncio.run_coroutine_threadsafe(pipe.unary("T", "echo", [3], NONE), other)
        assert again.result(10) == 3
        asyncio.run_coroutine_threadsafe(pipe.close(), other).result(10)
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(10)
        other.close()


class _Recorder(Interceptor):
    def __init__(self) -> None:
        self.ends: list[tuple[str, StatusCode]] = []
        self.sent: list[Any] = []
        self.received: list[Any] = []

    def intercept(self, call: CallInfo, proceed: Callable[[], Any]) -> Any:
        if call.method == "refused":
            raise PermissionDeniedError("not you")
        call.metadata["x-seen"] = call.kind.value
        return proceed()

    def on_end(self, call: CallInfo, code: StatusCode, message: str) -> None:
        self.ends.append((call.method, code))

    def on_send(self, call: CallInfo, item: Any) -> None:
        self.sent.append(item)

    def on_receive(self, call: CallInfo, item: Any) -> None:
        self.received.append(item)


def test_interceptors_see_every_call(address: str) -> None:
    recorder = _Recorder()
    pipe = Pipe(address, interceptors=[TokenAuthClient("sesame"), recorder])

    async def main() -> None:
        assert await pipe.unary("T", "meta", ["authorization"], NONE) == "Bearer sesame"
        assert await pipe.unary("T", "meta", ["x-seen"], NONE) == "unary"
        with pytest.raises(PermissionDeniedError):
            await pipe.unary("T", "refused", [], NONE)
        with pytest.raises(DeadlineExceededError):
            await pipe.unary("T", "hold", ["intercepted", 5.0], CallOptions(timeout=0.1))
        bidi = pipe.stream(
            "T", "double", [], NONE, source=[1, 2], encode_item=same, decode_item=same
        )
        assert [x async for x in bidi] == [2, 4]
        with pytest.raises(PermissionDeniedError):
            pipe.stream("T", "refused", [], NONE, decode_item=same)
        await pipe.close()

    run(main)
    assert recorder.ends == [
        ("meta", StatusCode.OK),
        ("meta", StatusCode.OK),
        ("refused", StatusCode.PERMISSION_DENIED),
        ("hold", StatusCode.DEADLINE_EXCEEDED),
        ("double", StatusCode.OK),
        ("refused", StatusCode.PERMISSION_DENIED),
    ]
    assert recorder.sent == [1, 2] and recorder.received == [2, 4]


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="balance"):
        Pipe("tcp://127.0.0.1:1", balance="random")
    with pytest.raises(TypeError, match="tls"):
        Pipe("tls://127.0.0.1:1", tls="cert.pem")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="codecs"):
        Pipe("tcp://127.0.0.1:1", codec="xml")
    assert aio_pipe.REFUSED_OPTIONS == ()


def test_stream_call_is_exported() -> None:
    assert StreamCall is aio_pipe.StreamCall

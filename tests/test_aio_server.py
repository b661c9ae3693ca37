"""gopherpipe_runtime.aio.Server in process: the threaded client (`aio_lab.LabClient`,
as a generated sync stub) against the asyncio server running on a loop in a
background thread. Across processes: test_aio_server_e2e.py."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from aio_lab import Lab, LabClient, Record, service_def
from e2e_harness import assert_goaway_protocol_error, frames_until_closed, host_port, raw_handshake

from gopherpipe_runtime import (
    CallOptions,
    CancelToken,
    Pipe,
    RpcError,
    StatusCode,
    health,
    reflection,
    response_metadata,
)
from gopherpipe_runtime.aio import Server
from gopherpipe_runtime.wire.frames import FrameType, encode_stream_frame

T = TypeVar("T")


class LoopThread:
    """An event loop in a thread of its own, for a server the test's threads call."""

    def __init__(self, kind: str = "asyncio") -> None:
        if kind == "uvloop":
            uvloop = pytest.importorskip("uvloop")
            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


class Served:
    def __init__(self, runner: LoopThread, *addresses: str, **options: Any) -> None:
        self.runner = runner
        self.record = Record()
        self.server = Server(*addresses, **options)
        self.server.add_service(service_def(Lab(self.record)))
        runner.run(self.server.start())
        self.address = self.server.addresses[0]

    def client(self, **options: Any) -> LabClient:
        return LabClient.dial(self.address, **options)

    def stop(self, grace: float | None = None) -> None:
        self.runner.run(self.server.stop(grace))


@pytest.fixture
def served(loop_thread: LoopThread) -> Iterator[Served]:
    s = Served(loop_thread)
    yield s
    s.stop()


def test_unary(served: Served) -> None:
    with served.client() as client:
        assert client.echo("hi") == "hi"
        assert client.sync_echo("there") == "there"


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    """Poll `condition` (bounded): for state another thread or process changes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


# -- status codes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", [StatusCode.NOT_FOUND, StatusCode.PERMISSION_DENIED, StatusCode.ABORTED]
)
def test_an_rpc_error_is_its_code(served: Served, code: StatusCode) -> None:
    with served.client() as client, pytest.raises(RpcError) as caught:
        client.fail(int(code), "nope")
    assert caught.value.code == code and caught.value.message == "nope"


def test_another_exception_is_internal(served: Served) -> None:
    with served.client() as client, pytest.raises(RpcError) as caught:
        client.fail(0, "boom")
    assert caught.value.code == StatusCode.INTERNAL
    assert "ValueError: boom" in caught.value.message


def test_a_wrong_result_is_internal(served: Served) -> None:
    with served.client() as client, pytest.raises(RpcError) as caught:
        client.wrong()
    assert caught.value.code == StatusCode.INTERNAL
    assert "handler returned a wrong value" in caught.value.message


def test_bad_arguments_and_unknown_methods(served: Served) -> None:
    with Pipe(served.address) as pipe:
        with pytest.raises(RpcError) as caught:
            pipe.unary("Lab", "echo", [42], CallOptions())
        assert caught.value.code == StatusCode.INVALID_ARGUMENT
        with pytest.raises(RpcError) as caught:
            pipe.unary("Lab", "nothing", [], CallOptions())
        assert caught.value.code == StatusCode.UNIMPLEMENTED
        with pytest.raises(RpcError) as caught:
            pipe.unary("Nobody", "echo", [], CallOptions())
        assert caught.value.code == StatusCode.UNIMPLEMENTED


def test_metadata_headers_trailers_and_deadline_reach_the_handler(served: Served) -> None:
    with served.client() as client, response_metadata() as meta:
        answer = client.with_options(metadata={"k": "v"}, timeout=5).meta("k")
    assert answer == "v|tcp|True"
    assert meta.headers == {"h": "head"} and meta.trailers == {"t": "tail"}


# -- the four shapes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["count", "ticking", "listed", "later", "threaded_chan", "aio_chan"]
)
def test_server_streams_of_every_source(served: Served, method: str) -> None:
    with served.client() as client:
        assert list(client.stream(method, 2500)) == list(range(2500))
        assert list(client.stream(method, 0)) == []


@pytest.mark.parametrize(
    ("method", "code"),
    [("failing_stream", StatusCode.ABORTED), ("failing_sync", StatusCode.OUT_OF_RANGE)],
)
def test_a_stream_that_fails_ends_with_its_code_after_its_items(
    served: Served, method: str, code: StatusCode
) -> None:
    with served.client() as client:
        got: list[int] = []
        with pytest.raises(RpcError) as caught:
            for item in client.stream(method, 3):
                got.append(item)
    assert got == [0, 1, 2]
    assert caught.value.code == code


def test_client_stream(served: Served) -> None:
    with served.client() as client:
        assert client.total(iter(range(5000))) == sum(range(5000))
        assert client.total([]) == 0


def test_a_handler_that_stops_reading_stops_the_client(served: Served) -> None:
    with served.client() as client:
        # An endless source: the call ends only because the server says stop.
        assert client.first(itertools.count(7)) == 7


def test_bidi(served: Served) -> None:
    with served.client() as client:
        assert list(client.double(3, iter(range(3000)))) == [i * 3 for i in range(3000)]
        # The inbound stream itself returned as the outbound one.
        assert list(client.relay(iter(range(3000)))) == list(range(3000))


# -- deadlines, cancellation, flow control ---------------------------------------------


def test_a_deadline_cancels_the_handler(served: Served) -> None:
    with served.client() as client, pytest.raises(RpcError) as caught:
        client.with_options(timeout=0.3).sleep(30)
    assert caught.value.code == StatusCode.DEADLINE_EXCEEDED
    assert served.record.cancelled.wait(5)
    assert not served.record.finished.is_set()


def test_a_client_cancel_cancels_the_handler(served: Served) -> None:
    token = CancelToken()
    failures: list[RpcError] = []

    def call() -> None:
        with served.client() as client:
            try:
                client.with_options(cancel=token).sleep(30)
            except RpcError as exc:
                failures.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert served.record.started.wait(5)
    token.cancel("enough")
    caller.join(5)
    assert failures and failures[0].code == StatusCode.CANCELLED
    assert served.record.cancelled.wait(5)


@pytest.mark.parametrize("method", ["count", "ticking"])
def test_closing_a_server_stream_closes_the_generator(served: Served, method: str) -> None:
    with served.client() as client:
        items = client.stream(method, 10**9)
        assert [items.recv(timeout=5) for _ in range(3)] == [0, 1, 2]
        items.close()
        assert served.record.stream_closed.wait(5)
        assert served.record.cancelled.is_set()
        assert client.echo("still fine") == "still fine"


@pytest.mark.parametrize("method", ["count", "ticking"])
def test_a_slow_reader_holds_the_producer_to_its_window(served: Served, method: str) -> None:
    window = 64
    with served.client(stream_window=window) as client:
        items = client.stream(method, 100_000)
        reader = iter(items)
        assert next(reader) == 0
        # The producer runs ahead only as far as the client's window (plus the batch
        # it was taking when the credit ran out).
        assert wait_for(lambda: served.record.produced >= window)
        time.sleep(0.3)
        produced = served.record.produced
        assert produced <= 2 * window + 1, produced
        rest = list(reader)
    assert rest == list(range(1, 100_000))
    assert served.record.produced == 100_000


# -- stop ------------------------------------------------------------------------------


def test_stop_lets_calls_in_progress_finish_within_the_grace(loop_thread: LoopThread) -> None:
    served = Served(loop_thread)
    results: list[object] = []

    def call() -> None:
        with served.client() as client:
            try:
                results.append(client.sleep(0.5))
            except RpcError as exc:
                results.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert served.record.started.wait(5)
    served.stop(grace=10)
    caller.join(5)
    assert results == ["slept"]
    with pytest.raises(RpcError) as caught, served.client(connect_timeout=1) as client:
        client.echo("too late")
    assert caught.value.code == StatusCode.UNAVAILABLE


def test_stop_without_grace_cancels_what_runs(loop_thread: LoopThread) -> None:
    served = Served(loop_thread)
    results: list[object] = []

    def call() -> None:
        with served.client() as client:
            try:
                results.append(client.sleep(30))
            except RpcError as exc:
                results.append(exc.code)

    caller = threading.Thread(target=call)
    caller.start()
    assert served.record.started.wait(5)
    served.stop()
    caller.join(5)
    assert results == [StatusCode.UNAVAILABLE]
    assert served.record.cancelled.wait(5)


def test_health_and_reflection(served: Served) -> None:
    assert health.check(served.address) == health.SERVING
    assert health.check(served.address, "Lab") == health.SERVING
    served.server.set_serving("Lab", False)
    assert health.check(served.address, "Lab") == health.NOT_SERVING
    with Pipe(served.address) as pipe:
        watch = health.watch(pipe, "Lab")
        assert watch.recv(timeout=5) == health.NOT_SERVING
        served.server.set_serving("Lab", True)
        assert watch.recv(timeout=5) == health.SERVING
        watch.close()
        schemas = reflection.describe(pipe)
    assert [s["name"] for s in schemas] == ["Lab"]


# -- the wire's edges ------------------------------------------------------------------


def test_an_http_request_gets_the_400(served: Served) -> None:
    host, port = host_port(served.address)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"speaks GopherPipe" in answer


def test_garbage_is_closed_and_the_server_goes_on(served: Served) -> None:
    host, port = host_port(served.address)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"\x00\x01garbage")
        assert sock.recv(4096) == b""
    with served.client() as client:
        assert client.echo("fine") == "fine"


def test_a_frame_over_the_limit_gets_goaway(loop_thread: LoopThread) -> None:
    served = Served(loop_thread, max_frame_size=16384)
    try:
        sock, decoder = raw_handshake(served.address)
        with sock:
            sock.sendall(encode_stream_frame(FrameType.CALL, 1, b"\x00" * 20000))
            received = frames_until_closed(sock, decoder)
        assert_goaway_protocol_error(received)
        with served.client() as client:
            assert client.echo("fine") == "fine"
    finally:
        served.stop()


@pytest.mark.parametrize("algorithm", ["zlib", "zstd"])
def test_compression_negotiated_in_hello(served: Served, algorithm: str) -> None:
    big = "gopher " * 50_000
    with served.client(compression=algorithm, codec="json") as client:
        assert client.echo(big) == big
        assert list(client.stream("listed", 20_000)) == list(range(20_000))
        assert client.pipe.codec == "json"
        # The server's side of the connection compresses (compression.wrap's codec).
        codecs = [type(conn.codec).__name__ for conn in list(served.server._connections)]
        assert "CompressingCodec" in codecs, codecs


def test_cancelled_streams_leave_nothing_behind(served: Served) -> None:
    async def tasks() -> int:
        return len(asyncio.all_tasks()) - 1  # less this one

    before = served.runner.run(tasks())
    with served.client() as client:
        for _ in range(200):
            items = client.stream("count", 10**9)
            items.recv(timeout=5)
            items.close()
        for _ in range(50):
            token = CancelToken()
            stream = client.with_options(cancel=token).double(1, itertools.count())
            stream.recv(timeout=5)
            token.cancel()
        assert client.echo("still") == "still"

    def settled() -> bool:
        open_calls = sum(len(conn.streams) for conn in list(served.server._connections))
        return served.server._running == 0 and open_calls == 0

    assert wait_for(settled)
    assert wait_for(lambda: served.runner.run(tasks()) <= before)


def test_accepted_tcp_sockets_have_nagle_off(served: Served) -> None:
    """Without TCP_NODELAY a stream's frames written in separate loop iterations wait
    for the client's delayed ACK (measured: a window of 64 items streamed at 830 items/s
    instead of 80,000). asyncio sets it only when the socket's proto says TCP."""
    with served.client() as client:
        assert client.echo("x") == "x"
        socks = [conn.transport.get_extra_info("socket") for conn in served.server._connections]
        assert socks
        for sock in socks:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_stop_on_another_loop_says_which_one(served: Served) -> None:
    with pytest.raises(RuntimeError, match="loop that started the server"):
        asyncio.run(served.server.stop())
    with served.client() as client:
        assert client.echo("unharmed") == "unharmed"

"""gopherpipe_runtime.aio.Server's limits, timeouts and policies, seen from a raw
TCP_LITE peer (tests/e2e_harness.py) or the threaded client: the same answers as the
threaded server's (max_concurrent_streams, max_pending_calls, max_metadata_size,
max_connections, handshake and idle timeouts, keepalive and the ping policy, the drain
refusing new calls with GOAWAY), interceptors, announcing, and the options it refuses."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgpack
import pytest
from e2e_harness import call_body, frames_until_closed, host_port, next_frame, raw_handshake
from test_aio_server import LoopThread, Served

from gopherpipe_runtime import CallOptions, Interceptor, Pipe, RpcError, StatusCode
from gopherpipe_runtime.aio import Server
from gopherpipe_runtime.context import CallContext
from gopherpipe_runtime.status import PermissionDeniedError
from gopherpipe_runtime.wire.frames import (
    FrameType,
    decode_goaway,
    encode_frame,
    encode_stream_frame,
)


@pytest.fixture
def runner() -> Iterator[LoopThread]:
    loop_thread = LoopThread()
    yield loop_thread
    loop_thread.close()


def status_of(frame: Any) -> tuple[int, str]:
    code, message, *_ = msgpack.unpackb(frame.payload)
    return code, message


def call(
    sock: socket.socket, stream_id: int, method: str, args: list[Any], service: str = "Lab"
) -> None:
    sock.sendall(encode_stream_frame(FrameType.CALL, stream_id, call_body(service, method, args)))


def test_max_concurrent_streams(runner: LoopThread) -> None:
    served = Served(runner, max_concurrent_streams=1)
    try:
        sock, decoder = raw_handshake(served.address)
        with sock:
            call(sock, 1, "sleep", [30])
            assert served.record.started.wait(5)
            call(sock, 3, "echo", ["x"])
            frame = next_frame(sock, decoder, FrameType.STATUS)
            assert frame.stream_id == 3
            code, message = status_of(frame)
            assert code == StatusCode.RESOURCE_EXHAUSTED and "max_concurrent_streams" in message
    finally:
        served.stop()


def test_max_pending_calls_counts_running_handlers_server_wide(runner: LoopThread) -> None:
    served = Served(runner, max_pending_calls=1)
    try:
        first, _ = raw_handshake(served.address)
        with first:
            call(first, 1, "sleep", [30])
            assert served.record.started.wait(5)
            with served.client() as client, pytest.raises(RpcError) as caught:
                client.echo("x")
            assert caught.value.code == StatusCode.RESOURCE_EXHAUSTED
            assert "pending calls" in caught.value.message
    finally:
        served.stop()


def test_max_metadata_size(runner: LoopThread) -> None:
    served = Served(runner, max_metadata_size=100)
    try:
        with Pipe(served.address) as pipe, pytest.raises(RpcError) as caught:
            pipe.unary("Lab", "echo", ["x"], CallOptions(metadata={"k": "v" * 200}))
        assert caught.value.code == StatusCode.RESOURCE_EXHAUSTED
        assert "max_metadata_size" in caught.value.message
    finally:
        served.stop()


def test_max_connections_refuses_with_goaway(runner: LoopThread) -> None:
    served = Served(runner, max_connections=1)
    try:
        held, _ = raw_handshake(served.address)
        with held, socket.create_connection(host_port(served.address), timeout=5) as extra:
            received = frames_until_closed(extra, _decoder())
            _, code, message = decode_goaway(received[0].payload)
            assert code == StatusCode.RESOURCE_EXHAUSTED and "1 connections" in message
    finally:
        served.stop()


def _decoder() -> Any:
    from gopherpipe_runtime.wire.frames import FrameDecoder

    return FrameDecoder(1 << 20)


def test_a_silent_connection_is_closed_at_the_handshake_timeout(runner: LoopThread) -> None:
    served = Served(runner, handshake_timeout=0.2)
    try:
        with socket.create_connection(host_port(served.address), timeout=5) as silent:
            started = time.monotonic()
            assert silent.recv(100) == b""
            assert time.monotonic() - started < 4
    finally:
        served.stop()


def test_idle_timeout_sends_goaway(runner: LoopThread) -> None:
    served = Served(runner, idle_timeout=0.2)
    try:
        sock, decoder = raw_handshake(served.address)
        with sock:
            frame = next_frame(sock, decoder, FrameType.GOAWAY)
            _, code, message = decode_goaway(frame.payload)
            assert code == StatusCode.UNAVAILABLE and "idle timeout" in message
        with served.client() as client:  # a client just dials again
            assert client.echo("back") == "back"
    finally:
        served.stop()


def test_keepalive_pings_and_drops_a_peer_that_never_answers(runner: LoopThread) -> None:
    served = Served(runner, keepalive_interval=0.1, keepalive_timeout=0.2)
    try:
        sock, decoder = raw_handshake(served.address)
        with sock:
            call(sock, 1, "sleep", [30])
            ping = next_frame(sock, decoder, FrameType.PING)
            assert ping.payload == b"keepaliv"
            frame = next_frame(sock, decoder, FrameType.GOAWAY)
            _, code, message = decode_goaway(frame.payload)
            assert code == StatusCode.UNAVAILABLE and "keepalive" in message
        assert served.record.cancelled.wait(5)  # its call ended with it
    finally:
        served.stop()


def test_keepalive_answered_keeps_the_connection(runner: LoopThread) -> None:
    served = Served(runner, keepalive_interval=0.1, keepalive_timeout=0.5)
    try:
        with served.client(keepalive_interval=None) as client:
            # The threaded client answers PINGs while it waits for its call.
            assert client.with_options(timeout=5).sleep(0.8) == "slept"
    finally:
        served.stop()


def test_too_many_pings_get_goaway(runner: LoopThread) -> None:
    served = Served(runner, min_ping_interval=10)
    try:
        sock, decoder = raw_handshake(served.address)
        with sock:
            for _ in range(4):
                sock.sendall(encode_frame(FrameType.PING, b"12345678"))
            frame = next_frame(sock, decoder, FrameType.GOAWAY)
            _, code, message = decode_goaway(frame.payload)
            assert code == StatusCode.RESOURCE_EXHAUSTED and message == "too many pings"
    finally:
        served.stop()


def test_a_draining_server_refuses_new_calls_with_goaway_but_answers_health(
    runner: LoopThread,
) -> None:
    served = Served(runner)
    sock, decoder = raw_handshake(served.address)
    with sock:
        call(sock, 1, "sleep", [0.5])
        assert served.record.started.wait(5)
        stopping = threading.Thread(target=served.stop, args=(10,))
        stopping.start()
        first = next_frame(sock, decoder, FrameType.GOAWAY)
        assert decode_goaway(first.payload)[:2] == (1, StatusCode.UNAVAILABLE)
        call(sock, 3, "echo", ["late"])
        refused = next_frame(sock, decoder, FrameType.GOAWAY)
        last, code, message = decode_goaway(refused.payload)
        assert (last, code, message) == (1, StatusCode.UNAVAILABLE, "server is shutting down")
        call(sock, 5, "check", [""], service="gopherpipe.Health")
        statuses = {}
        while len(statuses) < 2:
            frame = next_frame(sock, decoder, FrameType.STATUS)
            statuses[frame.stream_id] = msgpack.unpackb(frame.payload)
        assert statuses[5][:3] == [0, "", "NOT_SERVING"]
        assert statuses[1][:3] == [0, "", "slept"]
        stopping.join(10)


def _unread_results(served: Served, calls: int, wait: float = 1.5) -> int:
    """Ask for `calls` results of 1 MB and read none until the server gives up on the
    connection; the bytes that had reached us by then."""
    sock, _ = raw_handshake(served.address)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        for stream_id in range(1, 2 * calls, 2):
            call(sock, stream_id, "big", [1000 * 1000])
        time.sleep(wait)  # the server queues what we do not read, then its sweep drops us
        total = 0
        try:
            while chunk := sock.recv(1 << 20):
                total += len(chunk)
        except ConnectionResetError:
            pass
    return total


def test_a_client_that_never_reads_is_dropped_beyond_max_outbound_bytes(
    runner: LoopThread,
) -> None:
    served = Served(runner, max_outbound_bytes=4 << 20)
    try:
        assert _unread_results(served, 40) < 30 << 20
        with served.client() as client:
            assert client.echo("others fine") == "others fine"
    finally:
        served.stop()


def test_a_client_that_stops_reading_is_dropped_after_write_timeout(runner: LoopThread) -> None:
    served = Served(runner, write_timeout=0.2)
    try:
        # Two sweeps (a second apart) see the queue stuck: the second drops us.
        assert _unread_results(served, 12, wait=2.5) < 12 << 20
    finally:
        served.stop()


class Recording(Interceptor):
    def __init__(self) -> None:
        self.ends: list[tuple[str, StatusCode]] = []
        self.sent = 0
        self.received = 0

    def intercept(self, call: Any, proceed: Any) -> Any:
        if call.method == "wrong":
            raise PermissionDeniedError("not you")
        assert isinstance(call, CallContext)
        return proceed()

    def on_end(self, call: Any, code: StatusCode, message: str) -> None:
        self.ends.append((call.method, code))

    def on_send(self, call: Any, item: Any) -> None:
        self.sent += 1

    def on_receive(self, call: Any, item: Any) -> None:
        self.received += 1


def test_interceptors(runner: LoopThread) -> None:
    recording = Recording()
    served = Served(runner, interceptors=[recording])
    try:
        with served.client() as client:
            assert client.echo("x") == "x"
            with pytest.raises(RpcError) as caught:
                client.wrong()
            assert caught.value.code == StatusCode.PERMISSION_DENIED
            with pytest.raises(RpcError):
                client.fail(int(StatusCode.NOT_FOUND), "no")
            assert list(client.stream("count", 3)) == [0, 1, 2]
            assert client.total([1, 2]) == 3
        assert wait_until(lambda: len(recording.ends) == 5)
        assert recording.ends == [
            ("echo", StatusCode.OK),
            ("wrong", StatusCode.PERMISSION_DENIED),
            ("fail", StatusCode.NOT_FOUND),
            ("count", StatusCode.OK),
            ("total", StatusCode.OK),
        ]
        assert (recording.sent, recording.received) == (3, 2)
    finally:
        served.stop()


def wait_until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())


class FakeRegistry:
    def __init__(self) -> None:
        self.announced: list[tuple[dict[str, list[str]], dict[str, str]]] = []
        self.withdrawn: list[list[str]] = []
        self.thread: str | None = None

    def announce(self, services: Mapping[str, Sequence[str]], meta: Mapping[str, str]) -> None:
        self.thread = threading.current_thread().name
        self.announced.append(({k: list(v) for k, v in services.items()}, dict(meta)))

    def withdraw(self, services: Any) -> None:
        self.withdrawn.append(list(services))


def test_announces_on_start_and_withdraws_on_stop(runner: LoopThread) -> None:
    registry = FakeRegistry()
    served = Served(runner, registry=registry, service_meta={"zone": "z"})
    assert registry.announced == [({"Lab": served.server.addresses}, {"zone": "z"})]
    assert registry.thread != runner.thread.name  # in an executor, not on the loop
    served.stop()
    assert registry.withdrawn == [["Lab"]]


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"codecs": ("nope",)}, ValueError, "unknown codecs"),
        ({"max_concurrent_streams": 0}, ValueError, "max_concurrent_streams"),
        ({"max_frame_size": 10}, ValueError, "max_frame_size"),
        ({"idle_timeout": 0}, ValueError, "idle_timeout"),
        ({"max_pending_calls": 0}, ValueError, "max_pending_calls"),
        ({"tls": "cert.pem"}, TypeError, "SSLContext"),
        ({"interceptors": [object()]}, TypeError, "Interceptor"),
        ({"no_such_option": 1}, TypeError, "no_such_option"),
    ],
)
def test_options_it_refuses(options: dict[str, Any], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        Server("tcp://127.0.0.1:0", **options)


def test_a_tls_address_needs_a_certificate() -> None:
    with pytest.raises(ValueError, match="need a certificate"):
        Server("tls://127.0.0.1:0")
    Server("tls://127.0.0.1:0", tls=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))

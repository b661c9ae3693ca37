"""Keepalive and the ping policy (RFC §8.1), across processes.

A Pipe finds a SIGSTOPped server with no call in flight, and ends a silent stream on
it; a server drops a client that stops answering but keeps a healthy one; a client
pinging too often gets GOAWAY "too many pings" while one at the permitted rate does
not; PINGs do not keep an idle connection from the idle timeout. Short intervals
(0.2 s / 0.5 s) keep it quick; every wait is bounded by interval + timeout + SLACK.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import logging
import os
import signal
import socket
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from e2e_harness import (
    ServerProcess,
    call_body,
    e2e_api,
    generate_stubs,
    handshake,
    next_frame,
    wait_until,
)

from gopherpipe_runtime import Chan, Pipe, Server, StatusCode, UnavailableError, keepalive
from gopherpipe_runtime.pipe import CallOptions
from gopherpipe_runtime.wire.frames import FrameDecoder, FrameType, decode_goaway, encode_frame

INTERVAL = 0.2
TIMEOUT = 0.5
SLACK = 2.0
"""What a loaded 2-core machine may add to interval + timeout: the server's sweep
(a quarter of the shortest timeout here), thread wake-ups, a process scheduled late."""
FAST = {"keepalive_interval": INTERVAL, "keepalive_timeout": TIMEOUT}


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_stubs(tmp_path_factory.mktemp("keepalive"), "e2e_alltypes.py", "e2e_streams.py")


@pytest.fixture(scope="module")
def api(stub_dir: Path) -> Iterator[dict[str, Any]]:
    with e2e_api(stub_dir) as api:
        yield api


@pytest.fixture
def start_server(stub_dir: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a server process with these `Server` options; killed after the test."""
    started: list[ServerProcess] = []

    def start(**options: Any) -> ServerProcess:
        started.append(ServerProcess(stub_dir, options=json.dumps(options)))
        return started[-1]

    yield start
    for server in started:
        # Resumed first: a stopped process neither reads its stdin nor dies of SIGTERM.
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.proc.pid, signal.SIGCONT)
        server.proc.kill()
        server.proc.wait(10)


def frames_for(
    sock: socket.socket, decoder: FrameDecoder, limit: float
) -> tuple[list[tuple[float, Any]], bool]:
    """Every frame, with when it arrived, until the server closes (True) or `limit`
    seconds pass (False)."""
    received: list[tuple[float, Any]] = []
    deadline = time.monotonic() + limit
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received, True
        if not data:
            return received, True
        now = time.monotonic()
        received += [(now, frame) for frame in decoder.feed(data)]
    return received, False


def ping_pong(sock: socket.socket, decoder: FrameDecoder, token: bytes) -> Any:
    """PING; the server's answer to it (a PONG, or a GOAWAY if it refused the PING)."""
    sock.sendall(encode_frame(FrameType.PING, token))
    while True:
        data = sock.recv(65536)
        assert data, "the server closed the connection without a word"
        for frame in decoder.feed(data):
            if frame.type == FrameType.GOAWAY or (
                frame.type == FrameType.PONG and frame.payload == token
            ):
                return frame


# -- the client finds a stopped server ---------------------------------------------------


def test_keepalive_finds_a_stopped_server_with_no_call_in_flight(
    start_server: Callable[..., ServerProcess],
    api: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "gopherpipe.client")
    server = start_server()
    with api["AllTypesClient"].dial(server.address, **FAST) as client:
        assert client.add(1, 2) == 3
        pipe = client._gp_pipe
        connection = pipe._connection
        assert pipe.connected
        os.kill(server.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        wait_until(lambda: not pipe.connected, "keepalive declared the server dead", 30)
        took = time.monotonic() - stopped
        print(f"a stopped server found dead after {took:.2f}s")
        assert took <= INTERVAL + TIMEOUT + SLACK
        assert connection.closed_reason == "keepalive: no answer from the server within 0.5s"
        assert any(
            "keepalive: no answer from the server within 0.5s" in record.getMessage()
            and record.levelno == logging.WARNING
            for record in caplog.records
        )
        # Alive again: the next call reconnects, as after any lost connection.
        os.kill(server.proc.pid, signal.SIGCONT)
        assert client.add(2, 3) == 5
        assert pipe._connection is not connection and pipe.connected


def test_keepalive_ends_a_silent_stream_on_a_stopped_server(
    start_server: Callable[..., ServerProcess], api: dict[str, Any]
) -> None:
    server = start_server()
    with api["StreamsClient"].dial(server.address, **FAST) as client:
        source: Chan[Any] = Chan(4)
        output = client.echo("> ", source)
        source.send(api["Item"](1, "hello"))
        assert output.recv(timeout=10) == api["Item"](1, "> hello")  # the stream is open
        os.kill(server.proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        with pytest.raises(UnavailableError) as failure:
            output.recv(timeout=INTERVAL + TIMEOUT + SLACK + 10)
        took = time.monotonic() - stopped
        print(f"a silent stream on a stopped server ended after {took:.2f}s")
        assert took <= INTERVAL + TIMEOUT + SLACK
        assert "keepalive: no answer from the server within 0.5s" in failure.value.message
        assert source.closed  # its producer learns too


def test_a_server_that_answers_is_never_taken_for_dead(
    start_server: Callable[..., ServerProcess], api: dict[str, Any]
) -> None:
    """A Pipe pings a live server over many intervals and keeps its connection, idle
    and with a silent stream open (where its reader reads each PONG at once, so its
    PINGs come as often as its interval allows), and a server whose policy permits
    exactly that interval does not refuse them."""
    server = start_server(min_ping_interval=INTERVAL)
    with api["StreamsClient"].dial(server.address, **FAST) as client:
        assert client.count_up(0, 1).recv(timeout=10) == api["Item"](0, "item 0")
        pipe = client._gp_pipe
        connection = pipe._connection
        wait_until(lambda: connection._pings >= 3, "the idle Pipe pinged 3 times", 30)
        assert pipe.connected and not connection.too_many_pings
        source: Chan[Any] = Chan(4)
        output = client.echo("> ", source)
        pinged = connection._pings
        wait_until(lambda: connection._pings >= pinged + 6, "the Pipe pinged 6 times more", 30)
        source.send(api["Item"](1, "a"))
        assert output.recv(timeout=10) == api["Item"](1, "> a")
        source.close()
        assert list(output) == []
        assert pipe._connection is connection and pipe.connected
        assert not connection.too_many_pings


# -- the server finds a client that stopped answering ------------------------------------


def test_server_drops_a_client_that_stops_answering(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A raw client opens a bidi stream, then reads but never answers PING: the server
    pings it once the connection is silent for the interval, and drops it within the
    timeout after that with GOAWAY naming keepalive."""
    server = start_server(**FAST)
    sock, decoder = handshake(server.address)
    with sock:
        sock.sendall(encode_frame(FrameType.CALL_STREAM, call_body("Streams", "echo", ["> "]), 1))
        opened = time.monotonic()
        # GOAWAY within the bound, then a close after the linger (_LINGER, 1 s).
        received, closed = frames_for(sock, decoder, INTERVAL + TIMEOUT + SLACK + 1.0)
    types = [FrameType(f.type).name for _, f in received]
    assert closed, f"still open; got {types}"
    assert types == ["PING", "GOAWAY"], types
    took = received[-1][0] - opened
    print(f"a client that does not answer got GOAWAY after {took:.2f}s")
    assert took <= INTERVAL + TIMEOUT + SLACK
    last, code, message = decode_goaway(received[-1][1].payload)
    assert (last, code) == (1, StatusCode.UNAVAILABLE)
    assert message == "keepalive: no answer from the client within 0.5s"


def test_server_keeps_a_client_that_answers(
    start_server: Callable[..., ServerProcess], api: dict[str, Any]
) -> None:
    """A Pipe without keepalive of its own holds a silent stream open: the server pings
    it again and again, the Pipe's reader answers, and nothing is dropped."""
    server = start_server(**FAST)
    with api["StreamsClient"].dial(server.address, keepalive_interval=None) as client:
        source: Chan[Any] = Chan(4)
        output = client.echo("> ", source)
        source.send(api["Item"](1, "a"))
        assert output.recv(timeout=10) == api["Item"](1, "> a")
        connection = client._gp_pipe._connection
        pongs = [0]
        write_nowait = connection.writer.write_nowait

        def counting(data: bytes, last: bool = False) -> None:
            if data[:1] == bytes([FrameType.PONG]):
                pongs[0] += 1
            write_nowait(data, last)

        connection.writer.write_nowait = counting
        wait_until(lambda: pongs[0] >= 4, "the Pipe answered 4 of the server's PINGs", 30)
        source.send(api["Item"](2, "b"))
        assert output.recv(timeout=10) == api["Item"](2, "> b")
        assert client._gp_pipe._connection is connection and client._gp_pipe.connected
        source.close()
        assert list(output) == []


# -- the ping policy ---------------------------------------------------------------------


def test_a_client_pinging_too_often_gets_goaway(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(min_ping_interval=30.0)
    sock, decoder = handshake(server.address)
    with sock:
        sock.settimeout(10)
        # The first PING has nothing to be early against; the next two are strikes,
        # tolerated (MAX_PING_STRIKES = 2); the third strike is one too many.
        answers = [ping_pong(sock, decoder, b"ping %03d" % i) for i in range(4)]
        names = [FrameType(f.type).name for f in answers]
        assert names == ["PONG", "PONG", "PONG", "GOAWAY"], names
        last, code, message = decode_goaway(answers[-1].payload)
        assert (last, code, message) == (0, StatusCode.RESOURCE_EXHAUSTED, "too many pings")
        received, closed = frames_for(sock, decoder, 10)
        assert closed and received == []  # and closed at once (_fail_connection)


def test_a_client_pinging_at_the_permitted_rate_is_served(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(min_ping_interval=INTERVAL)
    sock, decoder = handshake(server.address)
    with sock:
        sock.settimeout(10)
        for i in range(6):
            if i:
                time.sleep(INTERVAL + 0.05)  # pacing the client, not a synchronisation
            answer = ping_pong(sock, decoder, b"ping %03d" % i)
            assert answer.type == FrameType.PONG, decode_goaway(answer.payload)
        sock.sendall(encode_frame(FrameType.CALL, call_body("AllTypes", "add", [2, 3]), 1))
        status = next_frame(sock, decoder, FrameType.STATUS)
        assert msgpack.unpackb(status.payload) == [0, "", 5]


def test_a_pipe_refused_for_its_ping_rate_slows_down(
    start_server: Callable[..., ServerProcess],
    api: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GOAWAY "too many pings" makes the Pipe double its interval for the connections
    to come (as gRPC's clients do), rather than be refused again and again."""
    caplog.set_level(logging.WARNING, "gopherpipe.client")
    server = start_server(min_ping_interval=30.0)
    with api["AllTypesClient"].dial(
        server.address, keepalive_interval=0.05, keepalive_timeout=0.1
    ) as client:
        assert client.add(1, 2) == 3
        pipe = client._gp_pipe
        wait_until(lambda: not pipe.connected, "the server refused the Pipe's PINGs", 30)
        assert pipe._connection.too_many_pings
        assert client.add(2, 3) == 5
        assert pipe._keepalive_interval == 0.1
        assert any("too many pings" in r.getMessage() for r in caplog.records)


def test_pings_do_not_keep_an_idle_connection_open(
    start_server: Callable[..., ServerProcess],
) -> None:
    """idle_timeout counts time without a call; PINGs (permitted ones) do not reset it."""
    server = start_server(idle_timeout=1.0, min_ping_interval=0.1)
    sock, decoder = handshake(server.address)
    with sock:
        sock.settimeout(10)
        began = time.monotonic()
        answer = None
        for i in range(100):
            if i:
                time.sleep(0.15)  # pacing the client, not a synchronisation
            answer = ping_pong(sock, decoder, b"ping %03d" % i)
            if answer.type == FrameType.GOAWAY:
                break
        assert answer is not None and answer.type == FrameType.GOAWAY
        took = time.monotonic() - began
        _, code, message = decode_goaway(answer.payload)
        assert (code, message) == (StatusCode.UNAVAILABLE, "idle timeout (1s without a call)")
        assert 1.0 <= took <= 1.0 + SLACK


# -- defaults and the timer thread -------------------------------------------------------


def test_the_defaults_agree() -> None:
    """A default client is never refused by a default server's ping policy, with room
    to spare for jitter; neither side's timeout trips on a briefly stalled peer."""
    pipe = inspect.signature(Pipe).parameters
    server = inspect.signature(Server).parameters
    assert pipe["keepalive_interval"].default >= 2 * server["min_ping_interval"].default
    assert server["keepalive_interval"].default >= server["min_ping_interval"].default
    assert pipe["keepalive_timeout"].default == server["keepalive_timeout"].default >= 10
    # The server's idle timeout is longer than the client's interval: a live idle
    # connection is checked before the server closes it for idleness.
    assert server["idle_timeout"].default > pipe["keepalive_interval"].default


def test_the_keepalive_thread_holds_no_connection_and_leaves_when_none_needs_it(
    start_server: Callable[..., ServerProcess], api: dict[str, Any]
) -> None:
    server = start_server()
    with api["AllTypesClient"].dial(server.address, keepalive_interval=None) as client:
        assert client.add(1, 2) == 3
        assert not keepalive.timer_running()  # keepalive off: no thread at all
    pipe = Pipe(server.address, **FAST)
    assert pipe.unary("AllTypes", "add", [1, 2], CallOptions()) == 3
    assert keepalive.timer_running()
    connection = weakref.ref(pipe._connection)
    del pipe  # dropped without close(): the timer must not keep its connection alive
    gc.collect()
    assert connection() is None
    wait_until(lambda: not keepalive.timer_running(), "the keepalive thread left", 10)
    with api["AllTypesClient"].dial(server.address) as client:
        assert client.add(1, 2) == 3
        assert keepalive.timer_running()
    wait_until(lambda: not keepalive.timer_running(), "the keepalive thread left", 10)


def test_a_forked_child_gets_a_timer_of_its_own(
    start_server: Callable[..., ServerProcess], api: dict[str, Any]
) -> None:
    """The parent's timer thread does not exist in a child (and its lock may be held
    there for ever); `keepalive.after_fork`, run at fork, gives the child a fresh one."""
    server = start_server()
    with api["AllTypesClient"].dial(server.address, **FAST) as client:
        assert client.add(1, 2) == 3
        assert keepalive.timer_running()
        pid = os.fork()
        if pid == 0:  # the child: report by exit status, never return into pytest
            status = 1
            try:
                fresh = not keepalive.timer_running()
                with Pipe(server.address, **FAST) as pipe:
                    assert pipe.unary("AllTypes", "add", [2, 2], CallOptions()) == 4
                    connection = pipe._connection
                    deadline = time.monotonic() + 20
                    while connection._pings < 2 and time.monotonic() < deadline:
                        time.sleep(0.01)
                    status = 0 if fresh and connection._pings >= 2 and pipe.connected else 2
            finally:
                os._exit(status)
        deadline = time.monotonic() + 30
        while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0:
            assert time.monotonic() < deadline, "the child did not finish"
            time.sleep(0.01)
        assert os.waitstatus_to_exitcode(waited[1]) == 0
        assert client.add(2, 3) == 5  # the parent's keepalive is unaffected
        assert client._gp_pipe.connected

"""Connection hardening against a server in its own process: descriptor exhaustion,
the connection limit, idle and stalled-frame timeouts, and freeing closed
connections without the cycle collector.

Bounds are on resources (CPU seconds, RSS, log lines, live objects), never on
wall-clock speed; every wait is a bounded poll of a condition.
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import json
import os
import select
import socket
import struct
import sys
import termios
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import pytest
from e2e_harness import (
    ServerProcess,
    generate_stubs,
    host_port,
    raw_handshake,
    read_frames,
    read_until_closed,
)

from gopherpipe_runtime import CallOptions, Pipe, Server, StatusCode, UnavailableError
from gopherpipe_runtime.wire.frames import (
    PREFACE,
    FrameDecoder,
    FrameType,
    decode_goaway,
    encode_frame,
)
from gopherpipe_runtime.wire.handshake import client_hello

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_stubs(tmp_path_factory.mktemp("hardening_stubs"), "e2e_alltypes.py")


@pytest.fixture(scope="module")
def stubs(stub_dir: Path) -> Iterator[ModuleType]:
    sys.path.insert(0, str(stub_dir))
    try:
        yield importlib.import_module("e2e_alltypes_client")
    finally:
        sys.path.remove(str(stub_dir))


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[IO[str]]:
    with open(tmp_path / "server.stderr", "w+") as file:
        yield file


def wait_until(condition: Callable[[], object], what: str, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def unacked(sock: socket.socket) -> int:
    """Bytes sent on `sock` that the peer's kernel has not acknowledged yet."""
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0])


def log_lines(file: IO[str]) -> list[str]:
    file.seek(0)
    return file.read().splitlines()


def hello_or_goaway(address: str) -> tuple[socket.socket, Any]:
    """Connect, send the preface and HELLO, return the first frame the server sends."""
    sock = socket.create_connection(host_port(address), timeout=10)
    sock.sendall(PREFACE + encode_frame(FrameType.HELLO, client_hello(("msgpack",), MiB)))
    frames = read_frames(sock, FrameDecoder(MiB))
    assert frames, "the server closed the connection without a word"
    return sock, frames[0]


def served(stubs: ModuleType, address: str, limit: float = 15.0) -> None:
    """A new client gets served within `limit` (connection attempts may fail meanwhile)."""
    deadline = time.monotonic() + limit
    while True:
        try:
            with stubs.AllTypesClient.dial(address) as client:
                assert client.add(2, 3) == 5
                return
        except UnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# -- 1. out of file descriptors ---------------------------------------------------------


def test_descriptor_exhaustion_backs_off_instead_of_spinning(
    stub_dir: Path, stubs: ModuleType, log_file: IO[str]
) -> None:
    """With max_connections set above RLIMIT_NOFILE, accept fails with EMFILE; the
    server must pause accepting rather than retry at once (which burnt a core and
    logged ~16,000 lines a second)."""
    server = ServerProcess(
        stub_dir,
        options=json.dumps({"max_connections": 100_000, "handshake_timeout": 120}),
        harness=json.dumps({"nofile": 128}),
        stderr=log_file,
    )
    flood: list[socket.socket] = []
    try:
        host, port = host_port(server.address)
        for _ in range(300):  # the listen backlog (512) completes them all
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex((host, port))
            flood.append(sock)
        wait_until(
            lambda: any("accept failed" in line for line in log_lines(log_file)),
            "the server runs out of descriptors",
        )
        before = cpu_seconds(server.proc.pid)
        time.sleep(3.0)  # the window measured, not a synchronisation
        used = cpu_seconds(server.proc.pid) - before
        print(f"server CPU over 3 s out of descriptors: {used:.2f} s")
        assert used < 0.5, f"{used:.2f} s of CPU in 3 s: accept is spinning"
        lines = log_lines(log_file)
        assert len([line for line in lines if "accept failed" in line]) == 1, lines[:10]
        assert len(lines) <= 3, lines[:10]
    finally:
        for sock in flood:
            sock.close()
    try:
        served(stubs, server.address)
        assert any("accepting again" in line for line in log_lines(log_file))
    finally:
        server.stop()


def test_connections_beyond_the_limit_are_refused_with_goaway(
    stub_dir: Path, stubs: ModuleType, log_file: IO[str]
) -> None:
    """The default max_connections sheds load before the descriptors run out."""
    server = ServerProcess(stub_dir, harness=json.dumps({"nofile": 128}), stderr=log_file)
    limit = 128 - 64  # default_max_connections(): the soft limit less max(64, 1/8)
    held: list[socket.socket] = []
    try:
        refused = 0
        for _ in range(limit + 36):
            sock, first = hello_or_goaway(server.address)
            if first.type == FrameType.HELLO:
                held.append(sock)
                continue
            with sock:
                assert first.type == FrameType.GOAWAY
                _, code, message = decode_goaway(first.payload)
                assert code == StatusCode.RESOURCE_EXHAUSTED
                assert message == f"server is at its limit of {limit} connections"
                assert read_until_closed(sock) == b""
            refused += 1
        assert (len(held), refused) == (limit, 36)

        # A real client learns why, and at once.
        expected = f"at its limit of {limit} connections"
        with Pipe(server.address) as pipe, pytest.raises(UnavailableError, match=expected):
            pipe.unary("AllTypes", "add", [1, 2], CallOptions())

        # At the limit, holding 64 idle connections costs nothing.
        before = cpu_seconds(server.proc.pid)
        time.sleep(2.0)  # the window measured, not a synchronisation
        used = cpu_seconds(server.proc.pid) - before
        print(f"server CPU over 2 s at the connection limit: {used:.2f} s")
        assert used < 0.3
        # One line when refusing starts, not one per refusal.
        refusing = [line for line in log_lines(log_file) if "refusing connections" in line]
        assert len(refusing) == 1
        # Held connections are still served.
        held[0].sendall(encode_frame(FrameType.PING, b"stillok!"))
        (pong,) = read_frames(held[0], FrameDecoder(MiB))
        assert pong.type == FrameType.PONG
    finally:
        for sock in held:
            sock.close()
    try:
        served(stubs, server.address)
    finally:
        server.stop()


# -- 2. idle connections -----------------------------------------------------------------


def test_idle_connection_gets_goaway_and_the_client_reconnects(
    stub_dir: Path, stubs: ModuleType
) -> None:
    server = ServerProcess(stub_dir, options=json.dumps({"idle_timeout": 0.5}))
    try:
        sock, decoder = raw_handshake(server.address)
        with sock:
            sock.settimeout(10)
            (goaway,) = read_frames(sock, decoder)
            assert goaway.type == FrameType.GOAWAY
            last, code, message = decode_goaway(goaway.payload)
            assert (last, code) == (0, StatusCode.UNAVAILABLE)
            assert message == "idle timeout (0.5s without a call)"
            assert read_until_closed(sock) == b""

        with stubs.AllTypesClient.dial(server.address) as client:
            peer = client.whoami()["peer"]
            # An open call is not idleness, however quiet the connection is meanwhile.
            assert client.sleep(1.5) is False
            connection = client.pipe._connection
            readable, _, _ = select.select([connection.sock], [], [], 10)
            assert readable, "the server did not end the idle connection"
            assert client.add(1, 2) == 3  # on a new connection, without an error
            assert client.pipe._connection is not connection
            assert client.whoami()["peer"] != peer
    finally:
        server.stop()


# -- 3. a frame that never completes -----------------------------------------------------


def test_stalled_frames_are_dropped_and_their_memory_freed(stub_dir: Path) -> None:
    frame_size = 4 * MiB  # the server's default max_frame_size
    count = 16
    server = ServerProcess(stub_dir, options=json.dumps({"frame_timeout": 5.0}))
    pid = server.proc.pid
    held: list[socket.socket] = []
    try:
        baseline = rss_bytes(pid)
        for _ in range(count):
            sock, _ = raw_handshake(server.address)
            sock.settimeout(20)
            # A CALL declared at the limit, all but its last byte sent.
            sock.sendall(struct.pack(">BII", FrameType.CALL, frame_size, 1))
            sock.sendall(bytes(frame_size - 5))
            held.append(sock)
        peak = 0

        def buffered() -> bool:
            nonlocal peak
            peak = max(peak, rss_bytes(pid))
            return all(unacked(sock) == 0 for sock in held)

        # Less than frame_timeout, or the first frames would be dropped before we look.
        wait_until(buffered, "the server's kernel has every byte sent", limit=4.0)
        wait_until(
            lambda: buffered() and peak - baseline >= count * (frame_size - MiB),
            "the server has read (nearly) all of them",
            limit=4.0,
        )
        bound = count * frame_size * 1.25 + 32 * MiB
        print(f"RSS growth holding {count} partial 4 MiB frames: {(peak - baseline) / MiB:.1f} MiB")
        assert peak - baseline <= bound

        for sock in held:
            (goaway,) = read_frames(sock, FrameDecoder(MiB))
            assert goaway.type == FrameType.GOAWAY
            _, code, message = decode_goaway(goaway.payload)
            assert code == StatusCode.UNAVAILABLE
            assert message == "frame not complete 5s after its first byte (frame_timeout)"
            assert read_until_closed(sock) == b""

        # malloc may keep some freed memory for reuse; most must go back.
        slack = 16 * MiB
        wait_until(lambda: rss_bytes(pid) - baseline <= slack, "the buffers are freed", 10.0)
        print(f"RSS after the timeout: {(rss_bytes(pid) - baseline) / MiB:+.1f} MiB")
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_frame_clock_restarts_with_each_frame(stub_dir: Path) -> None:
    """A busy peer whose reads always end mid-frame is not stalled: the frame timeout
    measures one frame, not how long the buffer has been non-empty."""
    # PINGs every 0.2 s are the probe here: the ping policy (min_ping_interval) is off.
    options = {"frame_timeout": 0.5, "min_ping_interval": None}
    server = ServerProcess(stub_dir, options=json.dumps(options))
    try:
        sock, decoder = raw_handshake(server.address)
        with sock:
            sock.settimeout(10)
            ping = encode_frame(FrameType.PING, b"8 bytes!")
            half = len(ping) // 2
            sock.sendall(ping[:half])
            pongs = 0
            for _ in range(12):  # 2.4 s with some frame always incomplete
                time.sleep(0.2)  # pacing the peer, not a synchronisation
                sock.sendall(ping[half:] + ping[:half])
                for frame in read_frames(sock, decoder):
                    assert frame.type == FrameType.PONG, decode_goaway(frame.payload)
                    pongs += 1
            assert pongs == 12
    finally:
        server.stop()


# -- 4. closed connections freed by reference counting ------------------------------------


def test_closed_connections_are_freed_without_the_cycle_collector(
    stub_dir: Path, stubs: ModuleType
) -> None:
    server = ServerProcess(stub_dir, harness=json.dumps({"gc": False, "debug": True}))
    pid = server.proc.pid
    try:
        with Pipe(server.address) as probe:

            def stats() -> dict[str, Any]:
                result: dict[str, Any] = probe.unary("Debug", "stats", [], CallOptions())
                return result

            def round_of(clients: int) -> None:
                opened = []
                for i in range(clients):
                    client = stubs.AllTypesClient.dial(server.address)
                    opened.append(client)
                    if i % 10 == 0:  # a large request
                        assert client.echo_scalars(i, 0.5, "s", b"r" * MiB, True)[0] == i
                    elif i % 10 == 1:  # a large result
                        assert len(client.blob(MiB)) == MiB
                    else:
                        assert client.add(i, 1) == i + 1
                for client in opened:
                    client.close()
                # Only the probe's connection may remain, open and alive.
                wait_until(
                    lambda: stats()["open_connections"] == 1,
                    "the server closes the clients' connections",
                )

            round_of(20)  # warm up: threads, allocator arenas, imports
            assert stats()["alive_connections"] == 1
            baseline = rss_bytes(pid)
            round_of(200)
            after = stats()
            assert after["gc_enabled"] is False
            assert after["alive_connections"] == 1, after
            grown = rss_bytes(pid) - baseline
            print(f"RSS after 200 closed connections: {grown / MiB:+.1f} MiB")
            assert grown <= 24 * MiB
    finally:
        server.stop()


def test_close_frees_the_connection_by_reference_counting() -> None:
    """Unit-level guard: with the cycle collector off, a connection the peer closed
    is gone as soon as the server has closed it."""
    server = Server("tcp://127.0.0.1:0", max_workers=2)
    gc.disable()
    try:
        server.start()
        sock, decoder = raw_handshake(server.addresses[0])
        sock.sendall(encode_frame(FrameType.PING, b"12345678"))
        assert read_frames(sock, decoder)[0].type == FrameType.PONG
        (conn,) = list(server._connections)
        ref = weakref.ref(conn)
        del conn
        sock.close()
        wait_until(lambda: ref() is None, "the closed connection is freed", 10.0)
        assert not server._connections
    finally:
        gc.enable()
        server.stop()

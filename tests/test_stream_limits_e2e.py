"""What a stream can cost a server, end to end against a server in another process:
memory bounded in bytes, open streams holding no handler thread, and many streams
sharing one connection window without stalling."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import (
    ServerProcess,
    generate_stubs,
    raw_handshake,
    rss_kib,
    thread_count,
)

from gopherpipe_runtime.wire.codec import CODECS
from gopherpipe_runtime.wire.envelope import encode_call
from gopherpipe_runtime.wire.frames import FrameType, encode_stream_frame

MIB = 1024 * 1024
MAX_WORKERS = 8


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_stubs(tmp_path_factory.mktemp("limits"), "e2e_alltypes.py", "e2e_streams.py")


@pytest.fixture(scope="module")
def api(stub_dir: Path) -> Iterator[tuple[Any, Any]]:
    sys.path.insert(0, str(stub_dir))
    try:
        yield importlib.import_module("e2e_streams"), importlib.import_module("e2e_streams_client")
    finally:
        sys.path.remove(str(stub_dir))


@pytest.fixture(scope="module")
def server(stub_dir: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(stub_dir, options=f'{{"max_workers": {MAX_WORKERS}}}')
    yield process
    process.stop()


def test_a_client_stream_of_large_items_costs_the_server_one_byte_window(
    api: Any, server: ServerProcess
) -> None:
    """256 items of 3 MiB to a handler that reads one and waits: before byte windows the
    server buffered the whole window of items (1,024 of them, about 1 GB here). Now it
    may hold stream_window_bytes (1 MiB) + one frame (3 MiB) of them, so the client's
    generator is pulled at most a few items ahead, and the server grows by a few of
    those items: asserted under 48 MiB (3 MiB read buffer + item being handled + the
    window's 4 MiB, each maybe copied once while decoding, and allocator slack)."""
    contract, stubs = api
    produced = 0

    def large_items() -> Iterator[Any]:
        nonlocal produced
        for seq in range(256):
            produced += 1
            yield contract.Item(seq, "x" * (3 * MIB))

    baseline = rss_kib(server.proc.pid)
    with stubs.StreamsClient.dial(server.address) as client:
        results: list[Any] = []
        sender = threading.Thread(
            target=lambda: results.append(client.drain_slowly("large", large_items()))
        )
        sender.start()
        deadline = time.monotonic() + 10
        while client.stats("large")["consumed"] < 1:
            assert time.monotonic() < deadline, "the handler never got the first item"
            time.sleep(0.01)
        # Watch for a while: without byte windows the client would push hundreds of
        # items (and the server's memory up by ~1 GB) within this time.
        most_rss = baseline
        for _ in range(100):
            most_rss = max(most_rss, rss_kib(server.proc.pid))
            time.sleep(0.02)
        # Consumed 1; buffered at most 1 (1 MiB window, the frame may overshoot); the
        # sender holds 1 waiting for byte credit; the generator is one ahead of that.
        assert produced <= 4, f"{produced} items pulled: byte credit does not hold the client"
        growth_mib = (most_rss - baseline) / 1024
        assert growth_mib < 48, f"server grew by {growth_mib:.0f} MiB"
        client.release("large")
        sender.join(60)
        assert results == [256]


def test_unread_streams_hold_no_handler_thread_and_unary_calls_are_served(
    api: Any, server: ServerProcess
) -> None:
    """A raw peer opens five times max_workers endless server streams and never reads a
    byte. Every stream parks on credit (or on the peer's full socket) without a
    thread: another client's unary calls are answered, each within 2 s, and the
    server's thread count stays within max_workers + 4 (the pool and its spare
    poller, the stream-sending thread, the main thread and the serve script's stdin
    watcher), plus the producer threads the test service itself starts (one per
    endless stream): nothing per open stream from the runtime."""
    _, stubs = api
    streams = 5 * MAX_WORKERS
    codec = CODECS["msgpack"]
    sock, _ = raw_handshake(server.address)
    try:
        calls = b"".join(
            encode_stream_frame(
                FrameType.CALL,
                2 * i + 1,
                encode_call(codec, "Streams", "endless", None, {}, [f"unread{i}", 64]),
            )
            for i in range(streams)
        )
        sock.sendall(calls)
        with stubs.StreamsClient.dial(server.address) as client:
            patient = client.with_options(timeout=2.0)
            deadline = time.monotonic() + 20
            while (
                sum(patient.stats(f"unread{i}").get("produced", 0) > 0 for i in range(streams))
                < streams
            ):
                assert time.monotonic() < deadline, "not every stream started"
            for _ in range(20):
                assert patient.stats("unread0")["produced"] > 0  # answered within 2 s
            user_threads = streams  # one producer thread per endless stream (the service's)
            assert thread_count(server.proc.pid) <= MAX_WORKERS + 4 + user_threads
    finally:
        sock.close()
    with stubs.StreamsClient.dial(server.address) as client:
        deadline = time.monotonic() + 20
        while not all(client.stats(f"unread{i}")["stopped"] for i in range(streams)):
            assert time.monotonic() < deadline, "the producers were not stopped"
            time.sleep(0.02)


def test_many_streams_share_a_small_connection_window_without_stalling(
    api: Any, server: ServerProcess
) -> None:
    """Twenty streams read at once, each far under half of its own windows (so no
    stream's own credit would ever fall due), together far over the connection
    window: they complete because the receiver returns every stream's credit once
    half of the connection window is due."""
    _, stubs = api
    with stubs.StreamsClient.dial(
        server.address,
        stream_window=1 << 20,
        stream_window_bytes=MIB,
        connection_window_bytes=16 * 1024,
    ) as client:
        patient = client.with_options(timeout=30.0)
        outputs = [patient.count_up(0, 2000) for _ in range(20)]
        received: list[list[int]] = [[] for _ in outputs]
        readers = [
            threading.Thread(target=lambda o=o, r=r: r.extend(item.seq for item in o))
            for o, r in zip(outputs, received, strict=True)
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(40)
        assert received == [list(range(2000))] * 20

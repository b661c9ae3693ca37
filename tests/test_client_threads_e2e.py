"""A client's open streams hold no thread each, over real sockets to a server process.

One `Pipe` with a thousand client-stream and bidi calls open, each fed by a `Chan`:
the client process's thread count stays within a small constant of what it was
before; so does it while hundreds of stream deadlines fire. The waits are bounded
and none uses a sleep to order events.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import ServerProcess, generate_stubs, thread_count

from gopherpipe_runtime import Chan, DeadlineExceededError
from gopherpipe_runtime.pipe import CallOptions

STREAMS = 1000
RUNTIME_THREADS = 3
"""What a Pipe may add however many streams it has open: its reader thread, its step
thread, and a thread finishing a write the socket did not take at once."""


def wait_until(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_stubs(
        tmp_path_factory.mktemp("client_thread_stubs"), "e2e_alltypes.py", "e2e_streams.py"
    )


@pytest.fixture(scope="module")
def api(stub_dir: Path) -> Iterator[tuple[Any, Any]]:
    sys.path.insert(0, str(stub_dir))
    try:
        yield importlib.import_module("e2e_streams"), importlib.import_module("e2e_streams_client")
    finally:
        sys.path.remove(str(stub_dir))


@pytest.fixture(scope="module")
def server(stub_dir: Path) -> Iterator[ServerProcess]:
    # A client-stream handler holds its server thread while it iterates `incoming`
    # (as it must), so the server gets a thread for each of the test's `total` calls.
    process = ServerProcess(stub_dir, options=f'{{"max_workers": {STREAMS + 64}}}')
    yield process
    process.stop()


def test_a_thousand_open_streams_hold_no_client_thread_each(
    api: Any, server: ServerProcess
) -> None:
    contract, stubs = api
    threads_before = thread_count(os.getpid())
    with stubs.StreamsClient.dial(server.address) as client:
        pipe, service = client._gp_pipe, client._gp_service_name
        bidi_sources: list[Chan[Any]] = []
        outputs: list[Chan[Any]] = []
        uploads: list[tuple[Chan[Any], Any]] = []
        for i in range(STREAMS // 2):
            source: Chan[Any] = Chan(4)
            bidi_sources.append(source)
            outputs.append(client.echo(f"{i}:", source))
            upload: Chan[Any] = Chan(4)
            stream = pipe.stream(
                service,
                "total",
                [],
                CallOptions(),
                source=upload,
                encode_item=stubs._Streams_total_item_out,
            )
            uploads.append((upload, stream))
        # Every stream is live: an item goes each way on every bidi stream, and every
        # client stream has one item sent (its sender parked on the source again).
        for i, (source, output) in enumerate(zip(bidi_sources, outputs, strict=True)):
            source.send(contract.Item(i, "ping"))
            assert output.recv(timeout=30) == contract.Item(i, f"{i}:ping")
        for upload, _ in uploads:
            upload.send(contract.Item(0, "x"))
        open_threads = thread_count(os.getpid())
        assert open_threads <= threads_before + RUNTIME_THREADS, (
            f"{STREAMS} open streams took the client from {threads_before} to "
            f"{open_threads} threads"
        )
        # Half-close them all: bidi outputs end after their echoes, totals come back.
        for upload, _ in uploads:
            upload.close()
        for source in bidi_sources:
            source.close()
        for output in outputs:
            assert list(output) == []
        for _, stream in uploads:
            assert stream.result() == [1, 1]
        assert thread_count(os.getpid()) <= threads_before + RUNTIME_THREADS
    wait_until(lambda: thread_count(os.getpid()) <= threads_before, "the client's threads are gone")


def test_many_stream_deadlines_fire_without_a_thread_each(api: Any, server: ServerProcess) -> None:
    contract, stubs = api
    threads_before = thread_count(os.getpid())
    with stubs.StreamsClient.dial(server.address) as client:
        sources: list[Chan[Any]] = [Chan() for _ in range(300)]
        # Deadlines in a spread, opened latest first: each new stream's deadline is the
        # earliest, so the reader's wait is cut short by every one of them.
        outputs = [
            client.with_options(timeout=1.0 + (len(sources) - i) * 0.002).echo("", source)
            for i, source in enumerate(sources)
        ]
        assert thread_count(os.getpid()) <= threads_before + RUNTIME_THREADS
        started = time.monotonic()
        for source, output in zip(sources, outputs, strict=True):
            with pytest.raises(DeadlineExceededError):
                output.recv(timeout=30)
            # A source whose stream passed its deadline is closed: its producer learns.
            assert source.closed
        elapsed = time.monotonic() - started
        assert elapsed < 15, f"300 deadlines of at most 1.6 s took {elapsed:.1f} s to fire"
        assert thread_count(os.getpid()) <= threads_before + RUNTIME_THREADS
        # The connection is fine after it all.
        source = Chan[Any](1)
        output = client.echo("ok ", source)
        source.send(contract.Item(1, "done"))
        source.close()
        assert list(output) == [contract.Item(1, "ok done")]
    wait_until(lambda: thread_count(os.getpid()) <= threads_before, "the client's threads are gone")


def test_a_generator_source_holds_a_thread_only_while_it_produces(
    api: Any, server: ServerProcess
) -> None:
    contract, stubs = api
    gate = threading.Event()
    produced: list[int] = []

    def items() -> Iterator[Any]:
        for i in range(3):
            produced.append(i)
            yield contract.Item(i, "g")
        gate.wait(30)  # user code that blocks: it has a thread of its own meanwhile
        yield contract.Item(3, "g")

    threads_before = threading.active_count()
    with stubs.StreamsClient.dial(server.address) as client:
        output = client.echo("", items())
        got = [output.recv(timeout=30) for _ in range(3)]
        assert [item.seq for item in got] == [0, 1, 2]
        assert threading.active_count() > threads_before  # the generator's, blocked
        gate.set()
        assert [item.seq for item in output] == [3]
    wait_until(lambda: threading.active_count() <= threads_before, "the client's threads are gone")

"""gopherpipe_runtime.aio.Server in a process of its own (tests/e2e/aio_lab_serve.py),
called by the threaded client from this one: the four shapes, status codes, deadlines
and client cancels reaching the handler, flow control holding the producer back, a
killed client's handlers cancelled, graceful stop on SIGTERM, every transport."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aio_lab import LabClient
from e2e_harness import rss_kib, same_checkout_env, thread_count

from gopherpipe_runtime import CancelToken, RpcError, StatusCode, health

TESTS = Path(__file__).resolve().parent
SERVE = TESTS / "e2e" / "aio_lab_serve.py"
CERTS = TESTS.parent / "examples" / "certs"


class AioServerProcess:
    def __init__(
        self, address: str = "tcp://127.0.0.1:0", options: Any = None, harness: Any = None
    ) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(SERVE),
                address,
                json.dumps(options or {}),
                json.dumps(harness or {}),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=same_checkout_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.kill()
            raise RuntimeError("aio server process did not start")
        self.addresses = line.split()
        self.address = self.addresses[0]

    def client(self, **options: Any) -> LabClient:
        return LabClient.dial(self.address, **options)

    def stats(self) -> dict[str, Any]:
        with self.client() as client:
            return client.stats()

    def wait_stats(self, key: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats[key] or time.monotonic() > deadline:
                return stats
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def server() -> Iterator[AioServerProcess]:
    process = AioServerProcess()
    yield process
    process.stop()


def test_the_four_shapes(server: AioServerProcess) -> None:
    with server.client() as client:
        assert client.echo("across") == "across"
        assert list(client.stream("count", 5000)) == list(range(5000))
        assert client.total(iter(range(5000))) == sum(range(5000))
        assert list(client.double(5, iter(range(5000)))) == [5 * i for i in range(5000)]


def test_status_codes(server: AioServerProcess) -> None:
    with server.client() as client:
        for code in (StatusCode.NOT_FOUND, StatusCode.FAILED_PRECONDITION):
            with pytest.raises(RpcError) as caught:
                client.fail(int(code), "why")
            assert (caught.value.code, caught.value.message) == (code, "why")
        with pytest.raises(RpcError) as caught:
            client.fail(0, "bug")
        assert caught.value.code == StatusCode.INTERNAL
        with pytest.raises(RpcError) as caught:
            client.wrong()
        assert caught.value.code == StatusCode.INTERNAL


def test_a_deadline_reaches_the_handler(server: AioServerProcess) -> None:
    with server.client() as client, pytest.raises(RpcError) as caught:
        client.with_options(timeout=0.3).sleep(30)
    assert caught.value.code == StatusCode.DEADLINE_EXCEEDED
    stats = server.wait_stats("cancelled")
    assert stats["cancelled"] and not stats["finished"]


def test_a_client_cancel_reaches_the_handler(server: AioServerProcess) -> None:
    token = CancelToken()
    codes: list[StatusCode] = []

    def call() -> None:
        with server.client() as client:
            try:
                client.with_options(cancel=token).sleep(30)
            except RpcError as exc:
                codes.append(exc.code)

    caller = threading.Thread(target=call)
    caller.start()
    assert server.wait_stats("started")["started"]
    token.cancel()
    caller.join(5)
    assert codes == [StatusCode.CANCELLED]
    assert server.wait_stats("cancelled")["cancelled"]


def test_a_slow_reader_holds_the_producer_to_its_window(server: AioServerProcess) -> None:
    window = 32
    with server.client(stream_window=window) as client:
        items = client.stream("count", 50_000)
        assert items.recv(timeout=5) == 0
        time.sleep(0.5)  # the producer had every chance to run ahead
        produced = server.stats()["produced"]
        assert window <= produced <= 2 * window + 1, produced
        rest = list(items)
    assert rest == list(range(1, 50_000))
    assert server.stats()["produced"] == 50_000


KILLED_CLIENT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from aio_lab import LabClient
    client = LabClient.dial(sys.argv[1])
    items = client.stream("count", 10**9)
    items.recv(timeout=5)
    print("reading", flush=True)
    sys.stdin.read()  # never reads more: the test kills this process
    """)


def test_a_killed_client_cancels_its_handlers(server: AioServerProcess) -> None:
    client = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, server.address, str(TESTS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=same_checkout_env(),
    )
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "reading"
        client.send_signal(signal.SIGKILL)
        client.wait(5)
    finally:
        if client.poll() is None:
            client.kill()
    stats = server.wait_stats("stream_closed")
    assert stats["stream_closed"] and stats["cancelled"]
    with server.client() as other:
        assert other.echo("unharmed") == "unharmed"


def test_sigterm_drains_then_exits_cleanly() -> None:
    process = AioServerProcess(harness={"grace": 10})
    try:
        results: list[object] = []

        def call() -> None:
            with process.client() as client:
                try:
                    results.append(client.sleep(0.7))
                except RpcError as exc:
                    results.append(exc.code)

        caller = threading.Thread(target=call)
        caller.start()
        assert process.wait_stats("started")["started"]
        process.proc.send_signal(signal.SIGTERM)
        # Health probes still get an answer while it drains, and it says NOT_SERVING.
        assert health.check(process.address, timeout=5) == health.NOT_SERVING
        caller.join(10)
        assert results == ["slept"]
        assert process.proc.wait(10) == 0
    finally:
        process.stop()


def test_a_sigterm_with_no_grace_left_ends_the_calls_with_unavailable() -> None:
    process = AioServerProcess(harness={"grace": 0.2})
    try:
        codes: list[object] = []

        def call() -> None:
            with process.client() as client:
                try:
                    codes.append(client.sleep(30))
                except RpcError as exc:
                    codes.append(exc.code)

        caller = threading.Thread(target=call)
        caller.start()
        assert process.wait_stats("started")["started"]
        process.proc.send_signal(signal.SIGTERM)
        caller.join(10)
        assert codes == [StatusCode.UNAVAILABLE]
        assert process.proc.wait(10) == 0
    finally:
        process.stop()


@pytest.mark.parametrize("scheme", ["unix", "tls", "ws", "wss"])
def test_across_processes_over(scheme: str) -> None:
    from gopherpipe_runtime.transport import tls as tls_transport

    with tempfile.TemporaryDirectory() as scratch:
        address = {
            "unix": f"unix://{scratch}/lab.sock",
            "tls": "tls://127.0.0.1:0",
            "ws": "ws://127.0.0.1:0/lab",
            "wss": "wss://127.0.0.1:0/lab",
        }[scheme]
        harness = {"tls": {"cert": str(CERTS / "server.pem"), "key": str(CERTS / "server.key")}}
        process = AioServerProcess(address, harness=harness)
        try:
            tls = tls_transport.client_context(str(CERTS / "ca.pem"))
            with process.client(tls=tls) as client:
                assert client.whoami().split("|")[0] == scheme
                assert list(client.stream("count", 1000)) == list(range(1000))
                assert client.total(iter(range(1000))) == sum(range(1000))
                assert list(client.double(2, iter(range(1000)))) == [2 * i for i in range(1000)]
        finally:
            process.stop()


def test_open_streams_cost_a_few_kib_each(server: AioServerProcess) -> None:
    """An open stream with nothing to send holds a task and its state, no thread: about
    5.5 KiB of server RSS each (measured: 5,000 streams, 5,434 bytes each)."""
    count = 1000
    with server.client() as client:
        warm = [client.stream("idle", 1) for _ in range(100)]
        for stream in warm:
            stream.recv(timeout=10)
        time.sleep(0.3)
        before = rss_kib(server.proc.pid)
        streams = [client.stream("idle", 1) for _ in range(count)]
        for stream in streams:
            stream.recv(timeout=30)
        time.sleep(0.3)
        per_stream = (rss_kib(server.proc.pid) - before) * 1024 / count
        assert thread_count(server.proc.pid) <= 4  # the loop, the executor's at most
        for stream in warm + streams:
            stream.close()
        assert client.echo("x") == "x"
    assert per_stream < 12 * 1024, per_stream


def test_sigint_drains_as_sigterm_does() -> None:
    process = AioServerProcess(harness={"grace": 5})
    try:
        with process.client() as client:
            assert client.echo("x") == "x"
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(10) == 0  # a drain and a clean exit, no KeyboardInterrupt
    finally:
        process.stop()

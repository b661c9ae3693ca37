"""The asyncio Pipe against the threaded Server in ANOTHER process: the four shapes,
a deadline, cancellation and flow control seen from the server's side, and a killed
server: every open call and stream ends with UNAVAILABLE, never a hang."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import same_checkout_env

from gopherpipe_runtime import DeadlineExceededError, RpcError, StatusCode, UnavailableError
from gopherpipe_runtime.aio import Pipe
from gopherpipe_runtime.pipe import CallOptions

SERVICE = Path(__file__).resolve().parent / "aio_pipe_service.py"
NONE = CallOptions()


def same(value: Any) -> Any:
    return value


class ServiceProcess:
    def __init__(self, name: str = "remote") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVICE), "tcp://127.0.0.1:0", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=same_checkout_env(),
        )
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            self.proc.kill()
            raise RuntimeError("the service process did not start")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def remote() -> Iterator[ServiceProcess]:
    process = ServiceProcess()
    yield process
    process.stop()


async def until(condition: Any, limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while not await condition():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_four_shapes_deadline_cancellation_and_flow_control(remote: ServiceProcess) -> None:
    pipe = Pipe(remote.address, stream_window=16)

    async def gen(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def main() -> None:
        assert await pipe.unary("T", "who", [], NONE) == "remote"
        assert [
            x async for x in pipe.stream("T", "count", [100, "e2e"], NONE, decode_item=same)
        ] == list(range(100))
        assert (
            await pipe.stream("T", "total", [], NONE, source=gen(100), encode_item=same).result()
            == 4950
        )
        bidi = pipe.stream(
            "T", "double", [], NONE, source=gen(5), encode_item=same, decode_item=same
        )
        assert [x async for x in bidi] == [0, 2, 4, 6, 8]
        # A deadline.
        with pytest.raises(DeadlineExceededError):
            await pipe.unary("T", "hold", ["e2e-deadline", 10.0], CallOptions(timeout=0.2))
        # The awaiting task cancelled: the handler sees it (CANCEL; no deadline was sent).
        task = asyncio.create_task(pipe.unary("T", "hold", ["e2e-cancel", 10.0], NONE))

        async def started() -> bool:
            return "e2e-cancel" in await pipe.unary("T", "started", [], NONE)

        await until(started)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def cancelled_seen() -> bool:
            return "e2e-cancel" in await pipe.unary("T", "cancelled", [], NONE)

        await until(cancelled_seen)
        # A slow consumer suspends the producer in the other process.
        stream = pipe.stream("T", "count", [-1, "e2e-slow"], NONE, decode_item=same)
        assert await stream.__anext__() == 0
        await asyncio.sleep(0.5)
        held = await pipe.unary("T", "produced", ["e2e-slow"], NONE)
        await asyncio.sleep(0.3)
        assert await pipe.unary("T", "produced", ["e2e-slow"], NONE) == held
        assert held <= 1 + 16 + 128, held
        await stream.aclose()
        await pipe.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_killed_server_ends_every_call_and_stream_with_unavailable() -> None:
    remote = ServiceProcess()
    pipe = Pipe(remote.address)

    async def endless() -> AsyncIterator[int]:
        while True:
            yield 1
            await asyncio.sleep(0.01)

    async def main() -> None:
        assert await pipe.unary("T", "who", [], NONE) == "remote"
        unary = asyncio.create_task(pipe.unary("T", "hold", ["killed", 30.0], NONE))
        server_stream = pipe.stream("T", "count", [-1, "killed"], NONE, decode_item=same)
        assert await server_stream.__anext__() == 0
        client_stream = pipe.stream("T", "total", [], NONE, source=endless(), encode_item=same)
        bidi = pipe.stream(
            "T", "double", [], NONE, source=endless(), encode_item=same, decode_item=same
        )
        assert await bidi.__anext__() == 2
        await asyncio.sleep(0.1)
        remote.kill()
        with pytest.raises(UnavailableError):
            await unary
        for stream in (server_stream, bidi):
            with pytest.raises(UnavailableError):
                async for _ in stream:
                    pass
        with pytest.raises(UnavailableError):
            await client_stream.result()
        assert pipe.open_streams == 0 and pipe.open_calls == 0
        # New calls fail at once: nobody listens there any more.
        with pytest.raises(RpcError) as caught:
            await pipe.unary("T", "who", [], CallOptions(timeout=5))
        assert caught.value.code == StatusCode.UNAVAILABLE
        await pipe.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        remote.stop()


def test_a_pipe_used_on_both_sides_of_fork(remote: ServiceProcess) -> None:
    """A child forked while the parent's loop runs calls through the Pipe it inherited,
    on a connection (and a loop) of its own; the parent's connection is untouched."""
    pipe = Pipe(remote.address)

    async def main() -> None:
        assert await pipe.unary("T", "echo", ["parent"], NONE) == "parent"
        before = pipe._endpoints[0].connection
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                # Not pytest-timeout's handler (inherited): the default, which ends it.
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                signal.alarm(30)  # a stuck child ends itself
                answer = asyncio.run(pipe.unary("T", "echo", ["child"], NONE))
                os.write(write_end, str(answer).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        with os.fdopen(read_end, "rb") as reader:
            report = reader.read().decode()
        assert os.waitstatus_to_exitcode(status) == 0 and report == "child"
        assert await pipe.unary("T", "echo", ["parent again"], NONE) == "parent again"
        assert pipe._endpoints[0].connection is before
        await pipe.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_balancing_moves_off_a_killed_server() -> None:
    first, second = ServiceProcess("first"), ServiceProcess("second")
    pipe = Pipe(f"{first.address},{second.address}")

    async def main() -> None:
        assert {await pipe.unary("T", "who", [], NONE) for _ in range(4)} == {"first", "second"}
        first.kill()
        # Idempotent: a call that went out on the dead connection before its EOF was
        # read is retried (on the other server) rather than failed.
        names = {await pipe.unary("T", "who", [], NONE, idempotent=True) for _ in range(6)}
        assert names == {"second"}
        await pipe.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        first.stop()
        second.stop()


def test_the_generated_asyncio_chat_client_with_the_threaded_server() -> None:
    """examples/chat/client_aio.py (the generated XAsyncClient, `async for`, an aio
    Chan as its stream) in a room of the threaded server.py, with a threaded client."""
    examples = str(Path(__file__).resolve().parent.parent / "examples")
    sys.path.insert(0, examples)
    try:
        run_demo = importlib.import_module("run_demo")
    finally:
        sys.path.remove(examples)
    out = run_demo.run_chat("tls", server="server.py", ann_script="client_aio.py")
    assert "ann joined General" in out
    assert "[ann hears] bob: Hello Gophers!" in out
    assert "[bob hears] ann: Hi bob, ann here" in out
    assert "ann: the room's history has 3 messages" in out

"""gopherpipe_runtime.aio.Server with the asyncio client (aio.Pipe under an
`AsyncClientBase`, as a generated ``XAsyncClient``), both on one event loop: the four
shapes, a deadline and a cancelled task reaching the handler, a stream left early
closing the producer, and 1,000 cancelled calls leaving no task and no open call on
the server."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aio_lab import Lab, Record, service_def

from gopherpipe_runtime import RpcError, StatusCode
from gopherpipe_runtime.aio import AsyncClientBase, Server


def _same(value: Any) -> Any:
    return value


class LabAsyncClient(AsyncClientBase):
    _gp_service_name = "Lab"

    async def echo(self, text: str) -> str:
        return await self._gp_unary("echo", [text], _same)

    async def sleep(self, seconds: float) -> str:
        return await self._gp_unary("sleep", [seconds], _same)

    def stream(self, method: str, n: int) -> AsyncIterator[int]:
        return self._gp_server_stream(method, [n], _same)

    async def total(self, items: Any) -> int:
        return await self._gp_client_stream("total", [], items, _same, _same)

    def double(self, factor: int, items: Any) -> AsyncIterator[int]:
        return self._gp_bidi("double", [factor], items, _same, _same)


def serve(test: Callable[[Server, Record, LabAsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        record = Record()
        async with Server("tcp://127.0.0.1:0") as server:
            server.add_service(service_def(Lab(record)))
            async with LabAsyncClient.dial(server.addresses[0]) as client:
                await test(server, record, client)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_the_four_shapes() -> None:
    async def test(server: Server, record: Record, client: LabAsyncClient) -> None:
        assert await client.echo("hi") == "hi"
        assert [i async for i in client.stream("ticking", 3000)] == list(range(3000))
        assert await client.total(range(3000)) == sum(range(3000))

        async def numbers() -> AsyncIterator[int]:
            for i in range(3000):
                yield i

        assert [i async for i in client.double(2, numbers())] == [2 * i for i in range(3000)]

    serve(test)


def test_a_deadline_and_a_cancelled_task_reach_the_handler() -> None:
    async def test(server: Server, record: Record, client: LabAsyncClient) -> None:
        with pytest.raises(RpcError) as caught:
            await client.with_options(timeout=0.2).sleep(30)
        assert caught.value.code == StatusCode.DEADLINE_EXCEEDED
        await asyncio.to_thread(record.cancelled.wait, 5)
        assert record.cancelled.is_set()
        record.reset()
        call = asyncio.ensure_future(client.sleep(30))
        await asyncio.to_thread(record.started.wait, 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.to_thread(record.cancelled.wait, 5)
        assert record.cancelled.is_set()

    serve(test)


def test_leaving_a_stream_early_closes_the_producer() -> None:
    async def test(server: Server, record: Record, client: LabAsyncClient) -> None:
        stream = client.stream("count", 10**9)
        async for item in stream:
            if item == 5:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.to_thread(record.stream_closed.wait, 5)
        assert record.stream_closed.is_set() and record.cancelled.is_set()

    serve(test)


def test_a_thousand_cancellations_leave_nothing_on_the_server() -> None:
    async def test(server: Server, record: Record, client: LabAsyncClient) -> None:
        baseline = len(asyncio.all_tasks())
        for n in range(1000):
            if n % 2:
                stream = client.stream("idle", 1)
                assert await anext(stream) == 0
                await stream.aclose()  # type: ignore[attr-defined]
            else:
                call = asyncio.ensure_future(client.sleep(30))
                await asyncio.sleep(0.001)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
        assert await client.echo("after") == "after"
        for _ in itertools.repeat(None, 500):
            open_calls = sum(len(conn.streams) for conn in server._connections)
            if not server._running and not open_calls and len(asyncio.all_tasks()) <= baseline:
                break
            await asyncio.sleep(0.01)
        assert server._running == 0
        assert sum(len(conn.streams) for conn in server._connections) == 0
        assert len(asyncio.all_tasks()) <= baseline

    serve(test)

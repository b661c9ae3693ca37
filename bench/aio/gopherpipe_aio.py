"""GopherPipe's asyncio runtime: `gopherpipe_runtime.aio.Server` and the generated
`<Service>AsyncClient` stubs, one client (one `Pipe`, one connection) per client process.

The stubs are `gopherpipe gen --asyncio`'s (`<stem>_aio.py`), written at bench time into
bench/_gp_generated (git-ignored) from bench/echo_service.py, bench/streaming_service.py and
bench/broadcast_service.py. Handlers are the idiomatic ones: a coroutine for a unary call,
an async generator for a server stream.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.aio import measure
from bench.measure import StreamOrderError

LABEL = "gopherpipe"

_BENCH_DIR = Path(__file__).resolve().parent.parent
_GENERATED = _BENCH_DIR / "_gp_generated"
_CONTRACTS = ("echo_service.py", "streaming_service.py", "broadcast_service.py")


def prepare() -> None:
    """Generate the sync and asyncio stubs with the project's own generator (git-ignored)."""
    _GENERATED.mkdir(exist_ok=True)
    (_GENERATED / "__init__.py").write_text("")
    subprocess.run(
        [sys.executable, "-m", "gopherpipe_gen", "gen", "--asyncio", "-o", str(_GENERATED),
         *(str(_BENCH_DIR / name) for name in _CONTRACTS)],
        check=True, timeout=120, cwd=_BENCH_DIR.parent,
    )  # fmt: skip


def _stubs(stem: str) -> ModuleType:
    return importlib.import_module(f"bench._gp_generated.{stem}_aio")


async def serve(
    kind: str, params: dict[str, Any]
) -> tuple[str, Callable[[float], Awaitable[None]]]:
    from gopherpipe_runtime.aio import Server

    server = Server("tcp://127.0.0.1:0")
    subscribers: set[asyncio.Queue[Any]] = set()
    if kind == "echo":
        from bench.streaming_service import Tick

        echo = _stubs("echo_service")
        streaming = _stubs("streaming_service")

        class Echo(echo.EchoServiceAsync):  # type: ignore[misc, name-defined]
            async def echo(self, text: str) -> str:
                return text

        class Streams(streaming.StreamBenchAsync):  # type: ignore[misc, name-defined]
            async def ticks(self, count: int) -> AsyncIterator[Tick]:
                for seq in range(count):
                    yield Tick(seq, "tick", 1.5)

            async def ping_pong(self, pings: AsyncIterator[Tick]) -> AsyncIterator[Tick]:
                async for ping in pings:
                    yield ping

        echo.register_echo_service_async(server, Echo())
        streaming.register_stream_bench_async(server, Streams())
    else:
        from bench.broadcast_service import Event

        broadcast = _stubs("broadcast_service")

        class Hub(broadcast.BroadcastAsync):  # type: ignore[misc, name-defined]
            async def subscribe(self, topic: str) -> AsyncIterator[Event]:
                inbox: asyncio.Queue[Event | None] = asyncio.Queue()
                subscribers.add(inbox)
                try:
                    yield Event(0, time.monotonic_ns(), topic)
                    while (event := await inbox.get()) is not None:
                        yield event
                finally:
                    subscribers.discard(inbox)

            async def publish(self, topic: str, seq: int) -> int:
                event = Event(seq, time.monotonic_ns(), topic)
                for inbox in subscribers:
                    inbox.put_nowait(event)
                return len(subscribers)

        broadcast.register_broadcast_async(server, Hub())
    await server.start()

    async def stop(grace: float) -> None:
        for inbox in subscribers:  # open streams end, so the grace need not run out
            inbox.put_nowait(None)
        await server.stop(grace)

    return str(server.addresses[0]), stop


async def unary_latency(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    async with _stubs("echo_service").EchoServiceAsyncClient.dial(address) as client:
        return await measure.unary_latency(client.echo, payload, params["calls"], params["warmup"])


async def unary_concurrent(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # One client for every task: calls multiplex over its one connection.
    async with _stubs("echo_service").EchoServiceAsyncClient.dial(address) as client:
        return await measure.unary_concurrent(
            client.echo,
            payload,
            params["tasks"],
            params["calls_per_task"],
            params["warmup_per_task"],
        )


async def server_stream(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # Items arrive as `Tick` dataclass instances, decoded by the generated stub.
    async with _stubs("streaming_service").StreamBenchAsyncClient.dial(address) as client:
        return await measure.server_stream(client.ticks, params["messages"])


async def hold_streams(
    address: str, params: dict[str, Any], say: Callable[[str], None], release: Awaitable[None]
) -> dict[str, Any]:
    """Open params["count"] subscribe streams on ONE client (one connection), read each
    one's welcome, say OPEN, and keep them open until `release`."""
    async with _stubs("broadcast_service").BroadcastAsyncClient.dial(address) as client:
        streams = [client.subscribe(params["topic"]) for _ in range(params["count"])]
        try:
            started = time.monotonic()
            welcomes = await asyncio.wait_for(
                asyncio.gather(*(anext(stream) for stream in streams)), params["timeout_s"]
            )
            if any(w.seq != 0 for w in welcomes):
                raise StreamOrderError("a stream's first item was not the welcome")
            open_s = time.monotonic() - started
            say(f"OPEN {len(streams)}")
            await release
        finally:
            for stream in streams:
                await stream.aclose()
    return {"open_s": open_s}


SCENARIOS = {
    "unary_latency": unary_latency,
    "unary_concurrent": unary_concurrent,
    "server_stream": server_stream,
}

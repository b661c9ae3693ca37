"""grpc.aio: grpcio's asyncio server and one `grpc.aio` channel per client process.

Stubs are grpcio-tools' (bench/_grpc_generated, made by bench/frameworks/grpcio.prepare);
handlers are coroutines and async generators, as grpc.aio's docs write them.

One setting is changed from grpc's defaults, for the open-streams row: the server's
pending-request queue (`grpc.server.max_pending_requests`, 1000, hard limit 3000) is raised
to the stream count. With the default, some subscribes of a burst are CANCELLED by the
server right after their headers arrive (seen in grpc's http trace; none with the option
raised): very likely the cause of the CANCELLED streams bench/README.md reports for
grpc.aio past ~1,000 streams.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from bench.aio import measure
from bench.frameworks import grpcio
from bench.measure import StreamOrderError

LABEL = "grpc.aio"


def prepare() -> None:
    grpcio.prepare()


def _modules(name: str) -> tuple[Any, Any]:
    grpcio._generated()  # puts bench/_grpc_generated on sys.path (protoc's imports need it)
    return __import__(f"{name}_pb2"), __import__(f"{name}_pb2_grpc")


async def serve(
    kind: str, params: dict[str, Any]
) -> tuple[str, Callable[[float], Awaitable[None]]]:
    # grpc core queues calls that arrive before the server asked for them, at most
    # grpc.server.max_pending_requests (1000; hard limit 3000) of them, and CANCELs the rest:
    # a burst of thousands of subscribes would fail. Raised to the burst the row makes.
    pending = max(1000, params.get("streams", 0) + 16)
    server = grpc.aio.server(
        options=[
            ("grpc.server.max_pending_requests", pending),
            ("grpc.server.max_pending_requests_hard_limit", max(3000, pending)),
        ]
    )
    subscribers: set[asyncio.Queue[Any]] = set()
    if kind == "echo":
        echo_pb2, echo_grpc = _modules("echo")
        stream_pb2, stream_grpc = _modules("stream")

        class Echo(echo_grpc.EchoServicer):  # type: ignore[misc, name-defined]
            async def Echo(self, request: Any, context: Any) -> Any:
                return echo_pb2.EchoReply(text=request.text)

        class Streams(stream_grpc.StreamBenchServicer):  # type: ignore[misc, name-defined]
            async def Ticks(self, request: Any, context: Any) -> AsyncIterator[Any]:
                tick = stream_pb2.Tick
                for seq in range(request.count):
                    yield tick(seq=seq, name="tick", value=1.5)

            async def PingPong(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
                async for ping in request_iterator:
                    yield ping

        echo_grpc.add_EchoServicer_to_server(Echo(), server)
        stream_grpc.add_StreamBenchServicer_to_server(Streams(), server)
    else:
        pb2, pb2_grpc = _modules("broadcast")

        class Hub(pb2_grpc.BroadcastServicer):  # type: ignore[misc, name-defined]
            async def Subscribe(self, request: Any, context: Any) -> AsyncIterator[Any]:
                inbox: asyncio.Queue[Any] = asyncio.Queue()
                subscribers.add(inbox)
                try:
                    yield pb2.Event(seq=0, sent_ns=time.monotonic_ns(), topic=request.topic)
                    while (event := await inbox.get()) is not None:
                        yield event
                finally:
                    subscribers.discard(inbox)

            async def Publish(self, request: Any, context: Any) -> Any:
                event = pb2.Event(seq=request.seq, sent_ns=time.monotonic_ns(), topic=request.topic)
                for inbox in subscribers:
                    inbox.put_nowait(event)
                return pb2.PublishReply(delivered=len(subscribers))

        pb2_grpc.add_BroadcastServicer_to_server(Hub(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    async def stop(grace: float) -> None:
        for inbox in subscribers:  # open streams end, so the grace need not run out
            inbox.put_nowait(None)
        await server.stop(grace)

    return f"tcp://127.0.0.1:{port}", stop


def _channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address.removeprefix("tcp://"))


async def unary_latency(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    pb2, pb2_grpc = _modules("echo")
    async with _channel(address) as channel:
        stub = pb2_grpc.EchoStub(channel)
        request = pb2.EchoRequest

        async def echo(text: str) -> str:
            return str((await stub.Echo(request(text=text))).text)

        return await measure.unary_latency(echo, payload, params["calls"], params["warmup"])


async def unary_concurrent(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # One channel for every task: one HTTP/2 connection, like GopherPipe's one Pipe.
    pb2, pb2_grpc = _modules("echo")
    async with _channel(address) as channel:
        stub = pb2_grpc.EchoStub(channel)
        request = pb2.EchoRequest

        async def echo(text: str) -> str:
            return str((await stub.Echo(request(text=text))).text)

        return await measure.unary_concurrent(
            echo, payload, params["tasks"], params["calls_per_task"], params["warmup_per_task"]
        )


async def server_stream(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # Items arrive as protobuf `Tick` messages: grpc's typed objects.
    pb2, pb2_grpc = _modules("stream")
    async with _channel(address) as channel:
        stub = pb2_grpc.StreamBenchStub(channel)
        return await measure.server_stream(
            lambda count: stub.Ticks(pb2.TickRequest(count=count)), params["messages"]
        )


async def hold_streams(
    address: str, params: dict[str, Any], say: Callable[[str], None], release: Awaitable[None]
) -> dict[str, Any]:
    """Open params["count"] Subscribe streams on ONE channel, read each one's welcome, say
    OPEN, and keep them open until `release`."""
    pb2, pb2_grpc = _modules("broadcast")
    async with _channel(address) as channel:
        stub = pb2_grpc.BroadcastStub(channel)
        request = pb2.SubscribeRequest(topic=params["topic"])
        calls = [stub.Subscribe(request) for _ in range(params["count"])]
        try:
            started = time.monotonic()
            welcomes = await asyncio.wait_for(
                asyncio.gather(*(call.read() for call in calls)), params["timeout_s"]
            )
            if any(w is grpc.aio.EOF or w.seq != 0 for w in welcomes):
                raise StreamOrderError("a stream's first item was not the welcome")
            open_s = time.monotonic() - started
            say(f"OPEN {len(calls)}")
            await release
        finally:
            for call in calls:
                call.cancel()
    return {"open_s": open_s}


SCENARIOS = {
    "unary_latency": unary_latency,
    "unary_concurrent": unary_concurrent,
    "server_stream": server_stream,
}

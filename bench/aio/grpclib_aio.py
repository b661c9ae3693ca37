"""grpclib: the pure-Python asyncio gRPC (h2 underneath); one `Channel` per client process.

Stubs are protoc's with grpclib's plugin (`<name>_grpc.py`, written beside grpcio's by
bench/frameworks/grpcio.prepare). Handlers take grpclib's `Stream` and send each message
with `await stream.send_message(...)`, as grpclib's docs write them; a server stream's
client side is `async with stub.Method.open() as stream` and `async for`.

One setting is changed from grpclib's defaults, for the open-streams row only: h2
advertises SETTINGS_MAX_CONCURRENT_STREAMS = 100 and grpclib has no option for it, so a
client's 101st stream would wait for one to close; the streams server starts its
connections at the stream count instead (see `_lift_stream_limit`), so every stream fits
on the one connection, as with the others.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpclib.protocol
from grpclib.client import Channel
from grpclib.server import Server
from h2.connection import H2Connection
from h2.settings import SettingCodes, Settings

from bench.aio import measure
from bench.frameworks import grpcio
from bench.measure import StreamOrderError

LABEL = "grpclib"


def prepare() -> None:
    grpcio.prepare()  # the same protoc run writes grpclib's stubs when grpclib is installed


def _modules(name: str) -> tuple[Any, Any]:
    grpcio._generated()  # puts bench/_grpc_generated on sys.path (protoc's imports need it)
    return __import__(f"{name}_pb2"), __import__(f"{name}_grpc")


def _lift_stream_limit(limit: int) -> None:
    """Make this process's grpclib servers allow and advertise `limit` concurrent streams
    per connection from the connection's first byte.

    h2 starts every connection at MAX_CONCURRENT_STREAMS = 100, and grpclib builds the
    H2Connection and sends its SETTINGS inside `connection_made`, with no option to change
    it. A later SETTINGS frame is not enough: the limit rises only when the client ACKs it,
    and a client that opened hundreds of streams before it read either SETTINGS frame gets
    its connection closed (h2's TooManyStreamsError is a protocol error to grpclib; seen
    as "Connection lost" under load). So the server process swaps in an H2Connection whose
    settings start at `limit`, the way h2 itself sets 100.
    """

    class WideH2Connection(H2Connection):
        def __init__(self, config: Any = None) -> None:
            super().__init__(config=config)
            if not self.config.client_side:
                self.local_settings = Settings(
                    client=False,
                    initial_values={
                        SettingCodes.MAX_CONCURRENT_STREAMS: limit,
                        SettingCodes.MAX_HEADER_LIST_SIZE: self.DEFAULT_MAX_HEADER_LIST_SIZE,
                    },
                )

    grpclib.protocol.H2Connection = WideH2Connection  # type: ignore[attr-defined]


async def serve(
    kind: str, params: dict[str, Any]
) -> tuple[str, Callable[[float], Awaitable[None]]]:
    subscribers: set[asyncio.Queue[Any]] = set()
    if kind == "echo":
        echo_pb2, echo_grpc = _modules("echo")
        stream_pb2, stream_grpc = _modules("stream")

        class Echo(echo_grpc.EchoBase):  # type: ignore[misc, name-defined]
            async def Echo(self, stream: Any) -> None:
                request = await stream.recv_message()
                await stream.send_message(echo_pb2.EchoReply(text=request.text))

        class Streams(stream_grpc.StreamBenchBase):  # type: ignore[misc, name-defined]
            async def Ticks(self, stream: Any) -> None:
                request = await stream.recv_message()
                tick = stream_pb2.Tick
                for seq in range(request.count):
                    await stream.send_message(tick(seq=seq, name="tick", value=1.5))

            async def PingPong(self, stream: Any) -> None:
                async for ping in stream:
                    await stream.send_message(ping)

        server = Server([Echo(), Streams()])
    else:
        pb2, pb2_grpc = _modules("broadcast")

        class Hub(pb2_grpc.BroadcastBase):  # type: ignore[misc, name-defined]
            async def Subscribe(self, stream: Any) -> None:
                request = await stream.recv_message()
                inbox: asyncio.Queue[Any] = asyncio.Queue()
                subscribers.add(inbox)
                try:
                    await stream.send_message(
                        pb2.Event(seq=0, sent_ns=time.monotonic_ns(), topic=request.topic)
                    )
                    while (event := await inbox.get()) is not None:
                        await stream.send_message(event)
                finally:
                    subscribers.discard(inbox)

            async def Publish(self, stream: Any) -> None:
                request = await stream.recv_message()
                event = pb2.Event(seq=request.seq, sent_ns=time.monotonic_ns(), topic=request.topic)
                for inbox in subscribers:
                    inbox.put_nowait(event)
                await stream.send_message(pb2.PublishReply(delivered=len(subscribers)))

        _lift_stream_limit(max(100, params.get("streams", 0) + 16))
        server = Server([Hub()])
    # A socket of our own, so the OS-chosen port is known without reaching into the server.
    # proto IPPROTO_TCP, as getaddrinfo would give: grpclib and asyncio set TCP_NODELAY on
    # accepted sockets only when proto says TCP (with proto 0, a call waits out delayed ACKs).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await server.start(sock=sock)

    async def stop(grace: float) -> None:
        for inbox in subscribers:
            inbox.put_nowait(None)
        server.close()
        await asyncio.wait_for(server.wait_closed(), grace + 5)

    return f"tcp://127.0.0.1:{port}", stop


def _channel(address: str) -> Channel:
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    return Channel(host, int(port))


async def unary_latency(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    pb2, pb2_grpc = _modules("echo")
    channel = _channel(address)
    try:
        stub = pb2_grpc.EchoStub(channel)
        request = pb2.EchoRequest

        async def echo(text: str) -> str:
            return str((await stub.Echo(request(text=text))).text)

        return await measure.unary_latency(echo, payload, params["calls"], params["warmup"])
    finally:
        channel.close()


async def unary_concurrent(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    pb2, pb2_grpc = _modules("echo")
    channel = _channel(address)  # one connection for every task
    try:
        stub = pb2_grpc.EchoStub(channel)
        request = pb2.EchoRequest

        async def echo(text: str) -> str:
            return str((await stub.Echo(request(text=text))).text)

        return await measure.unary_concurrent(
            echo, payload, params["tasks"], params["calls_per_task"], params["warmup_per_task"]
        )
    finally:
        channel.close()


async def server_stream(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # Items arrive as protobuf `Tick` messages, decoded by grpclib's codec.
    pb2, pb2_grpc = _modules("stream")
    channel = _channel(address)
    stub = pb2_grpc.StreamBenchStub(channel)

    async def ticks(count: int) -> AsyncIterator[Any]:
        async with stub.Ticks.open() as stream:
            await stream.send_message(pb2.TickRequest(count=count), end=True)
            async for tick in stream:
                yield tick

    try:
        return await measure.server_stream(ticks, params["messages"])
    finally:
        channel.close()


async def hold_streams(
    address: str, params: dict[str, Any], say: Callable[[str], None], release: Awaitable[None]
) -> dict[str, Any]:
    """Open params["count"] Subscribe streams on ONE channel (a task per stream, as
    grpclib's stream is an `async with`), read each one's welcome, say OPEN, and keep them
    open until `release`."""
    pb2, pb2_grpc = _modules("broadcast")
    channel = _channel(address)
    stub = pb2_grpc.BroadcastStub(channel)
    request = pb2.SubscribeRequest(topic=params["topic"])
    count = params["count"]
    welcomed = 0
    all_open = asyncio.Event()
    done = asyncio.Event()

    async def hold() -> None:
        nonlocal welcomed
        async with stub.Subscribe.open() as stream:
            await stream.send_message(request, end=True)
            welcome = await stream.recv_message()
            if welcome is None or welcome.seq != 0:
                raise StreamOrderError("a stream's first item was not the welcome")
            welcomed += 1
            if welcomed == count:
                all_open.set()
            await done.wait()
            await stream.cancel()

    started = time.monotonic()
    tasks = [asyncio.create_task(hold()) for _ in range(count)]
    try:
        waiter = asyncio.create_task(all_open.wait())
        finished, _ = await asyncio.wait(
            [waiter, *tasks], timeout=params["timeout_s"], return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in finished:
            waiter.cancel()
            for task in finished:
                task.result()
            raise TimeoutError(f"{count - welcomed} of {count} streams not open")
        open_s = time.monotonic() - started
        say(f"OPEN {count}")
        await release
        done.set()
        await asyncio.wait(tasks, timeout=10)
    finally:
        for task in tasks:
            task.cancel()
        channel.close()
    return {"open_s": open_s}


SCENARIOS = {
    "unary_latency": unary_latency,
    "unary_concurrent": unary_concurrent,
    "server_stream": server_stream,
}

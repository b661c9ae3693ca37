"""grpcio: sync `grpc.server` on a ThreadPoolExecutor, one insecure channel on the client.

For the transports comparison, `serve("tls")` listens on a secure port with the project's
test certificate (`grpc.ssl_server_credentials`), and an address `tls://host:port` makes
the client open a `grpc.secure_channel` that checks it against the test CA
(`grpc.ssl_channel_credentials`): server-only TLS, as GopherPipe's tls:// in the bench.

The stubs are generated from bench/protos/*.proto by grpcio-tools at bench time (in
`prepare`), into bench/_grpc_generated/, which is git-ignored: generated code must match the
installed grpcio/protobuf, so it is never committed. When grpclib is installed, the same
protoc run writes its stubs there too (`<name>_grpc.py`, for bench/aio).
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from bench import measure
from bench.frameworks import CERTS

LABEL = "grpc"

_BENCH_DIR = Path(__file__).resolve().parent.parent
_PROTO_DIR = _BENCH_DIR / "protos"
_GEN_DIR = _BENCH_DIR / "_grpc_generated"
# Matches the 16 client threads of the throughput scenario, so the pool is never the cap.
_SERVER_WORKERS = 16


def _grpclib_plugin() -> list[str]:
    """protoc's flags for grpclib's stubs (`<name>_grpc.py`, for bench/aio), if grpclib is
    installed: its plugin is a console script beside this interpreter (a venv's bin/ need
    not be on PATH, so it is named to protoc by its full path)."""
    if importlib.util.find_spec("grpclib") is None:
        return []
    plugin = Path(sys.executable).parent / "protoc-gen-grpclib_python"
    if not plugin.exists():
        found = shutil.which("protoc-gen-grpclib_python")
        if found is None:
            return []
        plugin = Path(found)
    return [f"--plugin=protoc-gen-grpclib_python={plugin}", f"--grpclib_python_out={_GEN_DIR}"]


def prepare() -> None:
    """grpcio's stubs, and grpclib's beside them when grpclib is installed (bench/aio)."""
    _GEN_DIR.mkdir(exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{_PROTO_DIR}",
            f"--python_out={_GEN_DIR}",
            f"--grpc_python_out={_GEN_DIR}",
            *_grpclib_plugin(),
            str(_PROTO_DIR / "echo.proto"),
            str(_PROTO_DIR / "stream.proto"),
            str(_PROTO_DIR / "broadcast.proto"),
        ],
        check=True,
        timeout=60,
    )


def _generated() -> tuple[Any, Any]:
    # protoc's output imports its sibling as a top-level module (`import echo_pb2`).
    if str(_GEN_DIR) not in sys.path:
        sys.path.insert(0, str(_GEN_DIR))
    import echo_pb2
    import echo_pb2_grpc

    return echo_pb2, echo_pb2_grpc


def _streaming() -> tuple[Any, Any]:
    _generated()  # puts the generated folder on sys.path
    import stream_pb2
    import stream_pb2_grpc

    return stream_pb2, stream_pb2_grpc


# grpcio has no WebSocket transport; its TLS is HTTP/2 over TLS.
TRANSPORTS = ("tcp", "tls")


def _channel(address: str) -> grpc.Channel:
    """A ready channel: insecure for tcp://, TLS checked against the test CA for tls://."""
    if address.startswith("tls://"):
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(CERTS / "ca.pem").read_bytes()
        )
        channel = grpc.secure_channel(address.removeprefix("tls://"), credentials)
    else:
        channel = grpc.insecure_channel(address.removeprefix("tcp://"))
    grpc.channel_ready_future(channel).result(timeout=30)
    return channel


def serve(transport: str = "tcp") -> tuple[str, Callable[[float], None]]:
    if transport not in TRANSPORTS:
        raise ValueError(f"grpcio serves {', '.join(TRANSPORTS)} here, not {transport}")
    pb2, pb2_grpc = _generated()

    class EchoServicer(pb2_grpc.EchoServicer):  # type: ignore[misc, name-defined]
        def Echo(self, request: Any, context: Any) -> Any:
            return pb2.EchoReply(text=request.text)

    server = grpc.server(ThreadPoolExecutor(max_workers=_SERVER_WORKERS))
    pb2_grpc.add_EchoServicer_to_server(EchoServicer(), server)
    stream_pb2, stream_grpc = _streaming()

    class StreamServicer(stream_grpc.StreamBenchServicer):  # type: ignore[misc, name-defined]
        def Ticks(self, request: Any, context: Any) -> Iterator[Any]:
            tick = stream_pb2.Tick
            for seq in range(request.count):
                yield tick(seq=seq, name="tick", value=1.5)

        def PingPong(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
            yield from request_iterator

    stream_grpc.add_StreamBenchServicer_to_server(StreamServicer(), server)
    if transport == "tls":
        credentials = grpc.ssl_server_credentials(
            [((CERTS / "server.key").read_bytes(), (CERTS / "server.pem").read_bytes())]
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def stop(grace: float) -> None:
        server.stop(grace).wait(grace + 5)

    return f"{transport}://127.0.0.1:{port}", stop


def _dial(address: str) -> tuple[grpc.Channel, Callable[[str], str]]:
    pb2, pb2_grpc = _generated()
    channel = _channel(address)
    stub = pb2_grpc.EchoStub(channel)
    request_type = pb2.EchoRequest

    def echo(text: str) -> str:
        return str(stub.Echo(request_type(text=text)).text)

    return channel, echo


def unary_latency(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    channel, echo = _dial(address)
    try:
        return measure.unary_latency(echo, payload, params["calls"], params["warmup"])
    finally:
        channel.close()


def unary_throughput(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # One channel for all threads: one HTTP/2 connection, like GopherPipe's one Pipe.
    channel, echo = _dial(address)
    try:
        return measure.unary_throughput(
            echo,
            payload,
            params["threads"],
            params["calls_per_thread"],
            params["warmup_per_thread"],
        )
    finally:
        channel.close()


def server_stream(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # Items arrive as protobuf `Tick` messages: grpc's typed objects.
    pb2, pb2_grpc = _streaming()
    channel = _channel(address)
    stub = pb2_grpc.StreamBenchStub(channel)
    try:
        return measure.server_stream(
            lambda count: stub.Ticks(pb2.TickRequest(count=count)), params["messages"]
        )
    finally:
        channel.close()


def bidi_pingpong(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    pb2, pb2_grpc = _streaming()
    channel = _channel(address)
    stub = pb2_grpc.StreamBenchStub(channel)
    pings: queue.SimpleQueue[Any] = queue.SimpleQueue()
    pongs = stub.PingPong(iter(pings.get, None))

    def round_trip(seq: int) -> int:
        pings.put(pb2.Tick(seq=seq, name="ping", value=0.5))
        return int(next(pongs).seq)

    try:
        return measure.bidi_pingpong(round_trip, params["rounds"], params["warmup"])
    finally:
        pings.put(None)
        channel.close()


def _broadcast() -> tuple[Any, Any]:
    _generated()
    import broadcast_pb2
    import broadcast_pb2_grpc

    return broadcast_pb2, broadcast_pb2_grpc


# Threads for the publish calls on top of one per open stream.
_SPARE_WORKERS = 16


def broadcast_serve(params: dict[str, Any]) -> tuple[str, Callable[[float], None]]:
    """grpc's sync server: a streaming handler holds its pool thread while the stream is open,
    so the pool is sized to hold every stream (params["streams"] + spare for publish)."""
    pb2, pb2_grpc = _broadcast()
    lock = threading.Lock()
    subscribers: dict[int, queue.SimpleQueue[Any]] = {}
    ids = itertools.count()

    class Hub(pb2_grpc.BroadcastServicer):  # type: ignore[misc, name-defined]
        def Subscribe(self, request: Any, context: Any) -> Iterator[Any]:
            inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
            key = next(ids)
            with lock:
                subscribers[key] = inbox
            # A cancelled stream's thread is blocked in inbox.get(): wake it.
            context.add_callback(lambda: inbox.put(None))
            try:
                yield pb2.Event(seq=0, sent_ns=time.monotonic_ns(), topic=request.topic)
                while (event := inbox.get()) is not None:
                    yield event
            finally:
                with lock:
                    subscribers.pop(key, None)

        def Publish(self, request: Any, context: Any) -> Any:
            event = pb2.Event(seq=request.seq, sent_ns=time.monotonic_ns(), topic=request.topic)
            with lock:
                inboxes = list(subscribers.values())
            for inbox in inboxes:
                inbox.put(event)
            return pb2.PublishReply(delivered=len(inboxes))

    workers = params["streams"] + _SPARE_WORKERS
    server = grpc.server(ThreadPoolExecutor(max_workers=workers))
    pb2_grpc.add_BroadcastServicer_to_server(Hub(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def stop(grace: float) -> None:
        with lock:
            inboxes = list(subscribers.values())
        for inbox in inboxes:
            inbox.put(None)
        server.stop(grace).wait(grace + 5)

    return f"tcp://127.0.0.1:{port}", stop


def broadcast_serve_aio(params: dict[str, Any]) -> tuple[str, Callable[[float], None]]:
    """grpc.aio's server on an event loop in one thread: a stream is an async generator."""
    pb2, pb2_grpc = _broadcast()
    subscribers: dict[int, asyncio.Queue[Any]] = {}
    ids = itertools.count()

    class Hub(pb2_grpc.BroadcastServicer):  # type: ignore[misc, name-defined]
        async def Subscribe(self, request: Any, context: Any) -> Any:
            inbox: asyncio.Queue[Any] = asyncio.Queue()
            key = next(ids)
            subscribers[key] = inbox
            try:
                yield pb2.Event(seq=0, sent_ns=time.monotonic_ns(), topic=request.topic)
                while (event := await inbox.get()) is not None:
                    yield event
            finally:
                subscribers.pop(key, None)

        async def Publish(self, request: Any, context: Any) -> Any:
            event = pb2.Event(seq=request.seq, sent_ns=time.monotonic_ns(), topic=request.topic)
            inboxes = list(subscribers.values())
            for inbox in inboxes:
                inbox.put_nowait(event)
            return pb2.PublishReply(delivered=len(inboxes))

    loop = asyncio.new_event_loop()
    started: queue.SimpleQueue[Any] = queue.SimpleQueue()
    holder: dict[str, Any] = {}

    async def start() -> None:
        server = grpc.aio.server()
        pb2_grpc.add_BroadcastServicer_to_server(Hub(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        holder["server"] = server
        started.put(port)

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["starting"] = loop.create_task(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="grpc-aio-loop", daemon=True)
    thread.start()
    port = started.get(timeout=30)

    def stop(grace: float) -> None:
        async def shutdown() -> None:
            for inbox in list(subscribers.values()):
                inbox.put_nowait(None)
            await holder["server"].stop(grace)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(grace + 5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    return f"tcp://127.0.0.1:{port}", stop


def broadcast_subscribe(
    address: str, params: dict[str, Any], say: Callable[[str], None]
) -> dict[str, Any]:
    """Open params["count"] streams on ONE grpc.aio channel (for both grpc servers: a sync
    client would need a thread per stream), one reader task per stream."""
    return asyncio.run(_subscribe_aio(address, params, say))


async def _subscribe_aio(
    address: str, params: dict[str, Any], say: Callable[[str], None]
) -> dict[str, Any]:
    pb2, pb2_grpc = _broadcast()
    count, broadcasts, timeout = params["count"], params["broadcasts"], params["timeout_s"]
    async with grpc.aio.insecure_channel(address.removeprefix("tcp://")) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout)
        stub = pb2_grpc.BroadcastStub(channel)
        calls = [stub.Subscribe(pb2.SubscribeRequest(topic=params["topic"])) for _ in range(count)]
        latencies = [[0] * count for _ in range(broadcasts + 1)]
        remaining = [count] * (broadcasts + 1)
        done = [asyncio.Event() for _ in range(broadcasts + 1)]
        now = time.monotonic_ns

        async def reader(i: int, call: Any) -> None:
            for seq in range(broadcasts + 1):
                try:
                    event = await call.read()
                except grpc.aio.AioRpcError as exc:
                    opened = remaining[0] if seq == 0 else 0
                    raise measure.StreamOrderError(
                        f"stream {i} of {count} on this channel, waiting for event {seq} "
                        f"({opened} streams not yet open): {exc.code().name} {exc.details()}"
                    ) from None
                received = now()
                if event is grpc.aio.EOF or event.seq != seq:
                    raise measure.StreamOrderError(f"stream {i}: expected event {seq}")
                latencies[seq][i] = received - event.sent_ns
                remaining[seq] -= 1
                if not remaining[seq]:
                    done[seq].set()

        tasks = [asyncio.create_task(reader(i, call)) for i, call in enumerate(calls)]
        try:
            for seq in range(broadcasts + 1):
                waiting = asyncio.create_task(done[seq].wait())
                finished, _ = await asyncio.wait(
                    [waiting, *tasks], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if waiting not in finished:
                    waiting.cancel()
                    for task in finished:
                        task.result()  # a reader that failed says why
                    if not finished:
                        raise TimeoutError(f"event {seq}: {remaining[seq]} streams still waiting")
                    await done[seq].wait()
                say(f"OPEN {count}" if seq == 0 else f"GOT {seq}")
            return {"latencies_ns": latencies[1:]}
        finally:
            for call in calls:
                call.cancel()
            for task in tasks:
                task.cancel()


def broadcast_publisher(address: str) -> tuple[Callable[[str, int], int], Callable[[], None]]:
    pb2, pb2_grpc = _broadcast()
    channel = grpc.insecure_channel(address.removeprefix("tcp://"))
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = pb2_grpc.BroadcastStub(channel)

    def publish(topic: str, seq: int) -> int:
        return int(stub.Publish(pb2.PublishRequest(topic=topic, seq=seq), timeout=60).delivered)

    return publish, channel.close


STREAM_SERVERS = {"grpc": broadcast_serve, "grpc_aio": broadcast_serve_aio}

SCENARIOS = {
    "unary_latency": unary_latency,
    "unary_throughput": unary_throughput,
    "server_stream": server_stream,
    "bidi_pingpong": bidi_pingpong,
}

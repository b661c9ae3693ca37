"""grpcio: sync `grpc.server` on a ThreadPoolExecutor, one insecure channel on the client.

The stubs are generated from bench/protos/echo.proto by grpcio-tools at bench time (in
`prepare`), into bench/_grpc_generated/, which is git-ignored: generated code must match the
installed grpcio/protobuf, so it is never committed.
"""

from __future__ import annotations

import queue
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from bench import measure

LABEL = "grpc"

_BENCH_DIR = Path(__file__).resolve().parent.parent
_PROTO_DIR = _BENCH_DIR / "protos"
_GEN_DIR = _BENCH_DIR / "_grpc_generated"
# Matches the 16 client threads of the throughput scenario, so the pool is never the cap.
_SERVER_WORKERS = 16


def prepare() -> None:
    _GEN_DIR.mkdir(exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{_PROTO_DIR}",
            f"--python_out={_GEN_DIR}",
            f"--grpc_python_out={_GEN_DIR}",
            str(_PROTO_DIR / "echo.proto"),
            str(_PROTO_DIR / "stream.proto"),
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


def serve() -> tuple[str, Callable[[float], None]]:
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
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def stop(grace: float) -> None:
        server.stop(grace).wait(grace + 5)

    return f"tcp://127.0.0.1:{port}", stop


def _dial(address: str) -> tuple[grpc.Channel, Callable[[str], str]]:
    pb2, pb2_grpc = _generated()
    channel = grpc.insecure_channel(address.removeprefix("tcp://"))
    grpc.channel_ready_future(channel).result(timeout=30)
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
    channel = grpc.insecure_channel(address.removeprefix("tcp://"))
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = pb2_grpc.StreamBenchStub(channel)
    try:
        return measure.server_stream(
            lambda count: stub.Ticks(pb2.TickRequest(count=count)), params["messages"]
        )
    finally:
        channel.close()


def bidi_pingpong(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    pb2, pb2_grpc = _streaming()
    channel = grpc.insecure_channel(address.removeprefix("tcp://"))
    grpc.channel_ready_future(channel).result(timeout=30)
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


SCENARIOS = {
    "unary_latency": unary_latency,
    "unary_throughput": unary_throughput,
    "server_stream": server_stream,
    "bidi_pingpong": bidi_pingpong,
}

"""grpcio: sync `grpc.server` on a ThreadPoolExecutor, one insecure channel on the client.

The stubs are generated from bench/protos/echo.proto by grpcio-tools at bench time (in
`prepare`), into bench/_grpc_generated/, which is git-ignored: generated code must match the
installed grpcio/protobuf, so it is never committed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
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


def serve() -> tuple[str, Callable[[float], None]]:
    pb2, pb2_grpc = _generated()

    class EchoServicer(pb2_grpc.EchoServicer):  # type: ignore[misc, name-defined]
        def Echo(self, request: Any, context: Any) -> Any:
            return pb2.EchoReply(text=request.text)

    server = grpc.server(ThreadPoolExecutor(max_workers=_SERVER_WORKERS))
    pb2_grpc.add_EchoServicer_to_server(EchoServicer(), server)
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


SCENARIOS = {"unary_latency": unary_latency, "unary_throughput": unary_throughput}

"""GopherPipe: the generated echo stubs over the runtime, one client shared by every thread."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import gopherpipe_runtime
from bench import measure

LABEL = "gopherpipe"

_ECHO_DIR = Path(__file__).resolve().parent.parent.parent / "examples" / "echo"


def _stub(kind: str) -> ModuleType:
    """Import examples/echo/service_<kind>.py, however the generated stub imports its contract."""
    name = f"service_{kind}"
    if not (_ECHO_DIR / f"{name}.py").exists():
        raise ImportError(
            f"examples/echo/{name}.py does not exist yet; "
            "generate it with `gopherpipe gen examples/echo/service.py`"
        )
    try:
        return importlib.import_module(f"examples.echo.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("service", "service_client"):
            raise
        # The stub imports its contract (and the server stub, the client stub's converters)
        # as top-level modules: it needs its directory on sys.path.
        if str(_ECHO_DIR) not in sys.path:
            sys.path.insert(0, str(_ECHO_DIR))
        return importlib.import_module(name)


def _contract() -> ModuleType:
    # Subclass the very EchoService the stub imported, whichever name it was imported under.
    for name in ("examples.echo.service", "service"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "EchoService"):
            return module
    return importlib.import_module("examples.echo.service")


_BENCH_DIR = Path(__file__).resolve().parent.parent
_GENERATED = _BENCH_DIR / "_gp_generated"


def prepare() -> None:
    """Generate the streaming bench stubs with the project's own generator (git-ignored)."""
    _GENERATED.mkdir(exist_ok=True)
    (_GENERATED / "__init__.py").write_text("")
    subprocess.run(
        [sys.executable, "-m", "gopherpipe_gen", "gen", "-o", str(_GENERATED),
         str(_BENCH_DIR / "streaming_service.py")],
        check=True, timeout=120, cwd=_BENCH_DIR.parent,
    )  # fmt: skip


def _streaming(kind: str) -> ModuleType:
    return importlib.import_module(f"bench._gp_generated.streaming_service_{kind}")


def _serve_streams(server: gopherpipe_runtime.Server) -> None:
    from bench.streaming_service import StreamBench, Tick

    class Streams(StreamBench):
        def ticks(self, count: int) -> gopherpipe_runtime.Chan[Tick]:
            out: gopherpipe_runtime.Chan[Tick] = gopherpipe_runtime.Chan(1024)

            def produce() -> None:
                with out:
                    for seq in range(count):
                        out.send(Tick(seq, "tick", 1.5))

            threading.Thread(target=produce, daemon=True).start()
            return out

        def ping_pong(self, pings: gopherpipe_runtime.Chan[Tick]) -> gopherpipe_runtime.Chan[Tick]:
            out: gopherpipe_runtime.Chan[Tick] = gopherpipe_runtime.Chan(16)

            def relay() -> None:
                with out:
                    for ping in pings:
                        out.send(ping)

            threading.Thread(target=relay, daemon=True).start()
            return out

    _streaming("server").register_stream_bench(server, Streams())


def serve() -> tuple[str, Callable[[float], None]]:
    server_stub = _stub("server")
    contract = _contract()

    class Echo(contract.EchoService):  # type: ignore[misc, name-defined]
        def echo(self, text: str) -> str:
            return text

        def repeat(self, text: str, times: int = 2) -> Any:
            return contract.Echoed(text=text * times, times=times)

    server = gopherpipe_runtime.Server("tcp://127.0.0.1:0")
    server_stub.register_echo_service(server, Echo())
    _serve_streams(server)
    server.start()

    def stop(grace: float) -> None:
        server.stop(grace)

    return str(server.addresses[0]), stop


def _dial(address: str) -> Any:
    return _stub("client").EchoServiceClient.dial(address)


def unary_latency(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    client = _dial(address)
    try:
        return measure.unary_latency(client.echo, payload, params["calls"], params["warmup"])
    finally:
        client.close()


def unary_throughput(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # One client for all threads: calls multiplex over its one connection.
    client = _dial(address)
    try:
        return measure.unary_throughput(
            client.echo,
            payload,
            params["threads"],
            params["calls_per_thread"],
            params["warmup_per_thread"],
        )
    finally:
        client.close()


def server_stream(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # Items arrive as `Tick` dataclass instances, decoded by the generated stub.
    client = _streaming("client").StreamBenchClient.dial(address)
    try:
        return measure.server_stream(client.ticks, params["messages"])
    finally:
        client.close()


def bidi_pingpong(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    from bench.streaming_service import Tick

    client = _streaming("client").StreamBenchClient.dial(address)
    pings: gopherpipe_runtime.Chan[Tick] = gopherpipe_runtime.Chan()
    pongs = client.ping_pong(pings)

    def round_trip(seq: int) -> int:
        pings.send(Tick(seq, "ping", 0.5))
        return int(pongs.recv().seq)

    try:
        return measure.bidi_pingpong(round_trip, params["rounds"], params["warmup"])
    finally:
        pings.close()
        for _ in pongs:
            pass
        client.close()


SCENARIOS = {
    "unary_latency": unary_latency,
    "unary_throughput": unary_throughput,
    "server_stream": server_stream,
    "bidi_pingpong": bidi_pingpong,
}

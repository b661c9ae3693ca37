"""GopherPipe: the generated echo stubs over the runtime, one client shared by every thread."""

from __future__ import annotations

import importlib
import sys
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
        if exc.name != "service":
            raise
        # The stub imports its contract as a top-level `service` module: it needs its directory.
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


SCENARIOS = {"unary_latency": unary_latency, "unary_throughput": unary_throughput}

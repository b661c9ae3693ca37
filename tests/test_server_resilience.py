"""A bug in handling one peer's bytes costs that connection, not the server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from gopherpipe_runtime import Server, UnavailableError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_an_unexpected_error_reading_one_connection_fails_only_that_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sys.path.insert(0, str(EXAMPLES / "echo"))
    try:
        import service
        import service_client
        import service_server
    finally:
        sys.path.pop(0)
        for name in ("service", "service_client", "service_server"):
            sys.modules.pop(name, None)

    class Echo(service.EchoService):  # type: ignore[misc]
        def echo(self, text: str) -> str:
            return text

        def repeat(self, text: str, times: int = 2) -> Any:
            raise NotImplementedError("unused here")

    server = Server("tcp://127.0.0.1:0", max_workers=2)
    service_server.register_echo_service(server, Echo())
    real_on_hello = Server._on_hello
    broken = [True]

    def on_hello(self: Server, conn: Any, frame: Any) -> None:
        if broken[0]:
            broken[0] = False
            raise KeyError("a bug in the server")
        real_on_hello(self, conn, frame)

    monkeypatch.setattr(Server, "_on_hello", on_hello)
    with server:
        address = server.addresses[0]
        unlucky = service_client.EchoServiceClient.dial(address)
        with unlucky, pytest.raises(UnavailableError, match="server error: KeyError"):
            unlucky.echo("first")
        for _ in range(3):  # the polling threads live on: everyone else is served
            with service_client.EchoServiceClient.dial(address) as client:
                assert client.echo("next") == "next"

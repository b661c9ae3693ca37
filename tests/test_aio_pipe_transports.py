"""The asyncio Pipe over every transport the threaded Server serves: tcp, unix, tls
(mTLS), ws, wss and memory, all four call shapes on each; a TLS failure says why."""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aio_pipe_service import service

from gopherpipe_runtime import Server, UnavailableError
from gopherpipe_runtime.aio import Pipe
from gopherpipe_runtime.pipe import CallOptions
from gopherpipe_runtime.testing import memory_address
from gopherpipe_runtime.transport import tls as tls_transport

CERTS = Path(__file__).resolve().parent.parent / "examples" / "certs"
SCHEMES = ("tcp", "unix", "tls", "ws", "wss", "memory")
NONE = CallOptions()


def cert(name: str) -> str:
    return str(CERTS / name)


def client_tls() -> ssl.SSLContext:
    return tls_transport.client_context(
        cert("ca.pem"), certfile=cert("client.pem"), keyfile=cert("client.key")
    )


def same(value: Any) -> Any:
    return value


@pytest.fixture(scope="module")
def addresses() -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory() as scratch:
        server = Server(
            "tcp://127.0.0.1:0",
            f"unix://{scratch}/aio.sock",
            "tls://127.0.0.1:0",
            "ws://127.0.0.1:0/gp",
            "wss://127.0.0.1:0/gp",
            memory_address(),
            tls=tls_transport.server_context(
                cert("server.pem"), cert("server.key"), client_ca=cert("ca.pem")
            ),
        )
        server.add_service(service("every"))
        with server:
            yield dict(zip(SCHEMES, server.addresses, strict=True))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_call_shape_over(addresses: dict[str, str], scheme: str) -> None:
    pipe = Pipe(addresses[scheme], tls=client_tls())

    async def gen(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def main() -> None:
        assert await pipe.unary("T", "echo", ["x" * 5000], NONE) == "x" * 5000
        server_stream = pipe.stream("T", "count", [300, scheme], NONE, decode_item=same)
        assert [x async for x in server_stream] == list(range(300))
        client_stream = pipe.stream("T", "total", [], NONE, source=gen(300), encode_item=same)
        assert await client_stream.result() == sum(range(300))
        bidi = pipe.stream(
            "T", "double", [], NONE, source=range(300), encode_item=same, decode_item=same
        )
        assert [x async for x in bidi] == [2 * i for i in range(300)]
        await pipe.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_client_that_does_not_trust_the_server_says_why(addresses: dict[str, str]) -> None:
    pipe = Pipe(addresses["tls"], tls=tls_transport.client_context(cert("other-ca.pem")))

    async def main() -> None:
        with pytest.raises(UnavailableError, match="certificate verify failed"):
            await pipe.unary("T", "echo", [1], NONE)
        await pipe.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_uvloop_when_installed(addresses: dict[str, str]) -> None:
    uvloop = pytest.importorskip("uvloop")
    pipe = Pipe(addresses["tcp"])

    async def main() -> None:
        assert await pipe.unary("T", "echo", [1], NONE) == 1
        with pytest.raises(Exception, match="DEADLINE_EXCEEDED"):
            await pipe.unary("T", "hold", ["uvloop", 5.0], CallOptions(timeout=0.1))
        stream = pipe.stream("T", "count", [50, "uvloop"], NONE, decode_item=same)
        assert [x async for x in stream] == list(range(50))
        await pipe.close()

    uvloop.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("algorithm", ["zlib", "zstd"])
def test_compression_is_negotiated(addresses: dict[str, str], algorithm: str) -> None:
    if algorithm == "zstd":
        pytest.importorskip("zstandard")
    pipe = Pipe(addresses["tcp"], compression=algorithm, compression_threshold=64)
    big = "gopher " * 20_000

    async def main() -> None:
        assert await pipe.unary("T", "echo", [big], NONE) == big
        connection = pipe._endpoints[0].connection
        assert connection is not None and connection.settings is not None
        assert connection.settings.compression == algorithm
        bidi = pipe.stream(
            "T", "double", [], NONE, source=[big] * 3, encode_item=same, decode_item=same
        )
        assert [x async for x in bidi] == [big * 2] * 3
        await pipe.close()

    asyncio.run(asyncio.wait_for(main(), 30))

"""Call EchoService from asyncio: `python examples/echo/client_aio.py [ADDRESS]`.

client.py's calls with the async client `gopherpipe gen --asyncio` makes
(`EchoServiceAsyncClient` in service_aio.py); either server (server.py, threads, or
server_aio.py, asyncio) answers it. Certificates for tls:// and wss:// come from the
environment as for client.py.
"""

from __future__ import annotations

import sys

from service_aio import EchoServiceAsync, EchoServiceAsyncClient

from gopherpipe_runtime import InvalidArgumentError
from gopherpipe_runtime.aio import run
from gopherpipe_runtime.transport.tls import context_from_env


async def talk(echo: EchoServiceAsync) -> None:
    """Typed against the async contract: a client or a local implementation will do."""
    print(await echo.echo("Hello Gophers!"))
    result = await echo.repeat("Is this thing on? ", times=3)
    print(f"{result.text.strip()} ({result.times} times)")
    try:
        await echo.repeat("x", times=-1)
    except InvalidArgumentError as exc:
        print(f"server refused: {exc}")


async def main() -> None:
    address = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:7070"
    tls = context_from_env(server_side=False)
    async with EchoServiceAsyncClient.dial(address, tls=tls) as client:
        await talk(client.with_options(timeout=5.0))


if __name__ == "__main__":
    run(main())

"""Serve EchoService on asyncio: `python examples/echo/server_aio.py [ADDRESS]`.

The same service as server.py, written against the async interface `gopherpipe gen
--asyncio` makes (`EchoServiceAsync` in service_aio.py) and served by
`gopherpipe_runtime.aio.Server`: threaded and asyncio clients call it alike, over the
same wire. Prints the bound address once listening, then serves until Ctrl-C or SIGTERM
(a graceful drain). Runs on uvloop when it is installed (the `uvloop` extra).

Any address works: tcp://, unix://, tls://, ws://, wss://; certificates for tls:// and
wss:// come from the environment as for server.py.
"""

from __future__ import annotations

import logging
import sys

from service import Echoed
from service_aio import EchoServiceAsync, register_echo_service_async

from gopherpipe_runtime import InvalidArgumentError
from gopherpipe_runtime.aio import Server, run
from gopherpipe_runtime.transport.tls import context_from_env


class Echo(EchoServiceAsync):
    async def echo(self, text: str) -> str:
        return text

    async def repeat(self, text: str, times: int = 2) -> Echoed:
        if not 0 <= times <= 1000:
            raise InvalidArgumentError(f"times must be in 0..1000, got {times}")
        return Echoed(text=text * times, times=times)


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    address = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:7070"
    server = Server(address, tls=context_from_env(server_side=True))
    register_echo_service_async(server, Echo())
    await server.start()
    print(f"echo server (asyncio) listening on {server.addresses[0]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    run(main())

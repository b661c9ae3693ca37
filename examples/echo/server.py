"""Serve EchoService: `python examples/echo/server.py [ADDRESS]` (default tcp://127.0.0.1:7070).

Prints the bound address once listening, then serves until Ctrl-C.

Any address works: tcp://, unix://, tls://, ws://, wss://. For tls:// and wss:// the
certificates come from the environment (`transport.tls.context_from_env`):
GOPHERPIPE_TLS_CERT and GOPHERPIPE_TLS_KEY, and GOPHERPIPE_TLS_CA for the CA whose
client certificates the server requires (mTLS) or, in a client, the CA it trusts.
"""

from __future__ import annotations

import logging
import sys

from service import Echoed, EchoService
from service_server import register_echo_service

from gopherpipe_runtime import InvalidArgumentError, Server
from gopherpipe_runtime.transport.tls import context_from_env


class Echo(EchoService):
    def echo(self, text: str) -> str:
        return text

    def repeat(self, text: str, times: int = 2) -> Echoed:
        if not 0 <= times <= 1000:
            raise InvalidArgumentError(f"times must be in 0..1000, got {times}")
        return Echoed(text=text * times, times=times)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    address = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:7070"
    server = Server(address, tls=context_from_env(server_side=True))
    register_echo_service(server, Echo())
    server.start()
    print(f"echo server listening on {server.addresses[0]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""Call EchoService: `python examples/echo/client.py [ADDRESS]`.

Any address works: tcp://, unix://, tls://, ws://, wss://. For tls:// and wss:// the
certificates come from the environment (`transport.tls.context_from_env`):
GOPHERPIPE_TLS_CERT and GOPHERPIPE_TLS_KEY, and GOPHERPIPE_TLS_CA for the CA whose
client certificates the server requires (mTLS) or, in a client, the CA it trusts.
"""

from __future__ import annotations

import sys

from service import EchoService
from service_client import EchoServiceClient

from gopherpipe_runtime import InvalidArgumentError
from gopherpipe_runtime.transport.tls import context_from_env


def talk(echo: EchoService) -> None:
    """Typed against the contract: a client or a local implementation will do."""
    print(echo.echo("Hello Gophers!"))
    result = echo.repeat("Is this thing on? ", times=3)
    print(f"{result.text.strip()} ({result.times} times)")
    try:
        echo.repeat("x", times=-1)
    except InvalidArgumentError as exc:
        print(f"server refused: {exc}")


def main() -> None:
    address = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:7070"
    with EchoServiceClient.dial(address, tls=context_from_env(server_side=False)) as client:
        talk(client.with_options(timeout=5.0))


if __name__ == "__main__":
    main()

"""Serve tests/aio_lab.py's Lab on gopherpipe_runtime.aio.Server in a process of its own:
`aio_lab_serve.py ADDRESS[,ADDRESS...] [options JSON [harness JSON]]`.

Prints the bound addresses (one line, space-separated), then `serve_forever` until
SIGTERM/SIGINT (a drain of harness "grace" seconds, default 5) or stdin's end (the same
drain). Exits 0 after a clean stop. Harness: "tls": {"cert", "key", "client_ca"} as in
serve.py; "grace": seconds; "uvloop": true to run on uvloop (skipped when absent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aio_lab import Lab, Record, service_def

from gopherpipe_runtime.aio import Server
from gopherpipe_runtime.transport import tls as tls_transport


async def main() -> None:
    addresses = sys.argv[1].split(",")
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    harness = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    if "tls" in harness:
        tls = harness["tls"]
        options["tls"] = tls_transport.server_context(
            tls["cert"], tls["key"], client_ca=tls.get("client_ca")
        )
    grace = harness.get("grace", 5.0)
    server = Server(*addresses, **options)
    server.add_service(service_def(Lab(Record())))
    await server.start()
    print(" ".join(server.addresses), flush=True)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            stopping.append(loop.create_task(server.stop(grace)))

    # stdin may be a file (/dev/null), which a loop cannot watch: then signals only.
    with contextlib.suppress(PermissionError, ValueError):
        loop.add_reader(sys.stdin.fileno(), stdin_readable)
    await server.serve_forever(grace)


if __name__ == "__main__":
    asyncio.run(main())

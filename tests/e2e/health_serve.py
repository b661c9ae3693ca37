"""A server for the health and SIGTERM tests: `health_serve.py ADDRESS GRACE`.

Serves `Slow.wait() -> str`, which prints "started" on stdout and returns "done"
once the test writes "release" on our stdin. Prints the bound address first, then
runs `serve_forever(grace=GRACE)` and prints "serve_forever returned" once it has
(so the test sees SIGTERM drain and return, not the process killed). Stdin's EOF
(the test finished or died) releases the call and stops the server.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from gopherpipe_runtime import Server
from gopherpipe_runtime.service import MethodDef, MethodKind, ServiceDef

address, grace = sys.argv[1], float(sys.argv[2])
release = threading.Event()


def wait() -> str:
    print("started", flush=True)
    if not release.wait(60):
        raise TimeoutError("the test never released the call")
    return "done"


def identity(value: Any) -> Any:
    return value


server = Server(address)
server.add_service(
    ServiceDef("Slow", {"wait": MethodDef(MethodKind.UNARY, lambda args: (), wait, identity)})
)
server.start()
print(server.addresses[0], flush=True)


def read_commands() -> None:
    for line in sys.stdin:
        if line.strip() == "release":
            release.set()
    release.set()
    server.stop(0)


threading.Thread(target=read_commands, daemon=True).start()
server.serve_forever(grace=grace)
print("serve_forever returned", flush=True)

"""A server for the health and SIGTERM tests: `health_serve.py ADDRESS GRACE`.

Serves `Slow.wait() -> str`, which prints "started" on stdout and returns "done"
once the test writes "release" on our stdin. Runs `serve_forever(grace=GRACE)`,
prints the bound address once its SIGTERM handler is in, and prints "serve_forever
returned" once it has (so the test sees SIGTERM drain and return, not the process
killed). Stdin's EOF
(the test finished or died) releases the call and stops the server.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
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
default_sigterm = signal.getsignal(signal.SIGTERM)


def announce_when_armed() -> None:
    # The address is the test's go-ahead, SIGTERM included: print it only once
    # serve_forever has put its handler in (on a loaded machine the main thread may
    # get there late, and a SIGTERM before it would kill the process outright).
    deadline = time.monotonic() + 30
    while signal.getsignal(signal.SIGTERM) is default_sigterm and time.monotonic() < deadline:
        time.sleep(0.001)
    print(server.addresses[0], flush=True)


def read_commands() -> None:
    for line in sys.stdin:
        if line.strip() == "release":
            release.set()
    release.set()
    server.stop(0)


threading.Thread(target=read_commands, daemon=True).start()
threading.Thread(target=announce_when_armed, daemon=True).start()
server.serve_forever(grace=grace)
print("serve_forever returned", flush=True)

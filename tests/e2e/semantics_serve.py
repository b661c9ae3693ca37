"""Serve Semantics in its own process: `semantics_serve.py STUB_DIR ADDRESS [setup JSON]`.

The setup: {"interceptors": [...], "propagate_metadata": [...]}, where an interceptor is
"record:NAME" (semantics_impl.Recording), "log" (LoggingInterceptor writing to stderr
as "LOG <message>") or "auth:TOKEN" (TokenAuthServer accepting TOKEN). Prints the bound
address, then serves until stdin closes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading

stub_dir, address = sys.argv[1], sys.argv[2]
setup = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
sys.path[:0] = [stub_dir, os.path.dirname(os.path.abspath(__file__))]

from e2e_semantics_server import register_semantics  # type: ignore[import-not-found]  # noqa: E402
from semantics_impl import Recording, SemanticsImpl  # noqa: E402

from gopherpipe_runtime import Server  # noqa: E402
from gopherpipe_runtime.interceptors import (  # noqa: E402
    Interceptor,
    LoggingInterceptor,
    TokenAuthServer,
)

interceptors: list[Interceptor] = []
for spec in setup.get("interceptors", []):
    kind, _, arg = spec.partition(":")
    if kind == "record":
        interceptors.append(Recording(arg))
    elif kind == "log":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("LOG %(message)s"))
        logger = logging.getLogger("semantics.calls")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        interceptors.append(LoggingInterceptor(logger))
    elif kind == "auth":
        interceptors.append(TokenAuthServer([arg]))
    else:
        raise SystemExit(f"unknown interceptor {spec!r}")

server = Server(
    address,
    interceptors=interceptors,
    propagate_metadata=setup.get("propagate_metadata", ()),
)
register_semantics(server, SemanticsImpl())
server.start()
print(" ".join(server.addresses), flush=True)


def stop_when_parent_goes() -> None:
    sys.stdin.read()
    server.stop(1.0)


threading.Thread(target=stop_when_parent_goes, daemon=True).start()
server.serve_forever()

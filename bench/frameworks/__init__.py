"""One module per framework, each with the same shape, so a new scenario is one function per module.

A framework module defines:

- ``LABEL``: the column heading.
- ``prepare()`` (optional): runs once in the runner process before any child starts.
- ``serve() -> (address, stop)``: runs in the server process; starts an echo server on
  127.0.0.1 with an OS-chosen port and returns its address and a ``stop(grace)`` callable.
- ``SCENARIOS``: scenario name -> ``fn(address, payload, params) -> dict of figures``, run in a
  fresh client process. A framework may lack a scenario (the raw socket has no multiplexing);
  the report shows it as n/a. Streaming scenarios (server-stream messages/s, bidi ping-pong)
  are meant to be added here the same way.
- ``TRANSPORTS`` (optional): the transports its ``serve(transport)`` can listen on for the
  transports comparison (``--transports``, bench/transports.py); "tcp" is what ``serve()``
  does without one. The address it returns carries the scheme (``tls://``, ``ws://``...), so
  its scenario functions pick the matching client from the address alone, with the test
  certificates in ``CERTS`` (server-only TLS: the client checks the server's certificate
  against ``ca.pem``, and presents none).

The concurrent-streams scenario (bench/streams.py) has its own server per stream count, so a
module taking part also defines ``STREAM_SERVERS`` (variant -> ``serve(params)``, as
``serve()`` but sized by ``params["streams"]`` where the framework needs it),
``broadcast_subscribe(address, params, say)`` and ``broadcast_publisher(address)``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

# The project's test certificates (CN=localhost, SANs localhost, 127.0.0.1, ::1).
CERTS = Path(__file__).resolve().parent.parent.parent / "examples" / "certs"

# Report column order: the floor first, then the frameworks it bounds.
FRAMEWORKS: dict[str, str] = {
    "rawsocket": "bench.frameworks.rawsocket",
    "gopherpipe": "bench.frameworks.gopherpipe",
    "grpc": "bench.frameworks.grpcio",
}

# Concurrent-streams column -> the framework module that serves it (grpc has two servers).
STREAM_VARIANTS: dict[str, str] = {
    "gopherpipe": "gopherpipe",
    "grpc": "grpc",
    "grpc_aio": "grpc",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(FRAMEWORKS[name])

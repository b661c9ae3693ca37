"""The asyncio bench: GopherPipe's asyncio runtime beside grpc.aio and grpclib, in one run.

``python -m bench.aio`` (``make bench-aio``); ``--quick`` is a smoke run. The map:

  runner.py          the command line, the rounds (frameworks alternate A B C A B C...),
                     the open-streams step, medians, the table and --json
  worker.py          the child processes: a server, one measuring client, a stream holder
  measure.py         the async timing loops every framework measures through
  gopherpipe_aio.py  gopherpipe_runtime.aio.Server + the `gopherpipe gen --asyncio` stubs
  grpc_aio.py        grpcio's grpc.aio server and channel
  grpclib_aio.py     grpclib's Server and Channel

A framework module defines LABEL, ``prepare()`` (runs once in the runner: stub generation),
``async serve(kind, params) -> (address, async stop(grace))`` with kind "echo" (the echo and
stream-bench services) or "streams" (the broadcast service), ``SCENARIOS`` (name ->
``async fn(address, payload, params) -> figures``) and ``async hold_streams(address,
params, say, release)``. Every server runs in its own process, every measuring client in
another, one framework at a time; the contracts are bench/echo_service.py,
bench/streaming_service.py and bench/broadcast_service.py and their twins in bench/protos.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Column order: GopherPipe first, then the two it is compared with.
FRAMEWORKS: dict[str, str] = {
    "gopherpipe": "bench.aio.gopherpipe_aio",
    "grpc_aio": "bench.aio.grpc_aio",
    "grpclib": "bench.aio.grpclib_aio",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(FRAMEWORKS[name])

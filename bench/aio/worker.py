"""Child-process entry points of the asyncio bench; bench/aio/runner.py starts these.

python -m bench.aio.worker serve FRAMEWORK KIND LOOP PARAMS_JSON
    KIND "echo" (the echo and stream-bench services) or "streams" (the broadcast service);
    prints "READY <address>", serves until stdin closes, then stops the server (closing
    stdin rather than a signal: a runner that dies takes its servers with it).
python -m bench.aio.worker measure FRAMEWORK SCENARIO ADDRESS LOOP PAYLOAD_SIZE PARAMS_JSON
    runs one scenario and prints "RESULT <json>".
python -m bench.aio.worker hold FRAMEWORK ADDRESS LOOP PARAMS_JSON
    opens params["count"] server streams on one connection, prints "OPEN <n>" once each has
    its welcome, holds them until stdin closes, then prints "RESULT <json>".

LOOP is "asyncio" (the standard loop) or "uvloop"; every process of a run uses the same.
Each raises its soft RLIMIT_NOFILE to the hard limit first. The libraries' log records go to
stderr (which the runner echoes) at WARNING, or at $BENCH_LOG (e.g. DEBUG) when set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from bench import measure as sync_measure
from bench.aio import FRAMEWORKS, load
from bench.worker import READY, RESULT

STOP_GRACE_S = 1.0


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name != "asyncio":
        raise ValueError(f"loop {name!r}: asyncio or uvloop")
    return asyncio.new_event_loop


def _run(loop: str, main: Coroutine[Any, Any, int]) -> int:
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        return runner.run(main)


def _stdin_closed() -> asyncio.Future[None]:
    """A future done when stdin reaches EOF, read by a thread (blocked in read, so it holds
    no GIL while the loop runs)."""
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[None] = loop.create_future()

    def done() -> None:
        if not closed.done():
            closed.set_result(None)

    def read() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(done)

    threading.Thread(target=read, name="stdin-lifeline", daemon=True).start()
    return closed


def _say(line: str) -> None:
    print(line, flush=True)


async def _serve(framework: str, kind: str, params: str) -> int:
    address, stop = await load(framework).serve(kind, json.loads(params))
    _say(READY + address)
    try:
        await _stdin_closed()
    finally:
        await stop(STOP_GRACE_S)
    return 0


async def _measure(framework: str, scenario: str, address: str, size: str, params: str) -> int:
    payload = sync_measure.make_payload(int(size))
    figures = await load(framework).SCENARIOS[scenario](address, payload, json.loads(params))
    _say(RESULT + json.dumps(figures))
    return 0


async def _hold(framework: str, address: str, params: str) -> int:
    figures = await load(framework).hold_streams(address, json.loads(params), _say, _stdin_closed())
    _say(RESULT + json.dumps(figures))
    return 0


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str]) -> int:
    _raise_nofile()
    logging.basicConfig(level=os.environ.get("BENCH_LOG", "WARNING"))
    if len(argv) == 5 and argv[0] == "serve" and argv[1] in FRAMEWORKS:
        framework, kind, loop, params = argv[1:]
        return _run(loop, _serve(framework, kind, params))
    if len(argv) == 7 and argv[0] == "measure" and argv[1] in FRAMEWORKS:
        framework, scenario, address, loop, size, params = argv[1:]
        return _run(loop, _measure(framework, scenario, address, size, params))
    if len(argv) == 5 and argv[0] == "hold" and argv[1] in FRAMEWORKS:
        framework, address, loop, params = argv[1:]
        return _run(loop, _hold(framework, address, params))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A small service for the asyncio Pipe's tests, served by the THREADED Server.

Built by hand as a `ServiceDef` (wire values in and out, no generated stubs), so the
aio Pipe is tested on its own: `Pipe.unary` / `Pipe.stream` name the methods.

In-process: ``service(name)`` and the module's `STATE`, which the handlers fill in
(items produced per stream tag, calls that saw their cancellation, attempts); from
another process, the `cancelled` and `produced` methods read it.
As a script: ``aio_pipe_service.py ADDRESS [NAME]`` serves it, prints the bound
address on stdout and serves until stdin closes or the process is killed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from gopherpipe_runtime import RpcError, Server, UnavailableError, current_call
from gopherpipe_runtime.service import MethodDef, MethodKind, ServiceDef


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.produced: Counter[str] = Counter()
        """Items each server stream (by tag) has produced: what flow control bounds."""
        self.cancelled: list[str] = []
        """Tags of `hold` calls whose handler saw the call cancelled."""
        self.started: list[str] = []
        """Tags of `hold` calls whose handler has started."""
        self.attempts: Counter[str] = Counter()


STATE = State()


def _args(wire: Any) -> tuple[Any, ...]:
    return tuple(wire)


def _same(value: Any) -> Any:
    return value


def service(name: str = "server") -> ServiceDef:
    def echo(value: Any) -> Any:
        return value

    def who() -> str:
        return name

    def hold(tag: str, seconds: float) -> str:
        call = current_call()
        with STATE.lock:
            STATE.started.append(tag)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if call.cancelled:
                with STATE.lock:
                    STATE.cancelled.append(tag)
                return "cancelled"
            time.sleep(0.005)
        return "done"

    def fail(code: int, message: str, trailers: dict[str, str]) -> None:
        current_call().set_trailers(trailers)
        raise RpcError(code, message)

    def flaky(key: str, failures: int) -> int:
        with STATE.lock:
            STATE.attempts[key] += 1
            attempts = STATE.attempts[key]
        if attempts <= failures:
            raise UnavailableError(f"flaky: attempt {attempts} of {key}")
        return attempts

    def count(n: int, tag: str) -> Iterator[int]:
        i = 0
        while n < 0 or i < n:
            with STATE.lock:
                STATE.produced[tag] += 1
            yield i
            i += 1

    def total(items: Iterable[int]) -> int:
        return sum(items)

    def double(items: Iterable[int]) -> Iterator[int]:
        for item in items:
            yield 2 * item

    def headers() -> str:
        current_call().set_headers({"x-head": "h"})
        current_call().set_trailers({"x-trail": "t"})
        return "ok"

    def cancelled() -> list[str]:
        with STATE.lock:
            return list(STATE.cancelled)

    def started() -> list[str]:
        with STATE.lock:
            return list(STATE.started)

    def produced(tag: str) -> int:
        with STATE.lock:
            return STATE.produced[tag]

    def meta(key: str) -> str | None:
        return current_call().metadata.get(key)

    def unary(fn: Any) -> MethodDef:
        return MethodDef(MethodKind.UNARY, _args, fn, _same)

    return ServiceDef(
        "T",
        {
            "echo": unary(echo),
            "who": unary(who),
            "hold": unary(hold),
            "fail": unary(fail),
            "flaky": unary(flaky),
            "headers": unary(headers),
            "cancelled": unary(cancelled),
            "started": unary(started),
            "produced": unary(produced),
            "meta": unary(meta),
            "count": MethodDef(MethodKind.SERVER_STREAM, _args, count, _same, encode_item=_same),
            "total": MethodDef(
                MethodKind.CLIENT_STREAM, _args, total, _same, stream_param=0, decode_item=_same
            ),
            "double": MethodDef(
                MethodKind.BIDI,
                _args,
                double,
                _same,
                stream_param=0,
                decode_item=_same,
                encode_item=_same,
            ),
        },
    )


def main() -> None:
    address = sys.argv[1]
    name = sys.argv[2] if len(sys.argv) > 2 else "server"
    server = Server(address)
    server.add_service(service(name))
    server.start()
    print(server.addresses[0], flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills us)
    server.stop(0.5)


if __name__ == "__main__":
    main()

"""A service of every shape for the asyncio Server's tests, written by hand: its
`ServiceDef` (as a generated ``register_x_async`` builds one) and a threaded client
(`LabClient`, as a generated sync client stub would be), so the tests need no code
generator. The implementation records what happened on the server side (`Record`) so a
test can see a handler being cancelled or a producer being held back by credit.

Imported by tests/test_aio_server*.py in process and by tests/e2e/aio_lab_serve.py in a
server process of its own.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from gopherpipe_runtime import Chan, ClientBase, InvalidArgumentError, RpcError, StatusCode
from gopherpipe_runtime.aio import Chan as AioChan
from gopherpipe_runtime.aio import current_call
from gopherpipe_runtime.convert import check_args, check_int, check_str
from gopherpipe_runtime.service import MethodDef, MethodKind, ServiceDef

SERVICE = "Lab"


class Record:
    """What the handlers did, readable from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.produced = 0
        self.stream_closed = threading.Event()
        self.received: list[int] = []

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


class Lab:
    """The implementation: async methods, an async generator, a sync one."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.tasks: set[asyncio.Task[None]] = set()

    async def echo(self, text: str) -> str:
        return text

    def sync_echo(self, text: str) -> str:
        return text

    async def sleep(self, seconds: float) -> str:
        record = self.record
        record.started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            record.cancelled.set()
            raise
        record.finished.set()
        return "slept"

    async def fail(self, code: int, message: str) -> str:
        if code == 0:
            raise ValueError(message)  # not an RpcError: INTERNAL
        raise RpcError(code, message)

    async def wrong(self) -> Any:
        return 42  # not a str: the server's bug, INTERNAL

    async def meta(self, key: str) -> str:
        call = current_call()
        call.set_headers({"h": "head"})
        call.set_trailers({"t": "tail"})
        return f"{call.metadata.get(key, '')}|{call.peer.transport}|{call.time_remaining() is not None}"

    async def big(self, size: int) -> str:
        return "x" * size

    async def whoami(self) -> str:
        """The caller as the handler sees it: transport and certificate subject."""
        peer = current_call().peer
        identity = getattr(peer, "identity", None)
        return f"{getattr(peer, 'transport', '?')}|{identity.subject if identity else ''}"

    async def stats(self) -> str:
        """The record, for a test in another process."""
        record = self.record
        return json.dumps(
            {
                "started": record.started.is_set(),
                "cancelled": record.cancelled.is_set(),
                "finished": record.finished.is_set(),
                "stream_closed": record.stream_closed.is_set(),
                "produced": record.produced,
            }
        )

    async def reset(self) -> str:
        self.record.reset()
        return ""

    async def count(self, n: int) -> AsyncIterator[int]:
        record = self.record
        record.started.set()
        try:
            for i in range(n):
                record.produced = i + 1
                yield i
        except (asyncio.CancelledError, GeneratorExit):
            record.cancelled.set()
            raise
        finally:
            record.stream_closed.set()

    async def idle(self, n: int) -> AsyncIterator[int]:
        """Yields `n` items, then waits for ever (an open stream with nothing to send)."""
        for i in range(n):
            yield i
        await asyncio.Event().wait()

    async def ticking(self, n: int) -> AsyncIterator[int]:
        """Yields `n` items, giving the loop a turn every 7: batches end at those turns."""
        record = self.record
        record.started.set()
        try:
            for i in range(n):
                if i % 7 == 6:
                    await asyncio.sleep(0)
                record.produced = i + 1
                yield i
        except (asyncio.CancelledError, GeneratorExit):
            record.cancelled.set()
            raise
        finally:
            record.stream_closed.set()

    def failing_sync(self, n: int) -> Iterator[int]:
        yield from range(n)
        raise RpcError(StatusCode.OUT_OF_RANGE, "no more")

    def listed(self, n: int) -> list[int]:
        return list(range(n))

    async def later(self, n: int) -> AsyncIterator[int]:
        """A coroutine that returns the stream (not an async generator itself)."""
        await asyncio.sleep(0)
        return self.count(n)

    def threaded_chan(self, n: int) -> Chan[int]:
        """A threaded Chan fed from another thread, slowly: read without blocking the loop."""
        chan: Chan[int] = Chan(2)

        def feed() -> None:
            for i in range(n):
                chan.send(i)
            chan.close()

        threading.Thread(target=feed, daemon=True).start()
        return chan

    async def aio_chan(self, n: int) -> AioChan[int]:
        """An asyncio Chan fed by a task of the handler's: slow producer, small buffer."""
        chan: AioChan[int] = AioChan(4)

        async def feed() -> None:
            async with chan:
                for i in range(n):
                    await chan.send(i)

        self.tasks.add(asyncio.get_running_loop().create_task(feed()))
        return chan

    async def relay(self, factor: int, items: AsyncIterator[int]) -> AsyncIterator[int]:
        """Bidi by handing the inbound stream back as the outbound source (no copy)."""
        return items

    async def failing_stream(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i
        raise RpcError(StatusCode.ABORTED, "stopped on purpose")

    async def total(self, items: AsyncIterator[int]) -> int:
        record = self.record
        record.started.set()
        result = 0
        async for item in items:
            record.received.append(item)
            result += item
        return result

    async def first(self, items: AsyncIterator[int]) -> int:
        """Reads one item and leaves the rest: the client is told to stop."""
        async for item in items:
            return item
        return -1

    async def double(self, factor: int, items: AsyncIterator[int]) -> AsyncIterator[int]:
        async for item in items:
            yield item * factor


def _args(name: str, *checks: Any) -> Any:
    def decode(value: Any) -> tuple[Any, ...]:
        args = check_args(value, name, len(checks), len(checks))
        return tuple(
            check(arg, f"{name}(): argument {i}")
            for i, (check, arg) in enumerate(zip(checks, args, strict=True))
        )

    return decode


def _number(value: Any, path: str) -> float:
    if type(value) not in (int, float):
        raise InvalidArgumentError(f"{path}: expected a number, got {type(value).__name__}")
    return float(value)


def _str_out(value: Any) -> Any:
    return check_str(value, "result")


def _int(value: Any) -> Any:
    return check_int(value, "item")


def service_def(impl: Lab) -> ServiceDef:
    """Lab as `Server.add_service` takes it (what a generated async stub would build)."""
    unary, server, client, bidi = (
        MethodKind.UNARY,
        MethodKind.SERVER_STREAM,
        MethodKind.CLIENT_STREAM,
        MethodKind.BIDI,
    )
    return ServiceDef(
        SERVICE,
        {
            "echo": MethodDef(unary, _args("echo", check_str), impl.echo, _str_out),
            "sync_echo": MethodDef(unary, _args("sync_echo", check_str), impl.sync_echo, _str_out),
            "sleep": MethodDef(unary, _args("sleep", _number), impl.sleep, _str_out),
            "fail": MethodDef(unary, _args("fail", check_int, check_str), impl.fail, _str_out),
            "wrong": MethodDef(unary, _args("wrong"), impl.wrong, _str_out),
            "stats": MethodDef(unary, _args("stats"), impl.stats, _str_out),
            "whoami": MethodDef(unary, _args("whoami"), impl.whoami, _str_out),
            "big": MethodDef(unary, _args("big", check_int), impl.big, _str_out),
            "reset": MethodDef(unary, _args("reset"), impl.reset, _str_out),
            "meta": MethodDef(unary, _args("meta", check_str), impl.meta, _str_out),
            "count": MethodDef(
                server, _args("count", check_int), impl.count, _int, encode_item=_int
            ),
            "idle": MethodDef(server, _args("idle", check_int), impl.idle, _int, encode_item=_int),
            "ticking": MethodDef(
                server, _args("ticking", check_int), impl.ticking, _int, encode_item=_int
            ),
            "failing_sync": MethodDef(
                server, _args("failing_sync", check_int), impl.failing_sync, _int, encode_item=_int
            ),
            "listed": MethodDef(
                server, _args("listed", check_int), impl.listed, _int, encode_item=_int
            ),
            "later": MethodDef(
                server, _args("later", check_int), impl.later, _int, encode_item=_int
            ),
            "threaded_chan": MethodDef(
                server,
                _args("threaded_chan", check_int),
                impl.threaded_chan,
                _int,
                encode_item=_int,
            ),
            "failing_stream": MethodDef(
                server,
                _args("failing_stream", check_int),
                impl.failing_stream,
                _int,
                encode_item=_int,
            ),
            "total": MethodDef(
                client, _args("total"), impl.total, _int, stream_param=0, decode_item=_int
            ),
            "first": MethodDef(
                client, _args("first"), impl.first, _int, stream_param=0, decode_item=_int
            ),
            "aio_chan": MethodDef(
                server, _args("aio_chan", check_int), impl.aio_chan, _int, encode_item=_int
            ),
            "relay": MethodDef(
                bidi,
                _args("relay", check_int),
                impl.relay,
                _int,
                stream_param=1,
                decode_item=_int,
                encode_item=_int,
            ),
            "double": MethodDef(
                bidi,
                _args("double", check_int),
                impl.double,
                _int,
                stream_param=1,
                decode_item=_int,
                encode_item=_int,
            ),
        },
    )


class LabClient(ClientBase):
    """A threaded client of Lab, as a generated client stub is."""

    _gp_service_name = SERVICE

    def echo(self, text: str) -> str:
        return self._gp_unary("echo", [text], _str_out)

    def sync_echo(self, text: str) -> str:
        return self._gp_unary("sync_echo", [text], _str_out)

    def sleep(self, seconds: float) -> str:
        return self._gp_unary("sleep", [seconds], _str_out)

    def fail(self, code: int, message: str) -> str:
        return self._gp_unary("fail", [code, message], _str_out)

    def wrong(self) -> str:
        return self._gp_unary("wrong", [], _str_out)

    def meta(self, key: str) -> str:
        return self._gp_unary("meta", [key], _str_out)

    def whoami(self) -> str:
        return self._gp_unary("whoami", [], _str_out)

    def stats(self) -> dict[str, Any]:
        return json.loads(self._gp_unary("stats", [], _str_out))  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._gp_unary("reset", [], _str_out)

    def stream(self, method: str, n: int) -> Chan[int]:
        return self._gp_server_stream(method, [n], _int)

    def total(self, items: Iterator[int] | list[int] | Chan[int]) -> int:
        return self._gp_client_stream("total", [], items, _int, _int)

    def first(self, items: Iterator[int] | list[int] | Chan[int]) -> int:
        return self._gp_client_stream("first", [], items, _int, _int)

    def relay(self, items: Iterator[int] | list[int] | Chan[int]) -> Chan[int]:
        return self._gp_bidi("relay", [1], items, _int, _int)

    def double(self, factor: int, items: Iterator[int] | list[int] | Chan[int]) -> Chan[int]:
        return self._gp_bidi("double", [factor], items, _int, _int)


__all__ = ["SERVICE", "Lab", "LabClient", "Record", "RpcError", "service_def"]

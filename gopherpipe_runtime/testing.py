"""Serve an implementation to a client inside one process, for your unit tests.

    from gopherpipe_runtime.testing import serve_in_memory

    def test_history() -> None:
        with serve_in_memory(register_chat_service, Chat()) as pipe:
            client = ChatServiceClient(pipe)
            assert client.history("lobby") == []

The call goes through everything a deployed call does -- the generated client
and server stubs, the codec, TCP_LITE's handshake and frames, flow control,
interceptors, deadlines, the server's thread pool -- but the server listens on
a ``memory://`` address (transport/memory.py): no TCP port is opened and no
Unix socket file is created, so tests run in parallel without port clashes and
nothing outside the process can connect. Each connection is an anonymous
`socket.socketpair()` (transport/memory.py says why a socketpair rather than a
socket-less object).

`serve_in_memory` serves one service; for several, or for a server of your own
options, use `memory_address()` with `Server` and `Pipe` directly::

    address = memory_address()
    with Server(address, interceptors=[...]) as server:
        register_chat_service(server, Chat())
        register_billing(server, Billing())
        server.start()
        with Pipe(address) as pipe:
            ...

On asyncio, `serve_in_memory_async` does the same with `gopherpipe_runtime.aio`'s
Server and Pipe (the generated ``register_x_async``, ``XAsyncClient(pipe)``)::

    async with serve_in_memory_async(register_chat_service_async, Chat()) as pipe:
        assert await ChatServiceAsyncClient(pipe).history("lobby") == []

A memory:// server is reachable only from the process that started it (not
from a child after fork).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from .pipe import Pipe
from .server import Server

if TYPE_CHECKING:
    from . import aio

__all__ = ["memory_address", "serve_in_memory", "serve_in_memory_async"]

_Impl = TypeVar("_Impl")
_counter = itertools.count(1)


def memory_address(name: str | None = None) -> str:
    """A memory:// address: ``memory://NAME``, or a fresh name unique in this process."""
    if name is None:
        name = f"gopherpipe-test-{os.getpid()}-{next(_counter)}"
    return f"memory://{name}"


@contextmanager
def serve_in_memory(
    register: Callable[[Server, _Impl], object],
    impl: _Impl,
    /,
    *,
    server_options: Mapping[str, Any] | None = None,
    pipe_options: Mapping[str, Any] | None = None,
) -> Iterator[Pipe]:
    """Serve `impl` with `register` (the generated ``register_x``) on a fresh
    memory:// server, and yield a `Pipe` connected to it; both are closed when the
    block ends (the server with no grace: calls still open end UNAVAILABLE).

    `server_options` and `pipe_options` are the keyword arguments of `Server` and
    `Pipe` (interceptors, limits, codec, keepalive, ...), so a test can run the
    configuration it ships with.
    """
    address = memory_address()
    server = Server(address, **dict(server_options or {}))
    register(server, impl)
    server.start()
    try:
        with Pipe(address, **dict(pipe_options or {})) as pipe:
            yield pipe
    finally:
        server.stop(0)


@asynccontextmanager
async def serve_in_memory_async(
    register: Callable[[aio.Server, _Impl], object],
    impl: _Impl,
    /,
    *,
    server_options: Mapping[str, Any] | None = None,
    pipe_options: Mapping[str, Any] | None = None,
) -> AsyncIterator[aio.Pipe]:
    """`serve_in_memory` on asyncio: serve `impl` with `register` (the generated
    ``register_x_async``) on a fresh memory:// `aio.Server` on the running loop, and
    yield an `aio.Pipe` connected to it; both are closed when the block ends."""
    from .aio import Pipe as AsyncPipe
    from .aio import Server as AsyncServer

    address = memory_address()
    server = AsyncServer(address, **dict(server_options or {}))
    register(server, impl)
    await server.start()
    pipe = AsyncPipe(address, **dict(pipe_options or {}))
    try:
        yield pipe
    finally:
        await pipe.close()
        await server.stop(0)

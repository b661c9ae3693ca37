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

A memory:// server is reachable only from the process that started it (not
from a child after fork).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from .pipe import Pipe
from .server import Server

__all__ = ["memory_address", "serve_in_memory"]

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

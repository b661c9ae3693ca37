"""`current_call()` for asyncio handlers: the call a task is serving, via contextvars.

A task inherits the context it was created in, so a handler's own child tasks see
its call too; the threaded runtime's thread-local (`gopherpipe_runtime.context`) is
not used here, since one thread runs every task of a loop.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from ..context import CallContext

_current: ContextVar[CallContext | None] = ContextVar("gopherpipe_aio_call", default=None)


def current_call() -> CallContext:
    """The call the running task serves; RuntimeError outside a handler."""
    call = _current.get()
    if call is None:
        raise RuntimeError("current_call() used outside a GopherPipe asyncio handler")
    return call


def set_current_call(call: CallContext | None) -> Token[CallContext | None]:
    return _current.set(call)


def serving_call() -> CallContext | None:
    """The call being served, or None: what an outgoing call inherits (deadline, metadata)."""
    return _current.get()

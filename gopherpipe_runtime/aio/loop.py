"""run(): asyncio.run with uvloop's event loop when uvloop is installed.

uvloop is an optional extra (``pip install gopherpipe[uvloop]``), never required: without
it `run` is plain ``asyncio.run``. Nothing else in `gopherpipe_runtime.aio` depends on
which loop runs it; users with their own loop setup can ignore this helper.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None when uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], *, debug: bool | None = None) -> T:
    """Run `main` to completion on a new event loop and close it, like ``asyncio.run``.

    The loop is uvloop's when uvloop is installed (the ``uvloop`` extra), else asyncio's
    default; `debug` is passed on as to ``asyncio.run``.
    """
    factory = _uvloop_factory()
    if factory is None:
        return asyncio.run(main, debug=debug)
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)

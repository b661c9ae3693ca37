"""What a child process forgets of its parent after `os.fork()`.

A child starts with one thread (the one that forked) and a copy of the parent's
memory: connections whose sockets it shares with the parent, locks that parent
threads may have held at that moment (and that nobody in the child will ever
release), and bookkeeping for threads that do not exist in the child. Each module
holding such state registers a reset with `reset_in_child`; they run in the child
right after the fork (`os.register_at_fork(after_in_child=...)`), in registration
order, before the child runs any other Python code. A reset runs alone, so it needs
no lock, and it must never write to or shut down an inherited socket: the parent
still uses it (closing the child's own file descriptor is fine).

Registered today: pipe.py's (every live `Pipe` forgets its connection and makes new
locks, so the child's next call dials a connection of its own). A process-wide
helper thread (a keepalive timer, say) registers here the reset that forgets it, so
that the child starts a fresh one when it needs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger("gopherpipe.fork")

_resets: list[Callable[[], None]] = []


def reset_in_child(reset: Callable[[], None]) -> Callable[[], None]:
    """Run `reset` in every child process right after `os.fork()`; returns it (a decorator)."""
    _resets.append(reset)
    return reset


def _after_fork_in_child() -> None:
    for reset in _resets:
        try:
            reset()
        except Exception:
            # One broken reset must not leave the others undone: the child would
            # then share a socket with its parent.
            log.exception("resetting %r after fork failed", reset)


os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["reset_in_child"]

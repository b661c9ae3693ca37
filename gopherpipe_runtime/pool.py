"""A bounded pool of handler threads.

Lighter than concurrent.futures (no Future per task): the server never needs a
task's result, only that it runs. Threads start on demand up to `max_workers`
and stay; `max_pending` caps queued plus running tasks so a flood is refused
instead of queued without limit.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

_STOP = object()


class WorkerPool:
    def __init__(self, max_workers: int, max_pending: int, name: str = "gopherpipe-worker") -> None:
        if max_workers < 1 or max_pending < max_workers:
            raise ValueError("need max_workers >= 1 and max_pending >= max_workers")
        self.max_workers = max_workers
        self.max_pending = max_pending
        self._name = name
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._pending = 0
        self._closed = False

    @property
    def pending(self) -> int:
        return self._pending

    def try_submit(self, fn: Callable[..., object], *args: object) -> bool:
        """Queue `fn(*args)`; False (and nothing queued) when the pool is full or closed."""
        with self._lock:
            if self._closed or self._pending >= self.max_pending:
                return False
            self._pending += 1
            # More tasks in flight than threads means one of them has nobody to run it.
            if self._pending > len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._run, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put((fn, args))
        return True

    def _run(self) -> None:
        get = self._queue.get
        while True:
            task = get()
            if task is _STOP:
                return
            fn, args = task
            try:
                fn(*args)
            except BaseException:  # a task must never take its worker down with it
                traceback.print_exc()
            finally:
                with self._lock:
                    self._pending -= 1

    def shutdown(self, timeout: float | None = None) -> None:
        """Let queued tasks finish, then stop every worker (waiting up to `timeout`)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

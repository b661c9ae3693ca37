"""The Retries implementation served by the end-to-end server process."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

from e2e_retries import Retries  # type: ignore[import-not-found]

from gopherpipe_runtime import Chan, UnavailableError, current_call

HOLD_LIMIT_S = 60.0


class RetriesImpl(Retries):  # type: ignore[misc]
    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, key: str) -> int:
        with self._lock:
            self._seen[key] += 1
            return self._seen[key]

    def get(self, key: str, hold: str) -> str:
        self._count(key)
        if hold:
            Path(f"{hold}.{os.getpid()}").touch()
            call = current_call()
            end = time.monotonic() + HOLD_LIMIT_S
            # The test removes the file to let the call finish (bounded, and a cancelled
            # call stops waiting).
            while os.path.exists(hold) and not call.cancelled and time.monotonic() < end:
                time.sleep(0.005)
        return f"{key}@{os.getpid()}"

    def put(self, key: str, hold: str) -> str:
        return self.get(key, hold)

    def flaky(self, key: str, failures: int) -> int:
        calls = self._count(key)
        if calls <= failures:
            raise UnavailableError(f"flaky: call {calls} of {failures} failing")
        return calls

    def seen(self, key: str) -> int:
        with self._lock:
            return self._seen[key]

    def numbers(self, key: str, count: int) -> Chan[int]:
        self._count(key)
        out: Chan[int] = Chan(count + 1)
        for n in range(count):
            out.send(n)
        out.close()
        return out

"""The Semantics service (contract/e2e_semantics.py) and its recording interceptor."""

from __future__ import annotations

import threading
import time
from typing import Any

from e2e_semantics import Semantics  # type: ignore[import-not-found]
from e2e_semantics_client import SemanticsClient  # type: ignore[import-not-found]

from gopherpipe_runtime import Chan, PermissionDeniedError, RpcError, StatusCode, current_call
from gopherpipe_runtime.interceptors import CallInfo, Interceptor

EVENTS: list[str] = []
_lock = threading.Lock()


def record(event: str) -> None:
    with _lock:
        EVENTS.append(event)


class Recording(Interceptor):
    """Records each hook as 'NAME.hook method', and refuses calls whose metadata has
    deny=NAME (PERMISSION_DENIED) without proceeding."""

    def __init__(self, name: str) -> None:
        self.name = name

    def intercept(self, call: CallInfo, proceed: Any) -> Any:
        if call.method == "events":
            return proceed()
        record(f"{self.name}.intercept {call.method}")
        if call.metadata.get("deny") == self.name:
            raise PermissionDeniedError(f"denied by {self.name}")
        return proceed()

    def on_end(self, call: CallInfo, code: StatusCode, message: str) -> None:
        if call.method != "events":
            record(f"{self.name}.end {call.method} {code.name}")

    def on_send(self, call: CallInfo, item: Any) -> None:
        record(f"{self.name}.send {item}")

    def on_receive(self, call: CallInfo, item: Any) -> None:
        record(f"{self.name}.receive {item}")


class SemanticsImpl(Semantics):
    def meta(self, should_fail: bool) -> str:
        call = current_call()
        call.set_headers({"h": "unary"})
        call.set_trailers({"t": "unary"})
        record("handler meta")
        if should_fail:
            raise RpcError(StatusCode.FAILED_PRECONDITION, "asked to fail")
        return "ok"

    def count(self, n: int, should_fail: bool) -> Chan[int]:
        call = current_call()
        call.set_headers({"h": "count"})
        call.set_trailers({"t": "count"})
        record("handler count")
        out: Chan[int] = Chan(max(1, n))
        for i in range(n):
            out.send(i)
        if should_fail:
            out.close(RpcError(StatusCode.ABORTED, "stream failed"))
        else:
            out.close()
        return out

    def total(self, items: Chan[int]) -> int:
        current_call().set_trailers({"t": "total"})
        record("handler total")
        return sum(items)

    def echo(self, items: Chan[int]) -> Chan[int]:
        record("handler echo")
        out: Chan[int] = Chan(16)

        def run() -> None:
            for item in items:
                out.send(item)
            out.close()

        threading.Thread(target=run, daemon=True).start()
        return out

    def slow(self, tag: str, seconds: float) -> str:
        call = current_call()
        record(f"slow started {tag}")
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if call.cancelled:
                record(f"slow cancelled {tag}")
                return "cancelled"
            time.sleep(0.01)
        record(f"slow done {tag}")
        return "done"

    def onward(self, address: str, tag: str) -> str:
        started = time.monotonic()
        with SemanticsClient.dial(address) as client:
            try:
                client.slow(tag, 60.0)
                outcome = "OK"
            except RpcError as exc:
                outcome = exc.code.name
        elapsed = time.monotonic() - started
        record(f"onward {tag} {outcome} {elapsed:.3f}")
        return outcome

    def relay_metadata(self, address: str, key: str) -> str:
        with SemanticsClient.dial(address) as client:
            return str(client.metadata(key))

    def metadata(self, key: str) -> str:
        return current_call().metadata.get(key, "")

    def remaining(self) -> float:
        remaining = current_call().time_remaining()
        return -1.0 if remaining is None else remaining

    def relay_remaining(self, address: str) -> float:
        with SemanticsClient.dial(address) as client:
            return float(client.remaining())

    def events(self) -> list[str]:
        with _lock:
            return list(EVENTS)

"""The AllTypes implementation served by the end-to-end server process."""

from __future__ import annotations

import time

from e2e_alltypes import AllTypes, Everything, Point  # type: ignore[import-not-found]

from gopherpipe_runtime import RpcError, current_call


class AllTypesImpl(AllTypes):  # type: ignore[misc]
    def echo_everything(self, value: Everything) -> Everything:
        return value

    def echo_scalars(
        self, n: int, f: float, s: str, b: bytes, flag: bool
    ) -> tuple[int, float, str, bytes, bool]:
        return n, f, s, b, flag

    def echo_optional(self, value: list[Point] | None) -> list[Point] | None:
        return value

    def add(self, a: int, b: int = 10) -> int:
        return a + b

    def nothing(self) -> None:
        return None

    def fail(self, code: int, message: str) -> str:
        raise RpcError(code, message)

    def crash(self, message: str) -> str:
        raise ValueError(message)

    def wrong_return(self) -> int:
        return "not an int"  # type: ignore[return-value]

    def sleep(self, seconds: float) -> bool:
        call = current_call()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if call.cancelled:
                return True
            time.sleep(0.005)
        return call.cancelled

    def whoami(self) -> dict[str, str]:
        call = current_call()
        info = dict(call.metadata)
        info["peer"] = call.peer
        info["method"] = f"{call.service}.{call.method}"
        remaining = call.time_remaining()
        info["has_deadline"] = str(remaining is not None)
        return info

    def blob(self, size: int) -> bytes:
        return b"x" * size

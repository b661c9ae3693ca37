"""INTERFACE (issue 13 in progress): the asyncio Chan and select; replaced by the helper."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ..chan import Selected

T = TypeVar("T")


class Chan(Generic[T]):
    def __init__(self, capacity: int = 0) -> None:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    @property
    def error(self) -> BaseException | None:
        raise NotImplementedError

    async def send(self, value: T, timeout: float | None = None) -> None:
        raise NotImplementedError

    def try_send(self, value: T) -> bool:
        raise NotImplementedError

    async def recv(self, timeout: float | None = None) -> T:
        raise NotImplementedError

    async def recv_ok(self, timeout: float | None = None) -> tuple[T | None, bool]:
        raise NotImplementedError

    def try_recv(self) -> tuple[T | None, bool]:
        raise NotImplementedError

    def close(self, error: BaseException | None = None) -> None:
        raise NotImplementedError


async def select(*cases: Any, timeout: float | None = None, default: bool = False) -> Selected:
    raise NotImplementedError

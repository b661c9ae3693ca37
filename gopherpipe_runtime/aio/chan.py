"""INTERFACE (issue 13 in progress): the asyncio Chan and select; replaced by the helper."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ..chan import Selected

T = TypeVar("T")


class Chan(Generic[T]):
    def __init__(self, capacity: int = 0) -> None:
        raise NotImplementedError


async def select(*cases: Any, timeout: float | None = None, default: bool = False) -> Selected:
    raise NotImplementedError

"""INTERFACE (issue 13 in progress): the asyncio Pipe; the helper building it replaces this."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Self

from ..pipe import CallOptions
from ..status import InvalidArgumentError


class StreamCall(AsyncIterator[Any]):
    """One streaming call: an async iterator of what the server streams (decoded
    items), `result()` for a client stream's result, `cancel()` / `aclose()`."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        raise NotImplementedError

    async def result(self) -> Any:
        raise NotImplementedError

    def cancel(self, message: str = "cancelled by the client") -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class Pipe:
    def __init__(self, address: str, **options: Any) -> None:
        raise NotImplementedError

    async def unary(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        idempotent: bool = False,
    ) -> Any:
        raise NotImplementedError

    def stream(
        self,
        service: str,
        method: str,
        args: list[Any],
        options: CallOptions,
        *,
        source: AsyncIterable[Any] | Iterable[Any] | None = None,
        encode_item: Callable[[Any], Any] | None = None,
        decode_item: Callable[[Any], Any] | None = None,
        bad_item: Callable[[InvalidArgumentError], BaseException] | None = None,
        idempotent: bool = False,
    ) -> StreamCall:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


_ = ssl

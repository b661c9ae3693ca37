"""INTERFACE (issue 13 in progress): the asyncio Server; the helper building it replaces this."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from ..service import ServiceDef


class Server:
    def __init__(self, *addresses: str, **options: Any) -> None:
        raise NotImplementedError

    def add_service(self, service: ServiceDef) -> None:
        raise NotImplementedError

    def set_serving(self, name: str, serving: bool) -> None:
        raise NotImplementedError

    @property
    def addresses(self) -> list[str]:
        raise NotImplementedError

    async def start(self) -> Self:
        raise NotImplementedError

    async def stop(self, grace: float | None = None) -> None:
        raise NotImplementedError

    async def serve_forever(self, grace: float | None = 5.0) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

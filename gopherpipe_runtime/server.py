"""Server (placeholder; being written)."""

from __future__ import annotations

from typing import Any

from .service import ServiceDef


class Server:
    def __init__(self, *addresses: str, **options: Any) -> None:
        self._services: dict[str, ServiceDef] = {}

    def add_service(self, service: ServiceDef) -> None:
        self._services[service.name] = service

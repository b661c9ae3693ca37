"""Pipe: the client-side handle to one service address (placeholder; being written)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CallOptions:
    timeout: float | None = None
    """Seconds from the start of the call; None waits as long as the connection lives."""
    metadata: Mapping[str, str] = field(default_factory=dict)


class Pipe:
    def __init__(self, address: str, **options: Any) -> None:
        self.address = address

    def unary(self, service: str, method: str, args: list[Any], options: CallOptions) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass

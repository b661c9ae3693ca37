"""Type aliases (plain, TypeAlias, through a Literal, imported) and NewTypes."""

import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, NewType, TypeAlias

from models import Item, Meters, Sku

LatLng = tuple[float, float]
Path: TypeAlias = list[LatLng]
Currency = Literal["EUR", "USD"]
Later: typing.TypeAlias = "Track | None"
UserId = NewType("UserId", int)
Price = NewType("Price", Decimal)
AdminId = NewType("AdminId", UserId)
Ledger = dict[UserId, list[Price]]


@dataclass
class Track:
    owner: UserId
    path: Path
    length: Meters = 0.0
    currency: Currency = "EUR"
    next: Later = None


class Aliases(ABC):
    """Echoes aliased types and NewTypes."""

    @abstractmethod
    def point(self, value: LatLng) -> LatLng: ...

    @abstractmethod
    def route(self, value: Path, unit: Currency = "USD") -> tuple[Path, Currency]: ...

    @abstractmethod
    def user(
        self, value: UserId, admin: AdminId = AdminId(UserId(1))
    ) -> tuple[UserId, AdminId]: ...

    @abstractmethod
    def users(self, value: set[UserId]) -> set[UserId]: ...

    @abstractmethod
    def ledger(self, value: Ledger) -> Ledger: ...

    @abstractmethod
    def track(self, value: Track) -> "Later": ...

    @abstractmethod
    def item(self, value: Item, sku: Sku | None = None) -> tuple[Item, Sku | None]: ...

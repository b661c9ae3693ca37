"""End-to-end contract for the types beyond the scalars: each method echoes its argument."""

import datetime
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Literal
from uuid import UUID


@dataclass
class Dated:
    when: datetime.datetime
    day: date
    clock: time
    span: timedelta
    amount: Decimal
    id: UUID
    by_day: dict[date, Decimal]
    spans: dict[timedelta, str]
    later: datetime.datetime | None = None


@dataclass
class Ticket:
    side: Literal["buy", "sell"]
    lots: Literal[1, 10, 100]
    flags: dict[Literal["a", "b"], Literal[True, "maybe"]]


@dataclass
class Shelf:
    books: Sequence[str]
    index: Mapping[str, Sequence[int]]
    genres: frozenset[str]


class MoreTypes(ABC):
    """Echoes each family of types."""

    @abstractmethod
    def echo_dated(self, value: Dated) -> Dated: ...

    @abstractmethod
    def echo_when(self, value: datetime.datetime) -> datetime.datetime: ...

    @abstractmethod
    def echo_amounts(self, value: list[Decimal]) -> list[Decimal]: ...

    @abstractmethod
    def echo_ticket(self, value: Ticket) -> Ticket: ...

    @abstractmethod
    def echo_shelf(self, value: Shelf) -> Shelf: ...

    @abstractmethod
    def echo_sequence(self, value: Sequence[float]) -> Sequence[float]: ...

"""End-to-end contract for the types beyond the scalars: each method echoes its argument."""

import datetime
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum, auto
from typing import (
    Final,
    Generic,
    Literal,
    NamedTuple,
    NewType,
    NotRequired,
    Required,
    TypeAlias,
    TypedDict,
    TypeVar,
)
from uuid import UUID

T = TypeVar("T")
UserId = NewType("UserId", int)
Money = NewType("Money", Decimal)
Currency = Literal["EUR", "USD"]
Balances: TypeAlias = dict[Currency, Money]
CHUNK: Final = 64 * 1024
WAIT = timedelta(seconds=10)
PRICE = Money(Decimal("19.990"))


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


class Stage(Enum):
    DRAFT = auto()
    REVIEW = auto()


class Code(IntEnum):
    OK = 200
    CREATED = auto()


class Scope(StrEnum):
    READ = auto()
    WRITE_ALL = auto()


class Span(NamedTuple):
    start: date
    days: int = 1


class Booking(TypedDict, total=False):
    guest: Required[str]
    span: Span
    notes: list[str]


class Guest(TypedDict):
    name: str
    vip: NotRequired[bool]


@dataclass
class Account:
    owner: UserId
    balances: Balances
    friends: frozenset[UserId]


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_token: str | None = None


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

    @abstractmethod
    def echo_account(self, value: Account) -> Account: ...

    @abstractmethod
    def echo_stages(
        self, value: dict[Stage, list[Code]], scope: Scope = Scope.READ
    ) -> tuple[dict[Stage, list[Code]], Scope]: ...

    @abstractmethod
    def echo_booking(self, value: Booking, guests: list[Guest]) -> tuple[Booking, list[Guest]]: ...

    @abstractmethod
    def echo_pages(
        self, value: Page[Account], spans: Page[Span]
    ) -> tuple[Page[Account], Page[Span]]: ...

    @abstractmethod
    def echo_defaults(
        self,
        size: int = CHUNK,
        wait: timedelta = WAIT,
        price: Money = PRICE,
        currency: Currency = "EUR",
    ) -> tuple[int, timedelta, Money, Currency]: ...

"""Fuzzing contract: the types whose generated decoders the e2e contracts leave out.

Standard-library values where they must be hashed (set items, dict keys, inside tuple
keys), every key form (str, int, float, bool, bytes, enum, Literal, array-form keys),
nested records with defaults, Optional at every depth, and a stream of each kind.
`fuzz/targets.py` generates stubs for it (and for tests/e2e/contract/) at start-up.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Literal, NamedTuple, NewType, Optional, TypedDict
from uuid import UUID

from gopherpipe_runtime import Chan

Sku = NewType("Sku", str)
Side = Literal["buy", "sell"]
Odd = Literal[1, True, "1", -7]


class Level(IntEnum):
    LOW = 1
    HIGH = 10


class Tag(StrEnum):
    RED = "red"
    BLUE = "blue"


class Kind(Enum):
    A = "a"
    B = "b"


class Slot(NamedTuple):
    start: datetime
    length: timedelta
    where: Optional[str] = None


class Extra(TypedDict, total=False):
    note: str
    at: time


@dataclass
class Line:
    sku: Sku
    qty: int
    price: Decimal
    side: Side = "buy"


@dataclass
class Order:
    id: UUID
    placed: datetime
    lines: list[Line]
    due: Optional[date] = None
    slots: tuple[Slot, ...] = ()
    extra: Optional[Extra] = None
    notes: dict[str, list[Optional[Line]]] = field(default_factory=dict)


@dataclass
class Hashed:
    amounts: set[Decimal]
    ids: frozenset[UUID]
    by_amount: dict[Decimal, int]
    by_pair: dict[tuple[Decimal, date], str]
    by_when: dict[datetime, time]
    by_span: dict[timedelta, Level]
    by_id_side: set[tuple[UUID, Side]]
    by_level: dict[Level, Tag]
    by_tag: Mapping[Tag, Sequence[Kind]]
    by_odd: dict[Odd, float]
    by_bytes: dict[bytes, bool]
    by_float: dict[float, Optional[int]]
    by_flag: dict[bool, bytes]


class FuzzTypes(ABC):
    @abstractmethod
    def place(self, order: Order, dry_run: bool = False) -> Optional[Order]: ...

    @abstractmethod
    def hashed(self, value: Hashed) -> Hashed: ...

    @abstractmethod
    def odd(self, value: Odd, kind: Kind, pair: tuple[int, Optional[str]]) -> list[Odd]: ...

    @abstractmethod
    def watch(self, since: datetime) -> Chan[Slot]: ...

    @abstractmethod
    def upload(self, lines: Chan[Line]) -> dict[Sku, Decimal]: ...

    @abstractmethod
    def trade(self, side: Side, orders: Chan[Order]) -> Chan[Hashed]: ...

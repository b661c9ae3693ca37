"""The standard library's value types, in every spelling the generator accepts."""

import datetime
import datetime as dt
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, time, timedelta
from datetime import datetime as DateTime
from decimal import Decimal
from typing import Optional
from uuid import UUID


@dataclass
class Invoice:
    id: UUID
    issued: date
    due: DateTime
    total: Decimal
    grace: timedelta
    reminders: list[time]
    paid_at: "datetime.datetime | None" = None


class Stdlib(ABC):
    """Echoes each standard-library type, alone and nested."""

    @abstractmethod
    def when(self, value: DateTime) -> DateTime: ...

    @abstractmethod
    def day(self, value: date) -> date: ...

    @abstractmethod
    def clock(self, value: dt.time) -> dt.time: ...

    @abstractmethod
    def span(self, value: timedelta) -> timedelta: ...

    @abstractmethod
    def amount(self, value: Decimal) -> Decimal: ...

    @abstractmethod
    def ident(self, value: uuid.UUID) -> uuid.UUID: ...

    @abstractmethod
    def invoice(self, value: Invoice) -> Invoice: ...

    @abstractmethod
    def by_day(self, value: dict[date, list[Decimal]]) -> dict[date, list[Decimal]]: ...

    @abstractmethod
    def by_span(self, value: dict[timedelta, UUID]) -> dict[timedelta, UUID]: ...

    @abstractmethod
    def ids(self, value: set[UUID]) -> set[UUID]: ...

    @abstractmethod
    def maybe(self, value: Optional[datetime.datetime]) -> Optional[datetime.datetime]: ...

    @abstractmethod
    def pair(self, value: tuple[date, time]) -> tuple[date, time]: ...

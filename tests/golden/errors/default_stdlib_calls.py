from abc import ABC, abstractmethod
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4


def hours() -> int:
    return 1


class S(ABC):
    @abstractmethod
    def f(
        self,
        day: date = date(2024, 2, 30),
        at: datetime = datetime.now(),
        wait: timedelta = timedelta(hours=hours()),
        price: Decimal = Decimal("1.5x"),
        key: UUID = uuid4(),
        span: timedelta = date(2024, 1, 1),
    ) -> None: ...

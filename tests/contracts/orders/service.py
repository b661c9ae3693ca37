"""Orders, paid in real money: Decimal amounts, never floats."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from decimal import Decimal

from .models import Currency, CustomerId, LineItem, Money, Order, OrderStatus


class OrderService(ABC):
    @abstractmethod
    def place_order(
        self, customer: CustomerId, items: Sequence[LineItem], currency: Currency = "EUR"
    ) -> Order: ...

    @abstractmethod
    def total(self, order_id: int) -> Money: ...

    @abstractmethod
    def set_status(self, order_id: int, status: OrderStatus) -> OrderStatus: ...

    @abstractmethod
    def refund(self, order_id: int, amount: Money, reason: str = "") -> Decimal: ...

    @abstractmethod
    def orders_by_status(self, status: OrderStatus) -> dict[int, Money]: ...

    @abstractmethod
    def convert(self, amounts: list[Decimal], rate: Decimal, to: Currency) -> tuple[Money, ...]: ...

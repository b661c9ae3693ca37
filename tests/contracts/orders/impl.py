"""An in-memory OrderService."""

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal

from gopherpipe_runtime import FailedPreconditionError

from .models import Currency, CustomerId, LineItem, Money, Order, OrderStatus
from .service import OrderService

CET = timezone(timedelta(hours=1))
CENT = Decimal("0.01")


class OrderServiceImpl(OrderService):
    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}
        self.refunded: dict[int, Decimal] = {}

    def place_order(
        self, customer: CustomerId, items: Sequence[LineItem], currency: Currency = "EUR"
    ) -> Order:
        if any(item.unit_price.currency != currency for item in items):
            raise FailedPreconditionError("every item must be priced in the order's currency")
        order_id = 1000 + len(self.orders)
        placed = datetime(2024, 12, 24, 18, 0, tzinfo=CET)
        order = Order(order_id, customer, list(items), OrderStatus.PENDING, placed)
        self.orders[order_id] = order
        return order

    def total(self, order_id: int) -> Money:
        order = self.orders[order_id]
        amount = sum((i.unit_price.amount * i.quantity for i in order.items), Decimal("0.00"))
        currency = order.items[0].unit_price.currency if order.items else "EUR"
        return Money(amount, currency)

    def set_status(self, order_id: int, status: OrderStatus) -> OrderStatus:
        previous = self.orders[order_id].status
        self.orders[order_id].status = status
        return previous

    def refund(self, order_id: int, amount: Money, reason: str = "") -> Decimal:
        self.refunded[order_id] = self.refunded.get(order_id, Decimal(0)) + amount.amount
        return self.total(order_id).amount - self.refunded[order_id]

    def orders_by_status(self, status: OrderStatus) -> dict[int, Money]:
        return {i: self.total(i) for i, order in self.orders.items() if order.status == status}

    def convert(self, amounts: list[Decimal], rate: Decimal, to: Currency) -> tuple[Money, ...]:
        return tuple(Money((a * rate).quantize(CENT, ROUND_HALF_EVEN), to) for a in amounts)

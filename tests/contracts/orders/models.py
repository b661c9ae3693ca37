"""Money and order records, shared by the order service."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal, NewType

Currency = Literal["EUR", "USD", "GBP", "JPY"]
CustomerId = NewType("CustomerId", int)


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: Currency = "EUR"


@dataclass
class LineItem:
    sku: str
    quantity: int
    unit_price: Money


@dataclass
class Order:
    id: int
    customer: CustomerId
    items: list[LineItem]
    status: OrderStatus
    placed_at: datetime
    shipping: Money | None = None
    note: str = ""

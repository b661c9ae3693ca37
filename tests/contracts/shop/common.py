"""Types shared by the shop's services."""

from dataclasses import dataclass
from decimal import Decimal
from typing import NewType

Sku = NewType("Sku", str)


@dataclass(frozen=True)
class Price:
    amount: Decimal
    currency: str = "EUR"

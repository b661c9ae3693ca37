"""The shopping cart, one service of the shop package."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

from ..common import Price, Sku


@dataclass
class CartLine:
    sku: Sku
    quantity: int
    price: Price


@dataclass
class Cart:
    id: str
    lines: list[CartLine] = field(default_factory=list)
    coupon: Optional[str] = None


Shipping = Literal["standard", "express", "pickup"]


class CartService(ABC):
    @abstractmethod
    def add(self, cart_id: str, sku: Sku, quantity: int = 1) -> Cart: ...

    @abstractmethod
    def remove(self, cart_id: str, sku: Sku) -> Cart: ...

    @abstractmethod
    def apply_coupon(self, cart_id: str, code: Union[str, None]) -> Optional[Price]: ...

    @abstractmethod
    def quote(self, cart_id: str, shipping: Shipping = "standard") -> tuple[Price, Price]: ...

"""CartService with a fixed catalogue."""

from decimal import Decimal

from ..common import Price, Sku
from .service import Cart, CartLine, CartService, Shipping

CATALOGUE = {Sku("TEA-01"): Price(Decimal("4.50")), Sku("MUG-02"): Price(Decimal("12.00"))}
SHIPPING = {"standard": Decimal("4.90"), "express": Decimal("9.90"), "pickup": Decimal("0")}


class CartServiceImpl(CartService):
    def __init__(self) -> None:
        self.carts: dict[str, Cart] = {}

    def add(self, cart_id: str, sku: Sku, quantity: int = 1) -> Cart:
        cart = self.carts.setdefault(cart_id, Cart(cart_id))
        cart.lines.append(CartLine(sku, quantity, CATALOGUE[sku]))
        return cart

    def remove(self, cart_id: str, sku: Sku) -> Cart:
        cart = self.carts[cart_id]
        cart.lines = [line for line in cart.lines if line.sku != sku]
        return cart

    def apply_coupon(self, cart_id: str, code: str | None) -> Price | None:
        self.carts[cart_id].coupon = code
        return Price(Decimal("-5.00")) if code == "WELCOME5" else None

    def quote(self, cart_id: str, shipping: Shipping = "standard") -> tuple[Price, Price]:
        cart = self.carts[cart_id]
        goods = sum((line.price.amount * line.quantity for line in cart.lines), Decimal("0.00"))
        return Price(goods), Price(SHIPPING[shipping])

"""The MoreTypes implementation served by the end-to-end server process: an echo."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from decimal import Decimal

from e2e_moretypes import (  # type: ignore[import-not-found]
    Account,
    Booking,
    Code,
    Currency,
    Dated,
    Guest,
    Money,
    MoreTypes,
    Page,
    Scope,
    Shelf,
    Span,
    Stage,
    Ticket,
)

NO_PRICE = Money(Decimal(0))


class MoreTypesImpl(MoreTypes):  # type: ignore[misc]
    def echo_dated(self, value: Dated) -> Dated:
        return value

    def echo_when(self, value: datetime.datetime) -> datetime.datetime:
        return value

    def echo_amounts(self, value: list[Decimal]) -> list[Decimal]:
        return value

    def echo_ticket(self, value: Ticket) -> Ticket:
        return value

    def echo_shelf(self, value: Shelf) -> Shelf:
        return value

    def echo_sequence(self, value: Sequence[float]) -> Sequence[float]:
        return tuple(value)  # a tuple is a Sequence too: it must go back as the client's list

    def echo_account(self, value: Account) -> Account:
        return value

    def echo_stages(
        self, value: dict[Stage, list[Code]], scope: Scope = Scope.READ
    ) -> tuple[dict[Stage, list[Code]], Scope]:
        return value, scope

    def echo_booking(self, value: Booking, guests: list[Guest]) -> tuple[Booking, list[Guest]]:
        return value, guests

    def echo_pages(
        self, value: Page[Account], spans: Page[Span]
    ) -> tuple[Page[Account], Page[Span]]:
        return value, spans

    def echo_defaults(
        self,
        size: int = 1,
        wait: datetime.timedelta = datetime.timedelta(0),
        price: Money = NO_PRICE,
        currency: Currency = "USD",
    ) -> tuple[int, datetime.timedelta, Money, Currency]:
        return size, wait, price, currency

"""Double-entry bookkeeping."""

from abc import ABC, abstractmethod
from datetime import date
from decimal import Decimal

from models import Account, AccountType, JournalEntry, Posting, ReversalEntry


class Ledger(ABC):
    @abstractmethod
    def open_account(self, code: str, name: str, type: AccountType) -> Account: ...

    @abstractmethod
    def post(self, booked_on: date, memo: str, postings: list[Posting]) -> JournalEntry: ...

    @abstractmethod
    def reverse(self, number: int, booked_on: date) -> ReversalEntry: ...

    @abstractmethod
    def balances(self, as_of: date) -> dict[str, Decimal]: ...

    @abstractmethod
    def trial_balance(self, as_of: date) -> tuple[Decimal, Decimal]: ...

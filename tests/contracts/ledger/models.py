"""Ledger records, imported by service.py from the same folder."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum


class AccountType(Enum):
    ASSET = 1
    LIABILITY = 2
    EQUITY = 3
    INCOME = 4
    EXPENSE = 5


@dataclass
class Account:
    code: str
    name: str
    type: AccountType


@dataclass
class Posting:
    account: str
    amount: Decimal
    note: str = field(default="", kw_only=True)


@dataclass
class JournalEntry:
    number: int
    booked_on: date
    memo: str
    postings: list[Posting]


@dataclass(kw_only=True)
class ReversalEntry(JournalEntry):
    reverses: int = 0

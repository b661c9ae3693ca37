"""Ledger records, imported by service.py from the same folder."""

from dataclasses import dataclass
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


@dataclass
class JournalEntry:
    number: int
    booked_on: date
    memo: str
    postings: list[Posting]


@dataclass
class ReversalEntry(JournalEntry):
    reverses: int = 0

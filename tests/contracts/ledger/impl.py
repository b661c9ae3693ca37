"""An in-memory Ledger."""

from datetime import date
from decimal import Decimal

from models import Account, AccountType, JournalEntry, Posting, ReversalEntry
from service import Ledger

from gopherpipe_runtime import InvalidArgumentError, NotFoundError


class LedgerImpl(Ledger):
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.journal: list[JournalEntry] = []

    def open_account(self, code: str, name: str, type: AccountType) -> Account:
        self.accounts[code] = Account(code, name, type)
        return self.accounts[code]

    def post(self, booked_on: date, memo: str, postings: list[Posting]) -> JournalEntry:
        if sum(p.amount for p in postings) != 0:
            raise InvalidArgumentError("postings must balance")
        entry = JournalEntry(len(self.journal) + 1, booked_on, memo, postings)
        self.journal.append(entry)
        return entry

    def reverse(self, number: int, booked_on: date) -> ReversalEntry:
        if not 0 < number <= len(self.journal):
            raise NotFoundError(f"no entry {number}")
        original = self.journal[number - 1]
        postings = [
            Posting(p.account, -p.amount, note=f"reverses {p.note}") for p in original.postings
        ]
        entry = ReversalEntry(
            len(self.journal) + 1, booked_on, "reversal", postings, reverses=number
        )
        self.journal.append(entry)
        return entry

    def balances(self, as_of: date) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for entry in self.journal:
            if entry.booked_on <= as_of:
                for p in entry.postings:
                    totals[p.account] = totals.get(p.account, Decimal("0.00")) + p.amount
        return totals

    def trial_balance(self, as_of: date) -> tuple[Decimal, Decimal]:
        amounts = self.balances(as_of).values()
        debit = sum((a for a in amounts if a > 0), Decimal("0.00"))
        credit = sum((-a for a in amounts if a < 0), Decimal("0.00"))
        return debit, credit

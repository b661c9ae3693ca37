"""Types the contract imports from a neighbouring module of its package."""

from dataclasses import dataclass
from enum import Enum


class Status(Enum):
    OPEN = "open"
    DONE = "done"


@dataclass
class Ticket:
    id: int
    title: str
    status: Status = Status.OPEN

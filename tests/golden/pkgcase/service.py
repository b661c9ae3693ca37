"""A contract inside a package: stubs beside it import it relatively."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

from .models import Status
from .models import Ticket as T


@dataclass
class Page:
    tickets: list[T]
    next_token: str | None = None


class Tracker(ABC):
    @abstractmethod
    def open(self, title: str) -> T: ...

    @abstractmethod
    def search(self, status: Status = Status.OPEN, limit: int = 50) -> Page: ...

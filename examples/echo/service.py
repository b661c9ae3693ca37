"""The echo contract: the smallest useful GopherPipe service."""

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass
class Echoed:
    text: str
    times: int


class EchoService(ABC):
    """Says back what it hears."""

    @abstractmethod
    def echo(self, text: str) -> str:
        """Return `text` unchanged."""

    @abstractmethod
    def repeat(self, text: str, times: int = 2) -> Echoed:
        """Return `text` repeated `times` times, with the count."""

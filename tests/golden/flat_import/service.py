"""A contract in a plain folder importing its types from a sibling module."""

from abc import ABC, abstractmethod

from models import Item


class Store(ABC):
    @abstractmethod
    def stock(self, items: list[Item]) -> dict[str, Item]: ...

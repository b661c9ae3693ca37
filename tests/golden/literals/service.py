"""Literal types: str, int and bool values, alone, mixed, nested and as defaults."""

import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal


@dataclass
class Order:
    side: Literal["buy", "sell"]
    kind: 'Literal["market", "limit"]' = "market"
    flags: dict[Literal["a", "b"], Literal[0, 1]] | None = None


class Literals(ABC):
    """Echoes Literal types."""

    @abstractmethod
    def side(self, value: Literal["buy", "sell"]) -> Literal["buy", "sell"]: ...

    @abstractmethod
    def level(self, value: Literal[-1, 0, 1] = 0) -> Literal[-1, 0, 1]: ...

    @abstractmethod
    def mixed(self, value: Literal[1, True, "1"]) -> Literal[1, True, "1"]: ...

    @abstractmethod
    def yes(self, value: typing.Literal[True]) -> typing.Literal[True]: ...

    @abstractmethod
    def order(self, value: Order) -> Order: ...

    @abstractmethod
    def sides(self, value: set[Literal["buy", "sell"]]) -> set[Literal["buy", "sell"]]: ...

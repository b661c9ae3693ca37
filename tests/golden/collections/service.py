"""Abstract collections (Sequence, Mapping, from collections.abc or typing) and frozenset."""

import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class Basket:
    items: Sequence[str]
    prices: Mapping[str, float]
    tags: frozenset[str] = field(default_factory=frozenset)


class Collections(ABC):
    """Echoes abstract collections."""

    @abstractmethod
    def seq(self, value: Sequence[int]) -> Sequence[int]: ...

    @abstractmethod
    def typing_seq(self, value: typing.Sequence[Basket]) -> typing.Sequence[Basket]: ...

    @abstractmethod
    def mapping(self, value: Mapping[str, Sequence[int]]) -> Mapping[str, Sequence[int]]: ...

    @abstractmethod
    def pairs(self, value: Mapping[tuple[int, int], str]) -> Mapping[tuple[int, int], str]: ...

    @abstractmethod
    def frozen(self, value: frozenset[int]) -> frozenset[int]: ...

    @abstractmethod
    def basket(self, value: Basket) -> Basket: ...

"""Methods named like built-ins: the stubs spell the types after them as builtins.X."""

import builtins
from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass
class Shelf:
    labels: list[str]
    counts: dict[str, int]


class Store(ABC):
    """A key-value store whose methods take the obvious names."""

    @abstractmethod
    def set(self, key: str, value: list[int]) -> set[str]: ...

    @abstractmethod
    def list(self, prefix: str = "") -> builtins.list[str]: ...

    @abstractmethod
    def type(self, key: builtins.str, shelf: Shelf) -> tuple[builtins.str, builtins.int]: ...

    @abstractmethod
    def dict(
        self, value: builtins.dict[str, builtins.list[int]]
    ) -> builtins.dict[str, builtins.set[int]]: ...

    @abstractmethod
    def id(self, value: frozenset[int] | None) -> builtins.list[frozenset[int]]: ...

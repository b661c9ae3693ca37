"""Generic dataclasses, used with concrete type arguments."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date
from typing import Generic, TypeVar

K = TypeVar("K")
T = TypeVar("T")


@dataclass
class User:
    name: str
    born: date | None = None


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_token: str | None
    total: int = 0


@dataclass
class Pair(Generic[K, T]):
    key: K
    value: T
    history: list[T] = field(default_factory=list)


@dataclass
class Node(Generic[T]):
    value: T
    children: "list[Node[T]]"


class Generics(ABC):
    """Echoes generic dataclasses with several type arguments."""

    @abstractmethod
    def users(self, value: Page[User]) -> Page[User]: ...

    @abstractmethod
    def numbers(self, value: Page[int], token: str = "") -> tuple[Page[int], str]: ...

    @abstractmethod
    def pair(self, value: Pair[str, Page[date]]) -> Pair[str, Page[date]]: ...

    @abstractmethod
    def trees(self, value: list[Node[str]]) -> list[Node[str]]: ...

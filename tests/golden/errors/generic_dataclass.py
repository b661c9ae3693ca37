from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
U = int


@dataclass
class Page(Generic[T]):
    items: list[T]
    first: dict[list[T], str]


@dataclass
class Box(Generic[U]):
    item: int


@dataclass
class Plain:
    item: int


@dataclass
class Users(Page[str]):
    count: int


class S(ABC):
    @abstractmethod
    def f(self, a: Page, b: Page[int, str], c: Plain[int]) -> T: ...

    @abstractmethod
    def g(self, a: Page[str], b: Page[bytes], c: Box[int], d: Users) -> None: ...

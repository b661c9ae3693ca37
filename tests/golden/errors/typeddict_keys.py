from abc import ABC, abstractmethod
from typing import Generic, NotRequired, TypedDict, TypeVar

T = TypeVar("T")
Movie = TypedDict("Movie", {"title": str})


class Base(TypedDict, total=False):
    name: str = ""
    note: NotRequired[str, int]


class Odd(TypedDict, total=0):
    name: str


class Child(Base):
    age: int


class Box(TypedDict, Generic[T]):
    item: T


class S(ABC):
    @abstractmethod
    def f(self, b: Base, c: Child, m: Movie, x: Box[int], o: Odd) -> None: ...

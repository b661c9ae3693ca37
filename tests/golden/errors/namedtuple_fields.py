from abc import ABC, abstractmethod
from collections import namedtuple
from dataclasses import field
from typing import NamedTuple

Pair = namedtuple("Pair", ["a", "b"])


class Point(NamedTuple):
    x: float = 0.0
    y: float
    tags: list[str] = field(default_factory=list)


class Point3(Point):
    def z(self) -> float:
        return 0.0


class S(ABC):
    @abstractmethod
    def f(self, p: Point, q: Point3, r: Pair) -> None: ...

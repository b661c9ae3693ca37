from enum import Enum, auto

from abc import ABC, abstractmethod


class Color(str, Enum):
    RED = auto()


class Size(Enum):
    LARGE = 10
    SMALL = 1
    MEDIUM = auto()


class Shape(Enum):
    ROUND = "round"
    SQUARE = auto()


class S(ABC):
    @abstractmethod
    def f(self, c: Color, s: Size, t: Shape) -> None: ...

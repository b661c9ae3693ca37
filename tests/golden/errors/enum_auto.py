from enum import Enum, auto

from abc import ABC, abstractmethod


class Color(Enum):
    RED = auto()


class S(ABC):
    @abstractmethod
    def f(self, c: Color) -> None: ...

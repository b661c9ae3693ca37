from enum import Enum

from abc import ABC, abstractmethod

BASE = 1


class Color(Enum):
    RED = BASE + 1


class S(ABC):
    @abstractmethod
    def f(self, c: Color) -> None: ...

from enum import Enum

from abc import ABC, abstractmethod


class Color(Enum):
    RED = 1


class S(ABC):
    @abstractmethod
    def f(self, c: Color = Color.PURPLE) -> None: ...

from enum import Enum

from abc import ABC, abstractmethod


class Color(Enum):
    RED = 1
    BLUE = "blue"


class S(ABC):
    @abstractmethod
    def f(self, c: Color) -> None: ...

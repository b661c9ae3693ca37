from enum import Enum
from typing import Literal

from abc import ABC, abstractmethod


class Color(Enum):
    RED = 1


class S(ABC):
    @abstractmethod
    def f(self, a: Literal["x", 1.5], b: Literal[Color.RED]) -> None: ...

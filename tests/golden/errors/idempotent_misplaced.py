from abc import ABC, abstractmethod
from typing import NamedTuple

from gopherpipe_runtime import idempotent


@idempotent
def helper(x: int) -> int:
    return x


class Point(NamedTuple):
    x: int
    y: int

    @idempotent
    def norm(self) -> int:
        return abs(self.x) + abs(self.y)


@idempotent
class S(ABC):
    @abstractmethod
    def f(self) -> int: ...

from dataclasses import dataclass

from abc import ABC, abstractmethod


@dataclass
class Point:
    x: int
    y = 0


class S(ABC):
    @abstractmethod
    def f(self, p: Point) -> None: ...

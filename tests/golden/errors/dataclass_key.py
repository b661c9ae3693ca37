from dataclasses import dataclass

from abc import ABC, abstractmethod


@dataclass(frozen=True)
class Point:
    x: int


class S(ABC):
    @abstractmethod
    def f(self, index: dict[Point, str]) -> None: ...

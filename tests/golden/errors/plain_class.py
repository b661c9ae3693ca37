from abc import ABC, abstractmethod


class Point:
    x: int


class S(ABC):
    @abstractmethod
    def f(self) -> Point: ...

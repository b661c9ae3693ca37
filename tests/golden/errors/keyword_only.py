from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self, a: int, *, b: int = 1) -> int: ...

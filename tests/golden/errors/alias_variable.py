from abc import ABC, abstractmethod

LIMIT = 10
name: str = "x"


class S(ABC):
    @abstractmethod
    def f(self, value: LIMIT) -> name: ...

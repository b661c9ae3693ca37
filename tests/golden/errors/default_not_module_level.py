from abc import ABC, abstractmethod


def limit() -> int:
    SIZE = 4
    return SIZE


class S(ABC):
    @abstractmethod
    def f(self, n: int = SIZE) -> None: ...

from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    @idempotent
    def f(self) -> int: ...

from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self, _secret: int, check_int: int) -> None: ...

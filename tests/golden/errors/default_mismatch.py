from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self, times: int = "2") -> None: ...

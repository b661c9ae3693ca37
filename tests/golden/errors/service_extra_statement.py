from abc import ABC, abstractmethod


class S(ABC):
    VERSION = 2

    @abstractmethod
    def f(self) -> int: ...

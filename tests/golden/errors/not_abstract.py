from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self) -> int: ...

    def helper(self) -> int:
        return 1

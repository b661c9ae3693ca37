from abc import ABC, abstractmethod
from typing import NewType

UserId = NewType("UserId", int)


class S(ABC):
    @abstractmethod
    def f(self, value: UserId = 0) -> None: ...

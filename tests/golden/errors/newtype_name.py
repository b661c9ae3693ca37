from abc import ABC, abstractmethod
from typing import NewType

UserId = NewType("Uid", int)


class S(ABC):
    @abstractmethod
    def f(self, value: UserId) -> None: ...

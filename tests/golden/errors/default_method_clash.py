from abc import ABC, abstractmethod

size = 10


class S(ABC):
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def read(self, n: int = size) -> bytes: ...

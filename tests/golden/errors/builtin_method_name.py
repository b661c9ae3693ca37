from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def list(self) -> int: ...

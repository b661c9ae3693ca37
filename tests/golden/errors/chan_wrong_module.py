from abc import ABC, abstractmethod
from queue import Queue as Chan


class S(ABC):
    @abstractmethod
    def f(self, lines: Chan[str]) -> int: ...

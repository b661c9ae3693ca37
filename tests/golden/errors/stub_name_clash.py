from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass
class Server:
    x: int


class S(ABC):
    @abstractmethod
    def f(self, s: Server) -> None: ...

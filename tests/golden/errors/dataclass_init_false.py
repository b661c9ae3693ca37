from dataclasses import dataclass

from abc import ABC, abstractmethod


@dataclass(init=False)
class Bag:
    n: int


class S(ABC):
    @abstractmethod
    def f(self, b: Bag) -> None: ...

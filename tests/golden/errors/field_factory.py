from dataclasses import dataclass, field

from abc import ABC, abstractmethod


@dataclass
class Bag:
    items: list[int] = field(default_factory=lambda: [1])


class S(ABC):
    @abstractmethod
    def f(self, b: Bag) -> None: ...

from dataclasses import dataclass, field

from abc import ABC, abstractmethod


def load_items() -> list[int]:
    return [1]


@dataclass(frozen=True)
class Policy:
    retries: int


@dataclass
class Bag:
    items: list[int] = field(default_factory=load_items)
    tags: list[str] = field(default_factory=dict)
    seen: set[int] = field(default_factory=lambda n: {n})
    policy: Policy = field(default_factory=Policy)
    names: list[str] = field(default_factory=lambda: [1])


class S(ABC):
    @abstractmethod
    def f(self, b: Bag) -> None: ...

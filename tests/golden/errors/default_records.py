from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple


class Color(Enum):
    RED = 1


@dataclass(frozen=True)
class Policy:
    retries: int
    name: str = "p"


class Size(NamedTuple):
    width: int = 1


class S(ABC):
    @abstractmethod
    def f(
        self,
        a: Policy = Policy(retries="3"),
        b: Policy = Policy(name="x"),
        c: Policy = Policy(1, wait=2),
        d: Color = Color(3),
        e: Size = Policy(1),
    ) -> None: ...

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum, IntEnum, auto
from typing import Literal, NamedTuple


class Big(IntEnum):
    OK = 8
    MAX = 18446744073709551615
    TOO_BIG = 18446744073709551616


class Small(Enum):
    MIN = -9223372036854775808
    TOO_SMALL = -9223372036854775809


class Wraps(Enum):
    LAST = 0xFFFF_FFFF_FFFF_FFFF
    NEXT = auto()


@dataclass
class Limits:
    low: int = -9223372036854775808
    high: int = field(default=18446744073709551616)
    huge_float: float = 100000000000000000000000  # a float may be large
    pair: tuple[int, int] = (0, -9223372036854775809)


class Point(NamedTuple):
    x: int = 99999999999999999999


class S(ABC):
    @abstractmethod
    def f(self, level: Literal[0, 18446744073709551616] = 0) -> Literal[-9223372036854775809]: ...

    @abstractmethod
    def g(
        self, n: int = +18446744073709551616, m: int | None = -1180591620717411303424
    ) -> Limits: ...

    @abstractmethod
    def h(self, p: Point) -> None: ...

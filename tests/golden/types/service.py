"""Every type the contract language supports, each echoed by one method."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Optional, Union


class Color(Enum):
    RED = 1
    GREEN = 2
    BLUE = -3


class Shape(str, Enum):
    CIRCLE = "circle"
    SQUARE = "square"


class Level(IntEnum):
    LOW = 0
    HIGH = 10


@dataclass
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Tagged:
    name: str
    tags: set[str]
    color: Color = Color.RED
    extras: list[int] = field(default_factory=list)
    note: "str | None" = None


@dataclass
class Node:
    """A recursive type."""

    value: int
    children: list["Node"]


@dataclass
class Empty:
    pass


@dataclass
class Base:
    a: int


@dataclass
class Derived(Base):
    b: str = "b"


class Types(ABC):
    """Echoes every type."""

    @abstractmethod
    def nothing(self, value: None) -> None: ...

    @abstractmethod
    def boolean(self, value: bool) -> bool: ...

    @abstractmethod
    def integer(self, value: int) -> int: ...

    @abstractmethod
    def number(self, value: float) -> float: ...

    @abstractmethod
    def text(self, value: str) -> str: ...

    @abstractmethod
    def blob(self, value: bytes) -> bytes: ...

    @abstractmethod
    def ints(self, value: list[int]) -> list[int]: ...

    @abstractmethod
    def floats(self, value: list[float]) -> list[float]: ...

    @abstractmethod
    def points(self, value: list[Point]) -> list[Point]: ...

    @abstractmethod
    def unique(self, value: set[str]) -> set[str]: ...

    @abstractmethod
    def unique_pairs(self, value: set[tuple[int, Color]]) -> set[tuple[int, Color]]: ...

    @abstractmethod
    def pair(self, value: tuple[int, str]) -> tuple[int, str]: ...

    @abstractmethod
    def single(self, value: tuple[Point]) -> tuple[Point]: ...

    @abstractmethod
    def empty_tuple(self, value: tuple[()]) -> tuple[()]: ...

    @abstractmethod
    def many(self, value: tuple[float, ...]) -> tuple[float, ...]: ...

    @abstractmethod
    def by_str(self, value: dict[str, int]) -> dict[str, int]: ...

    @abstractmethod
    def by_int(self, value: dict[int, list[Point]]) -> dict[int, list[Point]]: ...

    @abstractmethod
    def by_float(self, value: dict[float, bool]) -> dict[float, bool]: ...

    @abstractmethod
    def by_bool(self, value: dict[bool, str]) -> dict[bool, str]: ...

    @abstractmethod
    def by_bytes(self, value: dict[bytes, bytes]) -> dict[bytes, bytes]: ...

    @abstractmethod
    def by_color(self, value: dict[Color, Shape]) -> dict[Color, Shape]: ...

    @abstractmethod
    def by_pair(self, value: dict[tuple[int, str], float]) -> dict[tuple[int, str], float]: ...

    @abstractmethod
    def maybe(self, value: int | None) -> Optional[int]: ...

    @abstractmethod
    def maybe_point(self, value: Optional[Point]) -> Point | None: ...

    @abstractmethod
    def maybe_union(self, value: Union[str, None]) -> Union[None, str]: ...

    @abstractmethod
    def nested(
        self, value: list[dict[str, list[Tagged | None]]]
    ) -> list[dict[str, list[Tagged | None]]]: ...

    @abstractmethod
    def color(self, value: Color) -> Color: ...

    @abstractmethod
    def shape(self, value: Shape) -> Shape: ...

    @abstractmethod
    def level(self, value: Level) -> Level: ...

    @abstractmethod
    def tagged(self, value: Tagged) -> Tagged: ...

    @abstractmethod
    def tree(self, value: Node) -> Node: ...

    @abstractmethod
    def empty(self, value: Empty) -> Empty: ...

    @abstractmethod
    def derived(self, value: Derived) -> Derived: ...

    @abstractmethod
    def mixed(
        self, a: int, b: list[str], c: "dict[str, Point]"
    ) -> tuple[int, list[str], dict[str, Point]]:
        """Several parameters, one a string annotation."""

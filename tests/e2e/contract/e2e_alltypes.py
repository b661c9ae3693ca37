"""End-to-end contract: every type the contract language supports, plus failure hooks."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional


class Color(Enum):
    RED = 1
    GREEN = 2


class Shape(Enum):
    CIRCLE = "circle"
    SQUARE = "square"


@dataclass
class Point:
    x: float
    y: float


@dataclass
class Inner:
    name: str
    tags: set[str]
    color: Color = Color.RED


@dataclass
class Everything:
    n: int
    f: float
    s: str
    b: bytes
    flag: bool
    nothing: None
    items: list[int]
    points: dict[str, Point]
    pair: tuple[int, str]
    many: tuple[float, ...]
    unique: set[int]
    maybe: int | None
    maybe_too: Optional[str]
    nested: list[dict[str, list[Inner]]]
    by_int: dict[int, str]
    by_color: dict[Color, int]
    by_pair: dict[tuple[int, int], str]
    shape: Shape
    inner: Inner | None = None
    extras: list[str] = field(default_factory=list)


class AllTypes(ABC):
    """Echoes every type and exposes the failure paths the tests drive."""

    @abstractmethod
    def echo_everything(self, value: Everything) -> Everything: ...

    @abstractmethod
    def echo_scalars(
        self, n: int, f: float, s: str, b: bytes, flag: bool
    ) -> tuple[int, float, str, bytes, bool]: ...

    @abstractmethod
    def echo_optional(self, value: Optional[list[Point]]) -> list[Point] | None: ...

    @abstractmethod
    def add(self, a: int, b: int = 10) -> int: ...

    @abstractmethod
    def nothing(self) -> None: ...

    @abstractmethod
    def fail(self, code: int, message: str) -> str:
        """Raise RpcError(code, message)."""

    @abstractmethod
    def crash(self, message: str) -> str:
        """Raise ValueError(message): an unexpected handler bug."""

    @abstractmethod
    def wrong_return(self) -> int:
        """Return a str although the contract says int."""

    @abstractmethod
    def sleep(self, seconds: float) -> bool:
        """Sleep in small steps; return whether the call was cancelled meanwhile."""

    @abstractmethod
    def whoami(self) -> dict[str, str]:
        """Metadata and peer as current_call() sees them."""

    @abstractmethod
    def blob(self, size: int) -> bytes: ...

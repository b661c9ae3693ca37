from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Literal, NewType

from gopherpipe_runtime import Chan

UserId = NewType("UserId", int)


class Color(Enum):
    RED = 1


@dataclass
class Point:
    x: int


class Hidden(ABC):
    # Each of these names is spelled in the client class's signatures below.
    @abstractmethod
    def Sequence(self) -> int: ...

    @abstractmethod
    def Mapping(self) -> int: ...

    @abstractmethod
    def Literal(self) -> int: ...

    @abstractmethod
    def Decimal(self) -> int: ...

    @abstractmethod
    def Point(self) -> int: ...

    @abstractmethod
    def UserId(self) -> int: ...

    @abstractmethod
    def Color(self) -> int: ...

    @abstractmethod
    def Chan(self) -> int: ...

    @abstractmethod
    def Iterable(self) -> int: ...

    @abstractmethod
    def uses(
        self, a: Sequence[Point], b: Mapping[str, Decimal], c: Literal["x"], d: UserId
    ) -> Chan[int]: ...

    @abstractmethod
    def pushes(self, items: Chan[int], color: Color = Color.RED) -> int: ...


class Fine(ABC):
    # Names the client class does not use in its signatures are fine.
    @abstractmethod
    def Any(self) -> int: ...

    @abstractmethod
    def cast(self) -> int: ...

    @abstractmethod
    def Callable(self) -> int: ...

    @abstractmethod
    def Point(self) -> int: ...

    @abstractmethod
    def RED(self, color: Color = Color.RED) -> int: ...


def unused(x: Any) -> None: ...

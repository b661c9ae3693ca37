"""NamedTuple (class syntax, defaults) and TypedDict (total, total=False, NotRequired)."""

import typing
from abc import ABC, abstractmethod
from enum import Enum
from typing import NamedTuple, NotRequired, Required, TypedDict


class Unit(Enum):
    M = "m"
    FT = "ft"


class Point(NamedTuple):
    """A point; a method is fine."""

    x: float
    y: float
    label: str = ""
    unit: Unit = Unit.M

    def norm(self) -> float:
        return (self.x**2 + self.y**2) ** 0.5


class Movie(TypedDict):
    title: str
    year: int
    sequel: NotRequired["Movie"]


class Query(TypedDict, total=False):
    text: Required[str]
    limit: int
    near: Point | None
    tags: typing.NotRequired[list[str]]


class Empty(TypedDict):
    pass


class Records(ABC):
    """Echoes NamedTuples and TypedDicts."""

    @abstractmethod
    def point(self, value: Point) -> Point: ...

    @abstractmethod
    def points(
        self, value: list[Point], origin: Point | None = None
    ) -> tuple[list[Point], Point | None]: ...

    @abstractmethod
    def movie(self, value: Movie) -> Movie: ...

    @abstractmethod
    def query(self, value: Query) -> Query: ...

    @abstractmethod
    def queries(self, value: dict[str, Query]) -> dict[str, Query]: ...

    @abstractmethod
    def empty(self, value: Empty) -> Empty: ...

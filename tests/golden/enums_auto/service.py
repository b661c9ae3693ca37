"""Enum members with auto(), resolved statically as Python resolves them."""

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum, auto


class Priority(Enum):
    LOW = auto()
    MID = auto()
    HIGH = auto()


class Level(IntEnum):
    DEBUG = 10
    INFO = auto()
    WARN = enum.auto()
    FATAL = 50
    PANIC = auto()


class Mode(StrEnum):
    READ = auto()
    WRITE = auto()
    ADMIN = "root"
    SuperUser = auto()


class Sign(Enum):
    MINUS = -1
    ZERO = auto()
    PLUS = auto()


@dataclass
class Task:
    priority: Priority
    mode: Mode = Mode.READ
    level: Level = Level.INFO


class Auto(ABC):
    """Echoes enums whose values come from auto()."""

    @abstractmethod
    def priority(self, value: Priority = Priority.MID) -> Priority: ...

    @abstractmethod
    def levels(self, value: dict[Level, Mode]) -> dict[Level, Mode]: ...

    @abstractmethod
    def sign(self, value: set[Sign]) -> set[Sign]: ...

    @abstractmethod
    def task(self, value: Task) -> Task: ...

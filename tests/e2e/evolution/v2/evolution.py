"""Generation 2 of the contract test_evolution_e2e.py evolves: each change is one row
of README's "Evolving a contract" table, and `gopherpipe breaking` calls each safe."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum


class Level(Enum):
    LOW = 1
    HIGH = 2
    URGENT = 3  # added member


@dataclass
class Note:
    text: str
    level: Level = Level.LOW
    tags: list[str] = field(default_factory=list)  # added field, with a default


class Evolving(ABC):
    @abstractmethod
    def echo(self, note: Note) -> Note: ...

    @abstractmethod
    def greet(self, name: str, polite: bool = False) -> str: ...  # added parameter

    @abstractmethod
    def level(self, name: str) -> Level: ...

    @abstractmethod
    def take_level(self, level: Level) -> str: ...

    @abstractmethod
    def length(self, text: str | None) -> int | None: ...  # widened to T | None

    @abstractmethod
    def ping(self) -> str: ...  # added method

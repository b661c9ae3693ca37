"""Generation 1 of the contract test_evolution_e2e.py evolves (v2 is beside it)."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum


class Level(Enum):
    LOW = 1
    HIGH = 2


@dataclass
class Note:
    text: str
    level: Level = Level.LOW


class Evolving(ABC):
    @abstractmethod
    def echo(self, note: Note) -> Note: ...

    @abstractmethod
    def greet(self, name: str) -> str: ...

    @abstractmethod
    def level(self, name: str) -> Level: ...

    @abstractmethod
    def take_level(self, level: Level) -> str: ...

    @abstractmethod
    def length(self, text: str) -> int: ...

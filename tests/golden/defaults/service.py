"""Parameter and field defaults of every allowed kind."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional


class Mode(Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclass
class Options:
    retries: int = 3
    ratio: float = -0.5
    name: str = "gopher"
    raw: bytes = b"\x00"
    on: bool = True
    mode: Mode = Mode.FAST
    size: tuple[int, int] = (640, 480)
    parent: int | None = field(default=None)
    tags: list[str] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)


@dataclass
class Job:
    name: str
    options: Options
    priority: int = 0


class Defaults(ABC):
    @abstractmethod
    def call(
        self,
        a: int = 1,
        b: int = -2,
        c: float = 2.5,
        d: float = -1e3,
        e: float = 3,
        f: str = "s",
        g: bytes = b"b",
        h: bool = False,
        i: bool = True,
        j: int | None = None,
        k: Mode = Mode.SLOW,
        pair: tuple[int, str] = (1, "x"),
        many: tuple[float, ...] = (),
        n: Optional[Mode] = Mode.FAST,
    ) -> Options: ...

    @abstractmethod
    def submit(self, job: Job, dry_run: bool = False) -> Job: ...

    @abstractmethod
    def positional(self, a: int, /, b: str = "x") -> str: ...

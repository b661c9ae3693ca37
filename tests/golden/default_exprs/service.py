"""Defaults that are the contract's own constants and calls gen can check: the stubs
import the constants and repeat the calls, spelled with the imported names."""

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Final, Literal, NamedTuple, NewType
from uuid import UUID as UID

from limits import CHUNK_SIZE
from limits import MAX_CHUNKS as MAXC
from models import Color as C

Mode = Literal["fast", "slow"]
UserId = NewType("UserId", int)

TIMEOUT = timedelta(seconds=10)
BACKOFF = TIMEOUT * 2
NIL: Final = UID("00000000-0000-0000-0000-000000000000")
PRICE = Decimal("19.990")
MODE: Final = "fast"
ROOT_USER = UserId(0)
RETRIES: int = 3


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = RETRIES
    backoff: timedelta = BACKOFF


class Size(NamedTuple):
    width: int = 640
    height: int = 480
    unit: C = C.RED


DEFAULT_POLICY = RetryPolicy(retries=5)


@dataclass
class Upload:
    name: str
    chunk: int = CHUNK_SIZE
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    size: Size = field(default_factory=Size)
    tags: list[str] = field(default_factory=lambda: ["new"])
    seen: dict[str, int] = field(default_factory=lambda: {"start": 0})
    colors: frozenset[C] = frozenset({C.RED})
    started: date = date(2024, 1, 1)


class Store(ABC):
    @abstractmethod
    def read(
        self, key: str, size: int = CHUNK_SIZE, timeout: timedelta = timedelta(seconds=10)
    ) -> bytes: ...

    @abstractmethod
    def put(
        self,
        upload: Upload,
        policy: RetryPolicy = DEFAULT_POLICY,
        wait: timedelta = TIMEOUT,
        deadline: dt.datetime = dt.datetime(2030, 1, 1),
    ) -> Upload: ...

    @abstractmethod
    def describe(
        self,
        owner: UID = NIL,
        price: Decimal = PRICE,
        mode: Mode = MODE,
        user: UserId = ROOT_USER,
        color: C = C.RED,
        shade: C = C("blue"),
        chunks: int = MAXC * 2,
        size: Size = Size(1, 2),
        pair: tuple[int, timedelta] = (CHUNK_SIZE, TIMEOUT),
        limit: int | None = MAXC,
    ) -> str: ...

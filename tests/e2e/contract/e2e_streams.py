"""End-to-end streaming contract: the four shapes, and hooks for the failure paths."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

from gopherpipe_runtime import Chan


@dataclass
class Item:
    seq: int
    text: str


class Streams(ABC):
    @abstractmethod
    def count_up(self, start: int, count: int) -> Chan[Item]:
        """Server stream: Item(start) .. Item(start + count - 1), from a producer thread."""

    @abstractmethod
    def total(self, items: Chan[Item]) -> list[int]:
        """Client stream: [how many items, 1 if their seqs were 0, 1, 2, ... else 0]."""

    @abstractmethod
    def echo(self, prefix: str, items: Chan[Item]) -> Chan[Item]:
        """Bidi: every item back, its text prefixed."""

    @abstractmethod
    def fail_after(self, count: int, code: int, message: str) -> Chan[Item]:
        """Server stream: `count` items, then the producer fails with RpcError(code, message)."""

    @abstractmethod
    def crash_after(self, count: int) -> Chan[Item]:
        """Server stream: `count` items, then the producer raises ValueError."""

    @abstractmethod
    def endless(self, tag: str, capacity: int) -> Chan[Item]:
        """Server stream that never ends by itself; `stats(tag)` reports on it."""

    @abstractmethod
    def drain_slowly(self, tag: str, items: Chan[Item]) -> int:
        """Client stream whose handler reads one item, then waits until `release(tag)`."""

    @abstractmethod
    def release(self, tag: str) -> None: ...

    @abstractmethod
    def stats(self, tag: str) -> dict[str, int]:
        """produced, consumed, stopped (1 once the producer saw the stream end), alive threads."""

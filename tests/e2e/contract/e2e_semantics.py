"""End-to-end contract for call semantics: interceptors, response metadata, cancel, deadlines."""

from abc import ABC, abstractmethod

from gopherpipe_runtime import Chan


class Semantics(ABC):
    @abstractmethod
    def meta(self, should_fail: bool) -> str:
        """Unary: sets headers {"h": "unary"} and trailers {"t": "unary"}; fails when asked."""

    @abstractmethod
    def count(self, n: int, should_fail: bool) -> Chan[int]:
        """Server stream 0..n-1 with headers and trailers; fails at the end when asked."""

    @abstractmethod
    def total(self, items: Chan[int]) -> int:
        """Client stream: the sum, with trailers {"t": "total"}."""

    @abstractmethod
    def echo(self, items: Chan[int]) -> Chan[int]:
        """Bidi: every item back."""

    @abstractmethod
    def slow(self, tag: str, seconds: float) -> str:
        """Waits until cancelled or `seconds` pass; records 'slow started/cancelled/done TAG'."""

    @abstractmethod
    def onward(self, address: str, tag: str) -> str:
        """Calls `slow(tag, 60)` on `address` with no timeout of its own, and reports how that ended."""

    @abstractmethod
    def relay_metadata(self, address: str, key: str) -> str:
        """Calls `metadata(key)` on `address` and returns its answer."""

    @abstractmethod
    def metadata(self, key: str) -> str:
        """The request metadata value of `key` ("" when absent)."""

    @abstractmethod
    def remaining(self) -> float:
        """The call's time remaining in seconds, -1.0 without a deadline."""

    @abstractmethod
    def relay_remaining(self, address: str) -> float:
        """Calls `remaining()` on `address` with no timeout of its own and returns its answer."""

    @abstractmethod
    def events(self) -> list[str]:
        """What the server's recording interceptors and handlers saw, in order."""

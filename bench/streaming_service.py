"""The streaming bench contract; its stubs are generated at bench time (see gopherpipe.prepare)."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

from gopherpipe_runtime import Chan


@dataclass
class Tick:
    seq: int
    name: str
    value: float


class StreamBench(ABC):
    @abstractmethod
    def ticks(self, count: int) -> Chan[Tick]:
        """Server stream: Tick(0) .. Tick(count - 1), as fast as the server can."""

    @abstractmethod
    def ping_pong(self, pings: Chan[Tick]) -> Chan[Tick]:
        """Bidi: every ping straight back."""

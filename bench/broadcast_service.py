"""The concurrent-streams bench contract: many subscribers, one broadcast.

Its stubs are generated at bench time (see frameworks/gopherpipe.prepare); its grpc twin is
bench/protos/broadcast.proto.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

from gopherpipe_runtime import Chan


@dataclass
class Event:
    seq: int
    """0 is the welcome every subscriber gets first (proof the server holds the stream)."""
    sent_ns: int
    """time.monotonic_ns() on the server when the broadcast started (system-wide on Linux)."""
    topic: str


class Broadcast(ABC):
    @abstractmethod
    def subscribe(self, topic: str) -> Chan[Event]:
        """Server stream: Event(seq=0) at once, then every event published on `topic`."""

    @abstractmethod
    def publish(self, topic: str, seq: int) -> int:
        """Send Event(seq, now) to every open subscriber of `topic`; returns how many."""

"""Every stream shape: DESIGN.md's chat contract, plus streams of nested types."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Optional

import gopherpipe_runtime
from gopherpipe_runtime import Chan


class Mood(Enum):
    HAPPY = 1
    GRUMPY = 2


@dataclass
class Message:
    sender: str
    text: str
    mood: Mood = Mood.HAPPY


class ChatService(ABC):
    """Rooms where gophers talk."""

    @abstractmethod
    def join_room(self, room_id: str, incoming: Chan[str]) -> Chan[Message]: ...

    @abstractmethod
    def history(self, room_id: str, limit: int = 50) -> list[Message]: ...

    @abstractmethod
    def tail(self, room_id: str) -> Chan[Message]: ...

    @abstractmethod
    def upload(self, lines: Chan[str]) -> int: ...


class Shapes(ABC):
    @abstractmethod
    def middle(self, room: str, batches: Chan[list[Message]], limit: int = 3) -> dict[str, int]:
        """A client stream between other parameters, one of them defaulted."""

    @abstractmethod
    def maybe(self, keys: Chan[Optional[tuple[int, str]]]) -> Chan[dict[str, Message | None]]:
        """Bidi of nested, optional types."""

    @abstractmethod
    def nothing_back(self, lines: Chan[bytes]) -> None: ...


class Spellings(ABC):
    """Positional-only streams and the other ways to write Chan."""

    @abstractmethod
    def first(self, lines: Chan[str], /, room: str) -> int: ...

    @abstractmethod
    def qualified(
        self, room: str, numbers: gopherpipe_runtime.Chan[int], /
    ) -> gopherpipe_runtime.Chan[float]: ...

    @abstractmethod
    def quoted(self, messages: "Chan[Message]") -> "Chan[Optional[Message]]": ...


class Pulse(ABC):
    @abstractmethod
    def beats(self, pings: Chan[None]) -> Chan[None]:
        """Items that are all None: only their count and timing say anything."""

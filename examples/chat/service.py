"""The chat contract from DESIGN.md: one method of each shape."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum

from gopherpipe_runtime import Chan, idempotent


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
    def join_room(self, room_id: str, incoming: Chan[str]) -> Chan[Message]:
        """Bidi: what you send goes to everyone in the room; you get what everyone says."""

    @idempotent
    @abstractmethod
    def history(self, room_id: str, limit: int = 50) -> list[Message]:
        """Unary: the room's last `limit` messages, oldest first. Only reads, so a call
        that fails with UNAVAILABLE is retried."""

    @idempotent
    @abstractmethod
    def tail(self, room_id: str) -> Chan[Message]:
        """Server stream: follow a room without joining it (retried while it opens)."""

    @abstractmethod
    def upload(self, lines: Chan[str]) -> int:
        """Client stream: post many lines to the "uploads" room; returns how many."""

"""Notifications to users over several channels, pushed live."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum, auto
from uuid import UUID

from gopherpipe_runtime import Chan


class Channel(StrEnum):
    EMAIL = auto()
    SMS = auto()
    PUSH = auto()


@dataclass
class Notification:
    id: UUID
    recipient: str
    channel: Channel
    title: str
    body: str = ""
    sent_at: datetime | None = None


@dataclass
class Ack:
    notification_id: UUID
    read: bool = True


class Notifications(ABC):
    @abstractmethod
    def send(self, notification: Notification) -> UUID: ...

    @abstractmethod
    def broadcast(
        self, recipients: list[str], title: str, channels: set[Channel]
    ) -> list[Notification]: ...

    @abstractmethod
    def preferences(self, recipient: str) -> dict[Channel, bool]: ...

    @abstractmethod
    def inbox(self, recipient: str, acks: Chan[Ack]) -> Chan[Notification]: ...

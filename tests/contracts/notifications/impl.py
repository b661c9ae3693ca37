"""Notifications kept in memory; inbox() replays a recipient's unread ones as they are acked."""

import threading
import uuid
from datetime import datetime

from gopherpipe_runtime import Chan

from .service import Ack, Channel, Notification, Notifications

SENT_AT = datetime(2024, 2, 29, 23, 59, 59, 999999)


class NotificationsImpl(Notifications):
    def __init__(self) -> None:
        self.sent: dict[uuid.UUID, Notification] = {}
        self.read: set[uuid.UUID] = set()
        self.lock = threading.Lock()

    def send(self, notification: Notification) -> uuid.UUID:
        with self.lock:
            self.sent[notification.id] = notification
        return notification.id

    def broadcast(
        self, recipients: list[str], title: str, channels: set[Channel]
    ) -> list[Notification]:
        made = [
            Notification(
                uuid.uuid5(uuid.NAMESPACE_DNS, f"{r}/{c}/{title}"), r, c, title, "", SENT_AT
            )
            for r in recipients
            for c in sorted(channels)
        ]
        for notification in made:
            self.send(notification)
        return made

    def preferences(self, recipient: str) -> dict[Channel, bool]:
        return {c: c != Channel.SMS for c in Channel}

    def inbox(self, recipient: str, acks: Chan[Ack]) -> Chan[Notification]:
        out: Chan[Notification] = Chan()

        def pump() -> None:
            with out:
                with self.lock:
                    unread = [n for n in self.sent.values() if n.recipient == recipient]
                for notification in unread:
                    out.send(notification)
                    ack = acks.recv()  # one ack per notification: a real conversation
                    if ack.read:
                        self.read.add(ack.notification_id)

        threading.Thread(target=pump, daemon=True).start()
        return out

"""Serve ChatService: `python examples/chat/server.py [ADDRESS]` (default tcp://127.0.0.1:7071).

Every member of a room gets every message said in it. A member that stops reading
for a second is dropped rather than allowed to stall the room.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque

from service import ChatService, Message
from service_server import register_chat_service

from gopherpipe_runtime import Chan, ChanClosed, Server, current_call

log = logging.getLogger("chat")


class Room:
    def __init__(self, history_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._members: set[Chan[Message]] = set()
        self.history: deque[Message] = deque(maxlen=history_size)

    def enter(self, member: Chan[Message]) -> None:
        with self._lock:
            self._members.add(member)

    def leave(self, member: Chan[Message]) -> None:
        with self._lock:
            self._members.discard(member)

    def say(self, message: Message) -> None:
        with self._lock:
            self.history.append(message)
            members = list(self._members)
        for member in members:
            try:
                member.send(message, timeout=1.0)
            except (TimeoutError, ChanClosed):
                self.leave(member)
                member.close()


class Chat(ChatService):
    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}
        self._lock = threading.Lock()

    def room(self, room_id: str) -> Room:
        with self._lock:
            return self._rooms.setdefault(room_id, Room())

    def join_room(self, room_id: str, incoming: Chan[str]) -> Chan[Message]:
        room = self.room(room_id)
        sender = current_call().metadata.get("user", "anonymous")
        outgoing: Chan[Message] = Chan(64)
        room.enter(outgoing)
        # Everyone, the newcomer included, hears the arrival: its first message
        # tells the newcomer it is in and will hear what is said from now on.
        room.say(Message(sender="System", text=f"{sender} joined {room_id}"))

        def relay() -> None:
            try:
                for text in incoming:
                    room.say(Message(sender=sender, text=text))
            except Exception as exc:  # the member's connection dropped
                log.info("%s left %s: %s", sender, room_id, exc)
            finally:
                room.leave(outgoing)
                outgoing.close()

        threading.Thread(target=relay, daemon=True).start()
        return outgoing

    def history(self, room_id: str, limit: int = 50) -> list[Message]:
        return list(self.room(room_id).history)[-limit:] if limit > 0 else []

    def tail(self, room_id: str) -> Chan[Message]:
        follower: Chan[Message] = Chan(64)
        self.room(room_id).enter(follower)
        return follower

    def upload(self, lines: Chan[str]) -> int:
        room = self.room("uploads")
        sender = current_call().metadata.get("user", "anonymous")
        count = 0
        for line in lines:
            room.say(Message(sender=sender, text=line))
            count += 1
        return count


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    address = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:7071"
    server = Server(address)
    register_chat_service(server, Chat())
    server.start()
    print(f"chat server listening on {server.addresses[0]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

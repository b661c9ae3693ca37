"""Serve ChatService on asyncio: `python examples/chat/server_aio.py [ADDRESS]`.

The rooms of server.py, written against the async interface (`ChatServiceAsync` in
service_aio.py, from `gopherpipe gen --asyncio`) and served by
`gopherpipe_runtime.aio.Server`. Threaded clients (client.py) and asyncio clients
(client_aio.py) share the rooms: the wire is the same.

What a member costs. A member is one bidi stream (`join_room`, an async generator
that yields the member's outbox) and one relay task that reads what the member says
and says it in the room. On a loop a task is a few KiB and waking one costs no
thread switch, so one per member is the simple design here; server.py needed relay
threads of 64 members each to keep threads few.

Slow members, as in server.py: `say` never waits for anyone. It puts the message in
each member's outbox with `try_send`; a member whose outbox is full (its client stopped
reading: OUTBOX messages on top of the stream's flow-control window) is removed, and
its stream ends with RESOURCE_EXHAUSTED after what is already queued.

Any address works: tcp://, unix://, tls://, ws://, wss://; certificates for tls:// and
wss:// come from the environment as for server.py. Runs on uvloop when installed.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator

from service import Message
from service_aio import ChatServiceAsync, register_chat_service_async

from gopherpipe_runtime import ChanClosed, InvalidArgumentError, ResourceExhaustedError
from gopherpipe_runtime.aio import Chan, Server, current_call, run
from gopherpipe_runtime.transport.tls import context_from_env

log = logging.getLogger("chat")

OUTBOX = 1024
"""Messages buffered per member, beyond its stream's window, before it is removed for
not reading (shared references to the room's messages)."""


class Member:
    """Someone in a room: their outbox."""

    __slots__ = ("name", "outbox")

    def __init__(self, name: str) -> None:
        self.name = name
        self.outbox: Chan[Message] = Chan(OUTBOX)

    def offer(self, message: Message) -> bool:
        """Queue `message` without waiting; False if the member is gone or not reading."""
        try:
            return self.outbox.try_send(message)
        except ChanClosed:
            return False


class Room:
    """Everything happens on the loop's thread: no locks, and the order in which
    `say` is called is the order every member hears."""

    def __init__(self, room_id: str, history_size: int = 1000) -> None:
        self.room_id = room_id
        self._members: set[Member] = set()
        self._history: deque[Message] = deque(maxlen=history_size)

    def __len__(self) -> int:
        return len(self._members)

    def enter(self, member: Member, welcome: Message | None = None) -> None:
        if welcome is not None:
            member.offer(welcome)
        self._members.add(member)

    def leave(self, member: Member) -> None:
        self._members.discard(member)

    def recent(self, limit: int) -> list[Message]:
        return list(self._history)[-limit:] if limit > 0 else []

    def say(self, message: Message) -> None:
        self._history.append(message)
        behind = [member for member in self._members if not member.offer(message)]
        self._members.difference_update(behind)
        for member in behind:
            if not member.outbox.closed:
                log.info("%s removed from %s: not reading", member.name, self.room_id)
            member.outbox.close(
                ResourceExhaustedError(
                    f"removed from {self.room_id}: more than {OUTBOX} messages unread"
                )
            )


class Chat(ChatServiceAsync):
    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}

    def room(self, room_id: str) -> Room:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = Room(room_id)
        return room

    async def join_room(self, room_id: str, incoming: AsyncIterator[str]) -> AsyncIterator[Message]:
        room = self.room(room_id)
        member = Member(current_call().metadata.get("user", "anonymous"))
        welcome = f"welcome to {room_id}, {member.name}: {len(room) + 1} members here"
        room.enter(member, Message(sender="System", text=welcome))
        relay = asyncio.create_task(self._relay(member, room, incoming))
        try:
            async for message in member.outbox:
                yield message
        finally:
            relay.cancel()
            room.leave(member)

    async def _relay(self, member: Member, room: Room, incoming: AsyncIterator[str]) -> None:
        """Say in the room what the member says; once they stop, end their stream."""
        try:
            async for text in incoming:
                room.say(Message(sender=member.name, text=text))
        except InvalidArgumentError as exc:  # a hand-made client sent a non-string
            log.info("%s: dropped what they said: %s", member.name, exc)
        except Exception as exc:  # their connection dropped, or they cancelled
            log.info("%s left %s: %s", member.name, room.room_id, exc)
        room.leave(member)
        member.outbox.close()  # ends their stream after what is queued for them

    async def history(self, room_id: str, limit: int = 50) -> list[Message]:
        return self.room(room_id).recent(limit)

    async def tail(self, room_id: str) -> AsyncIterator[Message]:
        follower = Member(current_call().metadata.get("user", "anonymous"))
        room = self.room(room_id)
        room.enter(follower)
        try:
            async for message in follower.outbox:
                yield message
        finally:
            room.leave(follower)

    async def upload(self, lines: AsyncIterator[str]) -> int:
        room = self.room("uploads")
        sender = current_call().metadata.get("user", "anonymous")
        count = 0
        async for line in lines:
            room.say(Message(sender=sender, text=line))
            count += 1
        return count


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    address = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:7071"
    server = Server(address, tls=context_from_env(server_side=True))
    register_chat_service_async(server, Chat())
    await server.start()
    print(f"chat server (asyncio) listening on {server.addresses[0]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    run(main())

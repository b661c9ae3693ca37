"""Serve ChatService: `python examples/chat/server.py [ADDRESS]` (default tcp://127.0.0.1:7071).

Every member of a room gets every message said in it, all in the same order.

What a member costs. A member is one bidi stream (`join_room`). It holds no runtime
thread: the handler returns the member's outbox channel at once, and the runtime
sends what is put on it without a thread of its own. What members say is read by
relay threads of ours, one per RELAY_GROUP (64) members, each waiting in `select`
on its members' channels. Measured with 2,000 members in one room
(tests/test_chat_room_scale.py, CPython 3.11 on Linux): about 13 KiB of server
memory per member (its stream, channels and buffers; the relay threads add a
quarter of a KiB each); 32 relay threads; the runtime's threads stay at most
max_workers + 2 however many members there are.

Why relay threads for 64 members each, not one per member (as Go would run a
goroutine each): a thread per member costs about 16 KiB, more than everything
else a member costs, and bursts hurt: 2,000 members leaving at once wake 2,000
threads that fight over the GIL and the room's lock, and starting a thread per
join slows joins; in the scale test that pushed a concurrent unary call past 1 s.
Grouping has a price too: a select registers with every channel it covers, so
each message and each departure costs work in proportion to the group, which is
why groups stay small (64) and departures are handled in batches.

Slow members. `say` never waits for a member: it puts the message in the member's
outbox with `try_send`, holding the room's lock, so every member hears the room in
the same order and saying costs the same whoever is listening. A member whose
outbox is full (OUTBOX messages not yet sent, on top of the stream's flow-control
window of 1,024 messages the client has not read: its client stopped reading) is
removed from the room; its stream ends with RESOURCE_EXHAUSTED after the messages
already queued for it, and what it says is no longer relayed. One stalled client
costs the others nothing.

Joining. The newcomer gets a welcome message (its first: from then on it hears
everything said), but the room is not told: in a room of N members, announcing
every arrival would make a burst of N joins cost N² messages.

Any address works: tcp://, unix://, tls://, ws://, wss://. For tls:// and wss:// the
certificates come from the environment (`transport.tls.context_from_env`):
GOPHERPIPE_TLS_CERT and GOPHERPIPE_TLS_KEY, and GOPHERPIPE_TLS_CA for the CA whose
client certificates the server requires (mTLS).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque

from service import ChatService, Message
from service_server import register_chat_service

from gopherpipe_runtime import (
    Chan,
    ChanClosed,
    InvalidArgumentError,
    ResourceExhaustedError,
    Server,
    current_call,
    select,
)
from gopherpipe_runtime.transport.tls import context_from_env

log = logging.getLogger("chat")

OUTBOX = 1024
"""Messages buffered per member, beyond what its stream's window holds, before it is
removed for not reading. They are shared references to the room's messages, so a
full outbox costs about 8 KiB."""
RELAY_GROUP = 64
"""Members whose messages one relay thread reads."""


class Member:
    """Someone in a room: their outbox, and what they say (None for a follower)."""

    __slots__ = ("incoming", "name", "outbox")

    def __init__(self, name: str, incoming: Chan[str] | None) -> None:
        self.name = name
        self.incoming = incoming
        self.outbox: Chan[Message] = Chan(OUTBOX)

    def offer(self, message: Message) -> bool:
        """Queue `message` without waiting; False if the member is gone or not reading."""
        try:
            return self.outbox.try_send(message)
        except ChanClosed:  # the client cancelled, or its connection dropped
            return False

    def remove(self, error: BaseException | None = None) -> None:
        """End the member's stream (after what is queued) and stop relaying it."""
        self.outbox.close(error)
        if self.incoming is not None:
            self.incoming.close()


class Room:
    def __init__(self, room_id: str, history_size: int = 1000) -> None:
        self.room_id = room_id
        self._lock = threading.Lock()
        self._members: set[Member] = set()
        self._history: deque[Message] = deque(maxlen=history_size)

    def enter(self, member: Member, welcome: Message | None = None) -> None:
        """Add `member`; `welcome` is the first message it gets, before anything said."""
        with self._lock:
            if welcome is not None:
                member.offer(welcome)
            self._members.add(member)

    def leave(self, member: Member) -> None:
        with self._lock:
            self._members.discard(member)

    def __len__(self) -> int:
        return len(self._members)

    def recent(self, limit: int) -> list[Message]:
        with self._lock:  # say() appends meanwhile: iterating the deque unlocked may fail
            return list(self._history)[-limit:] if limit > 0 else []

    def say(self, message: Message) -> None:
        with self._lock:
            self._history.append(message)
            behind = [member for member in self._members if not member.offer(message)]
            self._members.difference_update(behind)
        for member in behind:
            if not member.outbox.closed:
                log.info("%s removed from %s: not reading", member.name, self.room_id)
            member.remove(
                ResourceExhaustedError(
                    f"removed from {self.room_id}: more than {OUTBOX} messages unread"
                )
            )


class Relay:
    """One thread that relays to their rooms what up to RELAY_GROUP members say.

    It waits in `select` on its members' channels, and on `arrivals` for new
    members, then handles the one that is ready (select picks at random among
    several, so none starves).
    """

    def __init__(self, number: int) -> None:
        self._lock = threading.Lock()
        self._load = 0
        self._arrivals: Chan[tuple[Member, Room]] = Chan(RELAY_GROUP)
        self._thread = threading.Thread(target=self._run, name=f"chat-relay-{number}", daemon=True)
        self._thread.start()

    def reserve(self) -> bool:
        """Take a place for one more member, if there is one."""
        with self._lock:
            if self._load >= RELAY_GROUP:
                return False
            self._load += 1
            return True

    def add(self, member: Member, room: Room) -> None:
        """Relay `member` (a place was reserved for it)."""
        self._arrivals.send((member, room))  # never waits: at most RELAY_GROUP are queued

    def _run(self) -> None:
        rooms: dict[Chan[str], tuple[Member, Room]] = {}
        while True:
            listening = list(rooms)
            try:
                case, value, ok = select(self._arrivals, *listening)
            except InvalidArgumentError as exc:  # a hand-made client sent a non-string
                log.info("dropped a message: %s", exc)
                continue
            if case == 0:
                member, room = value
                assert member.incoming is not None
                rooms[member.incoming] = value
                continue
            member, room = rooms[listening[case - 1]]
            if ok:
                room.say(Message(sender=member.name, text=value))
                continue
            # Members stop talking (their clients half-close, their connections drop,
            # or they were removed) in bursts: let every one that has, leave now,
            # rather than selecting over all the others again for each.
            for incoming in listening:
                if incoming.closed and not len(incoming):
                    self._leave(*rooms.pop(incoming))

    def _leave(self, member: Member, room: Room) -> None:
        room.leave(member)
        member.outbox.close()  # ends its stream after what is queued for it
        assert member.incoming is not None
        if member.incoming.error is not None:
            log.info("%s left %s: %s", member.name, room.room_id, member.incoming.error)
        with self._lock:
            self._load -= 1


class Chat(ChatService):
    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}
        self._relays: list[Relay] = []
        self._lock = threading.Lock()

    def room(self, room_id: str) -> Room:
        with self._lock:
            room = self._rooms.get(room_id)
            if room is None:
                room = self._rooms[room_id] = Room(room_id)
            return room

    def _relay(self) -> Relay:
        """A relay with room for one more member; a new one if all are full."""
        with self._lock:
            for relay in self._relays:
                if relay.reserve():
                    return relay
            relay = Relay(len(self._relays))
            relay.reserve()
            self._relays.append(relay)
            return relay

    def join_room(self, room_id: str, incoming: Chan[str]) -> Chan[Message]:
        room = self.room(room_id)
        name = current_call().metadata.get("user", "anonymous")
        member = Member(name, incoming)
        welcome = f"welcome to {room_id}, {name}: {len(room) + 1} members here"
        room.enter(member, Message(sender="System", text=welcome))
        self._relay().add(member, room)
        return member.outbox

    def history(self, room_id: str, limit: int = 50) -> list[Message]:
        return self.room(room_id).recent(limit)

    def tail(self, room_id: str) -> Chan[Message]:
        follower = Member(current_call().metadata.get("user", "anonymous"), None)
        self.room(room_id).enter(follower)
        return follower.outbox

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
    server = Server(address, tls=context_from_env(server_side=True))
    register_chat_service(server, Chat())
    server.start()
    print(f"chat server listening on {server.addresses[0]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

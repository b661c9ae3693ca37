"""The seed notes' chat snippet (gopherpipe-notes.md), on asyncio with `async for`.

The Go original: the server echoes each incoming line as a System message; the client
sends two lines from a goroutine, closes its input, and ranges over the output. Here the
server is an async generator and the client an `async for`, over memory:// in one
process. tests/test_aio_interop_e2e.py runs it and checks what it prints.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "chat"))

from service import Message
from service_aio import (
    ChatServiceAsync,
    ChatServiceAsyncClient,
    register_chat_service_async,
)

from gopherpipe_runtime.aio import Chan, Server
from gopherpipe_runtime.testing import memory_address


class SeedServer(ChatServiceAsync):
    async def join_room(self, room_id: str, incoming: AsyncIterator[str]) -> AsyncIterator[Message]:
        async for text in incoming:  # for text := range incoming
            yield Message(sender="System", text="Echo: " + text)

    async def history(self, room_id: str, limit: int = 50) -> list[Message]:
        return []

    async def tail(self, room_id: str) -> AsyncIterator[Message]:
        return
        yield  # an async generator that ends at once

    async def upload(self, lines: AsyncIterator[str]) -> int:
        return 0


async def main() -> None:
    server = Server(memory_address())
    register_chat_service_async(server, SeedServer())
    async with server, ChatServiceAsyncClient.dial(server.addresses[0]) as client:
        input: Chan[str] = Chan()  # input := make(chan string)
        output = client.join_room("General", input)

        async def speak() -> None:  # go func() { ... }()
            await input.send("Hello Gophers!")
            await input.send("Is this thing on?")
            input.close()

        speaker = asyncio.create_task(speak())
        async for msg in output:  # for msg := range output
            print(f"[{msg.sender}]: {msg.text}")
        await speaker


if __name__ == "__main__":
    asyncio.run(main())

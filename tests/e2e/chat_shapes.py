"""Every call shape of the chat example, from a threaded or an asyncio client.

    python chat_shapes.py ADDRESS threads|asyncio

Prints one JSON object: what each shape returned. tests/test_aio_interop_e2e.py runs
it against the threaded and the asyncio chat server (examples/chat) and expects the
same answers from all four pairings.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "chat"))

ROOM = "interop"
PINGS = 100
"""Lines uploaded until the tail hears one: a follower is in the room only once the
server ran its handler, which the client does not wait for."""


def threaded(address: str) -> dict[str, Any]:
    from service_client import ChatServiceClient

    from gopherpipe_runtime import Chan

    out: dict[str, Any] = {}
    with ChatServiceClient.dial(address) as client:
        chat = client.with_options(timeout=20, metadata={"user": "threads"})
        out["history_before"] = [m.text for m in chat.history(ROOM)]
        tail = chat.tail("uploads")
        for i in range(PINGS):
            chat.upload([f"ping {i}"])
            try:
                tail.recv(timeout=0.1)
                break
            except TimeoutError:
                continue
        out["upload"] = chat.upload(iter(["a", "b", "c"]))
        heard = []
        for message in tail:
            if message.text in ("a", "b", "c"):
                heard.append(message.text)
            if message.text == "c":
                break
        tail.close()
        out["tail"] = heard
        incoming: Chan[str] = Chan(4)
        replies = chat.join_room(ROOM, incoming)
        out["welcome"] = replies.recv().text.split(":")[0]
        incoming.send("hello")
        out["bidi"] = [replies.recv().text]
        incoming.close()
        out["bidi_rest"] = [m.text for m in replies]
        out["history_after"] = [m.text for m in chat.history(ROOM)]
    return out


async def with_asyncio(address: str) -> dict[str, Any]:
    from service_aio import ChatServiceAsyncClient

    from gopherpipe_runtime.aio import Chan

    out: dict[str, Any] = {}
    async with ChatServiceAsyncClient.dial(address) as client:
        chat = client.with_options(timeout=20, metadata={"user": "asyncio"})
        out["history_before"] = [m.text for m in await chat.history(ROOM)]
        tail = chat.tail("uploads")
        for i in range(PINGS):
            await chat.upload([f"ping {i}"])
            try:
                async with asyncio.timeout(0.1):
                    await anext(tail)
                break
            except TimeoutError:
                continue

        async def lines() -> AsyncIterator[str]:
            for line in ("a", "b", "c"):
                yield line

        out["upload"] = await chat.upload(lines())
        heard = []
        async for message in tail:
            if message.text in ("a", "b", "c"):
                heard.append(message.text)
            if message.text == "c":
                break
        await tail.aclose()  # type: ignore[attr-defined]
        out["tail"] = heard
        incoming: Chan[str] = Chan(4)
        replies = chat.join_room(ROOM, incoming)
        out["welcome"] = (await anext(replies)).text.split(":")[0]
        await incoming.send("hello")
        out["bidi"] = [(await anext(replies)).text]
        incoming.close()
        out["bidi_rest"] = [m.text async for m in replies]
        out["history_after"] = [m.text for m in await chat.history(ROOM)]
    return out


def main() -> None:
    address, kind = sys.argv[1], sys.argv[2]
    result = threaded(address) if kind == "threads" else asyncio.run(with_asyncio(address))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

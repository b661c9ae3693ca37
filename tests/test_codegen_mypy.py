"""Every golden case's stubs (the asyncio ones too), and the examples', pass `mypy --strict`;
so does a user's asyncio implementation written with async generators, and mypy refuses
one whose methods have the wrong shapes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "service.py").exists())
STUBS = ["service_client.py", "service_server.py", "service_aio.py"]

# A user of the streams case's asyncio stubs (DESIGN.md's chat contract): server streams
# and bidi written as async generators, a Chan parameter taken as an AsyncIterator, and
# code typed against the interface that takes the client and a local implementation alike.
AIO_USER = """
from __future__ import annotations

from collections.abc import AsyncIterator

from gopherpipe_runtime.aio import Server
from service import Message, Mood
from service_aio import (
    ChatServiceAsync,
    ChatServiceAsyncClient,
    PulseAsync,
    SpellingsAsync,
    register_chat_service_async,
    register_pulse_async,
    register_spellings_async,
)


class Chat(ChatServiceAsync):
    async def join_room(
        self, room_id: str, incoming: AsyncIterator[str]
    ) -> AsyncIterator[Message]:
        async for text in incoming:
            yield Message(room_id, text, Mood.GRUMPY)

    async def history(self, room_id: str, limit: int = 50) -> list[Message]:
        return [Message(room_id, "hello")][:limit]

    async def tail(self, room_id: str) -> AsyncIterator[Message]:
        yield Message(room_id, "tail")

    async def upload(self, lines: AsyncIterator[str]) -> int:
        return len([line async for line in lines])


class Spell(SpellingsAsync):
    async def first(self, lines: AsyncIterator[str], /, room: str) -> int:
        return 0

    async def qualified(self, room: str, numbers: AsyncIterator[int], /) -> AsyncIterator[float]:
        async for number in numbers:
            yield number / 2

    async def quoted(self, messages: AsyncIterator[Message]) -> AsyncIterator[Message | None]:
        async for message in messages:
            yield message
        yield None


class Beats(PulseAsync):
    async def beats(self, pings: AsyncIterator[None]) -> AsyncIterator[None]:
        async for ping in pings:
            yield ping


async def lines() -> AsyncIterator[str]:
    yield "a"


async def use(chat: ChatServiceAsync) -> int:
    total = len(await chat.history("room", limit=3))
    async for message in chat.tail("room"):
        total += len(message.text)
    async for message in chat.join_room("room", lines()):
        total += len(message.text)
    return total + await chat.upload(lines())


async def main() -> None:
    async with ChatServiceAsyncClient.dial("tcp://127.0.0.1:7070") as client:
        await use(client)
        await use(Chat())
        # A client takes plain iterables for stream arguments too.
        await client.with_options(timeout=1.0).upload(["a", "b"])
        async for message in client.join_room("room", ("x", "y")):
            print(message.mood)
    server = Server("tcp://127.0.0.1:0")
    register_chat_service_async(server, Chat())
    register_spellings_async(server, Spell())
    register_pulse_async(server, Beats())
"""

# The same interface implemented with the wrong shapes: every line mypy must refuse.
AIO_WRONG = """
from collections.abc import AsyncIterator

from service import Message
from service_aio import ChatServiceAsync, ChatServiceAsyncClient


class Wrong(ChatServiceAsync):
    async def join_room(self, room_id: str, incoming: list[str]) -> AsyncIterator[Message]:
        yield Message(room_id, "x")

    def history(self, room_id: str, limit: int = 50) -> list[Message]:
        return []

    async def tail(self, room_id: str) -> list[Message]:
        return []

    async def upload(self, lines: AsyncIterator[str]) -> str:
        return ""


async def misuse(client: ChatServiceAsyncClient) -> None:
    client.history("room")
    for message in client.tail("room"):
        print(message)
"""
WRONG_LINES = {9, 12, 15, 18, 23, 24}


def _mypy(cwd: Path, files: list[str], cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), *files],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{cwd}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _warm(cache: Path) -> None:
    # Warm the cache with the runtime first so parallel runs do not race to write it.
    subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), "-p",
         "gopherpipe_runtime"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip


def test_stubs_pass_mypy_strict(tmp_path: Path, copy_case: Callable[[str, Path], Path]) -> None:
    # Flat cases all have a module called `service`, so each case is its own mypy run;
    # the runs go in parallel and share a cache, so the runtime is analysed once.
    runs: dict[str, tuple[Path, list[str]]] = {}
    for case in CASES:
        folder = copy_case(case, tmp_path / "cases")
        for stub in STUBS:
            shutil.copy(GOLDEN / case / stub, folder / stub)
        files = list(STUBS)
        if case == "streams":
            (folder / "aio_user.py").write_text(AIO_USER)
            files.append("aio_user.py")
        if (folder / "__init__.py").exists():
            runs[case] = (folder.parent, [f"{case}/{name}" for name in files])
        else:
            runs[case] = (folder, files)
    for example in ("echo", "chat"):
        runs[f"examples/{example}"] = (ROOT / "examples" / example, STUBS)
    cache = tmp_path / "mypy_cache"
    _warm(cache)
    processes = {case: _mypy(cwd, files, cache) for case, (cwd, files) in runs.items()}
    failures = {}
    for case, process in processes.items():
        output, _ = process.communicate(timeout=110)
        if process.returncode != 0:
            failures[case] = output
    assert failures == {}
    assert set(runs) == {*CASES, "examples/echo", "examples/chat"}
    assert "aio_user.py" in runs["streams"][1]


def test_mypy_refuses_an_asyncio_implementation_of_the_wrong_shape(
    tmp_path: Path, copy_case: Callable[[str, Path], Path]
) -> None:
    # Without this, the test above would pass as well for stubs typed too loosely
    # (Any, or no abstract methods) to check an implementation at all.
    folder = copy_case("streams", tmp_path)
    for stub in STUBS:
        shutil.copy(GOLDEN / "streams" / stub, folder / stub)
    (folder / "aio_wrong.py").write_text(AIO_WRONG)
    cache = tmp_path / "mypy_cache"
    _warm(cache)
    output, _ = _mypy(folder, ["aio_wrong.py"], cache).communicate(timeout=110)
    errors = [line for line in output.splitlines() if ": error: " in line]
    assert {int(line.split(":")[1]) for line in errors} == WRONG_LINES, output

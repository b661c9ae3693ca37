"""The interop matrix: threaded and asyncio clients against threaded and asyncio servers,
every call shape, each side in its own process (the chat example's servers, and
tests/e2e/chat_shapes.py as the client)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import same_checkout_env

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "examples" / "chat"
SHAPES = Path(__file__).resolve().parent / "e2e" / "chat_shapes.py"


@pytest.fixture(params=["server.py", "server_aio.py"])
def chat_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    script: str = request.param
    process = subprocess.Popen(
        [sys.executable, script, "tcp://127.0.0.1:0"],
        cwd=CHAT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=same_checkout_env(),
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert "listening on" in banner, f"{script} did not start"
        yield script, banner.split()[-1]
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("client", ["threads", "asyncio"])
def test_every_shape_between(chat_server: tuple[str, str], client: str) -> None:
    _, address = chat_server
    done = subprocess.run(
        [sys.executable, str(SHAPES), address, client],
        capture_output=True,
        text=True,
        timeout=60,
        env=same_checkout_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["history_before"] == []  # a fresh server per pairing
    assert result["upload"] == 3  # client stream
    assert result["tail"] == ["a", "b", "c"]  # server stream
    assert result["welcome"] == "welcome to interop, " + client  # bidi
    assert result["bidi"] == ["hello"]
    assert result["bidi_rest"] == []  # ends once the client half-closes
    assert result["history_after"] == ["hello"]  # unary


def test_the_seed_chat_snippet_with_async_for() -> None:
    done = subprocess.run(
        [sys.executable, str(SHAPES.parent / "seed_snippet_aio.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=same_checkout_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "[System]: Echo: Hello Gophers!",
        "[System]: Echo: Is this thing on?",
    ]

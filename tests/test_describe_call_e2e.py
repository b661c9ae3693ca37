"""`gopherpipe describe` and `gopherpipe call` as a new user runs them from the README:
the chat example's server (examples/chat/server.py) in one process, the CLI in
others, over TCP and over mutual TLS; all four call shapes, errors and exit codes."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
from e2e_harness import same_checkout_env

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "examples" / "chat"
CERTS = ROOT / "examples" / "certs"
GOPHERPIPE = Path(sys.executable).parent / "gopherpipe"
TLS_ENV = ("GOPHERPIPE_TLS_CA", "GOPHERPIPE_TLS_CERT", "GOPHERPIPE_TLS_KEY")


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = same_checkout_env()
    for name in TLS_ENV:
        env.pop(name, None)
    env.update(extra or {})
    return env


@contextmanager
def chat_server(address: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """examples/chat/server.py on `address`; yields the address it printed."""
    server = subprocess.Popen(
        [sys.executable, "server.py", address],
        cwd=CHAT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment(env),
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()  # bounded: the server prints it or exits
        assert "listening on" in banner, banner
        yield banner.split()[-1]
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with chat_server("tcp://127.0.0.1:0") as bound:
        yield bound


def gp(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GOPHERPIPE), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(env),
    )


def test_describe_prints_python_like_signatures(address: str) -> None:
    result = gp("describe", address)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "class ChatService:",
        '"""Rooms where gophers talk."""',
        "def join_room(self, room_id: str, incoming: Chan[str]) -> Chan[Message]:  # bidi",
        "    @idempotent\n    def history(self, room_id: str, limit: int = 50) -> list[Message]:"
        "  # unary",
        "def tail(self, room_id: str) -> Chan[Message]:  # server_stream",
        "def upload(self, lines: Chan[str]) -> int:  # client_stream",
        "Unary: the room's last `limit` messages, oldest first.",
        "@dataclass\nclass Message:\n    sender: str\n    text: str\n    mood: Mood = Mood.HAPPY",
        "class Mood(Enum):\n    HAPPY = 1\n    GRUMPY = 2",
    ):
        assert expected in out, f"{expected!r} not in\n{out}"


def test_describe_one_service_as_json_and_unknown_service(address: str) -> None:
    result = gp("describe", address, "ChatService", "--json")
    assert result.returncode == 0, result.stderr
    (schema,) = json.loads(result.stdout)
    assert schema["name"] == "ChatService"
    assert [m["kind"] for m in schema["methods"]] == [
        "bidi",
        "unary",
        "server_stream",
        "client_stream",
    ]
    assert schema["types"]["Mood"] == {
        "kind": "enum",
        "doc": "",
        "members": [["HAPPY", 1], ["GRUMPY", 2]],
    }
    missing = gp("describe", address, "NoSuchService")
    assert missing.returncode == 10 + 5, missing.stderr
    assert missing.stderr.startswith("NOT_FOUND: "), missing.stderr


def test_call_client_stream_then_unary(address: str) -> None:
    """upload reads JSON lines from stdin; history, by name and by position, shows them
    (the Enum field by its member's name)."""
    uploaded = gp(
        "call", address, "ChatService.upload", "--metadata", "user=ann", stdin='"hi"\n\n"bye"\n'
    )
    assert (uploaded.returncode, uploaded.stdout.strip()) == (0, "2"), uploaded.stderr
    by_name = gp("call", address, "ChatService.history", '{"room_id": "uploads", "limit": 2}')
    assert by_name.returncode == 0, by_name.stderr
    assert json.loads(by_name.stdout) == [
        {"sender": "ann", "text": "hi", "mood": "HAPPY"},
        {"sender": "ann", "text": "bye", "mood": "HAPPY"},
    ]
    assert by_name.stdout.startswith("[\n  {\n")  # pretty
    by_position = gp("call", address, "ChatService.history", '["uploads", 1]')
    assert json.loads(by_position.stdout) == [{"sender": "ann", "text": "bye", "mood": "HAPPY"}]


class Lines:
    """A subprocess's stdout lines, read by a thread, waited for with a bound."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def next(self, timeout: float = 30.0) -> str:
        return self._lines.get(timeout=timeout)

    def empty(self) -> bool:
        return self._lines.empty()


def test_call_server_stream_prints_items_as_they_arrive(address: str) -> None:
    tail = subprocess.Popen(
        [str(GOPHERPIPE), "call", address, "ChatService.tail", '{"room_id": "followed"}'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        assert tail.stdout is not None
        lines = Lines(tail.stdout)
        # tail follows from when it joins, which the CLI does not announce: post until
        # a line comes through (bounded), then one more that must follow it.
        got = None
        for attempt in range(50):
            posted = gp(
                "call", address, "ChatService.join_room", '["followed"]', "-m", "user=bob",
                stdin=f'"ping {attempt}"\n',
            )  # fmt: skip
            assert posted.returncode == 0, posted.stderr
            try:
                got = json.loads(lines.next(timeout=0.5))
                break
            except queue.Empty:
                continue
        assert got is not None, "tail printed nothing"
        while got["sender"] != "bob":  # the room's System notices come through too
            got = json.loads(lines.next())
        assert got["mood"] == "HAPPY" and got["text"].startswith("ping ")
        gp(
            "call",
            address,
            "ChatService.join_room",
            '["followed"]',
            "-m",
            "user=bob",
            stdin='"last"\n',
        )
        texts = []
        while "last" not in texts:
            texts.append(json.loads(lines.next())["text"])
        assert tail.poll() is None  # still following: a server stream has no end here
    finally:
        tail.terminate()
        tail.wait(30)


def test_call_bidi_reads_stdin_and_prints_the_stream(address: str) -> None:
    result = gp(
        "call", address, "ChatService.join_room", '{"room_id": "bidi"}', "--metadata", "user=ann",
        stdin='"hello"\n"GRUMPY day"\n',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert items[0]["sender"] == "System" and "ann" in items[0]["text"]
    assert items[1:] == [
        {"sender": "ann", "text": "hello", "mood": "HAPPY"},
        {"sender": "ann", "text": "GRUMPY day", "mood": "HAPPY"},
    ]


def test_call_errors_and_exit_codes(address: str) -> None:
    bad_type = gp("call", address, "ChatService.history", '{"room_id": 5}')
    assert bad_type.returncode == 2
    assert "history(): argument 'room_id': expected a string, got 5" in bad_type.stderr
    unknown_arg = gp("call", address, "ChatService.history", '{"room": "x"}')
    assert (unknown_arg.returncode, unknown_arg.stderr.strip()) == (
        2,
        "error: history() has no argument 'room'",
    )
    missing = gp("call", address, "ChatService.history")
    assert missing.returncode == 2 and "needs the argument 'room_id'" in missing.stderr
    no_method = gp("call", address, "ChatService.nope")
    assert no_method.returncode == 2 and "has no method 'nope'" in no_method.stderr
    no_service = gp("call", address, "Nope.history")
    assert no_service.returncode == 2 and "no service 'Nope'" in no_service.stderr
    not_json = gp("call", address, "ChatService.history", "{room")
    assert not_json.returncode == 2 and "not JSON" in not_json.stderr
    bad_line = gp("call", address, "ChatService.upload", stdin='"ok"\n5\n')
    assert bad_line.returncode == 2
    assert "input 2: expected a string, got 5" in bad_line.stderr, bad_line.stderr
    # The server's own errors: CODE: message, exit 10 + code.
    deadline = gp("call", address, "ChatService.tail", '["quiet"]', "--timeout", "0.3")
    assert deadline.returncode == 10 + 4, deadline.stderr
    assert deadline.stderr.startswith("DEADLINE_EXCEEDED: ")
    unreachable = gp("call", "tcp://127.0.0.1:1", "ChatService.history", '["x"]')
    assert unreachable.returncode == 10 + 14
    assert unreachable.stderr.startswith("UNAVAILABLE: ")


def test_describe_and_call_over_mutual_tls() -> None:
    server_env = {
        "GOPHERPIPE_TLS_CERT": str(CERTS / "server.pem"),
        "GOPHERPIPE_TLS_KEY": str(CERTS / "server.key"),
        "GOPHERPIPE_TLS_CA": str(CERTS / "ca.pem"),
    }
    tls_args = (
        "--ca", str(CERTS / "ca.pem"),
        "--cert", str(CERTS / "client.pem"),
        "--key", str(CERTS / "client.key"),
    )  # fmt: skip
    with chat_server("tls://127.0.0.1:0", server_env) as bound:
        described = gp("describe", bound, "ChatService", *tls_args)
        assert described.returncode == 0, described.stderr
        assert "class ChatService:" in described.stdout
        called = gp("call", bound, "ChatService.history", '["empty"]', *tls_args)
        assert (called.returncode, json.loads(called.stdout)) == (0, []), called.stderr
        client_env = {
            "GOPHERPIPE_TLS_CERT": str(CERTS / "client.pem"),
            "GOPHERPIPE_TLS_KEY": str(CERTS / "client.key"),
            "GOPHERPIPE_TLS_CA": str(CERTS / "ca.pem"),
        }
        from_env = gp("call", bound, "ChatService.history", '["empty"]', env=client_env)
        assert from_env.returncode == 0, from_env.stderr


@pytest.mark.parametrize("scheme", ["unix", "ws"])
def test_describe_and_call_over_unix_and_websocket(scheme: str, tmp_path: Path) -> None:
    where = f"unix://{tmp_path}/chat.sock" if scheme == "unix" else "ws://127.0.0.1:0/chat"
    with chat_server(where) as bound:
        described = gp("describe", bound)
        assert described.returncode == 0 and "class ChatService:" in described.stdout
        uploaded = gp("call", bound, "ChatService.upload", stdin='"one"\n')
        assert (uploaded.returncode, uploaded.stdout.strip()) == (0, "1"), uploaded.stderr


@pytest.mark.parametrize("command", ["describe", "call"])
def test_help_has_examples_and_exit_codes(command: str) -> None:
    result = gp(command, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "Examples:" in text and f"gopherpipe {command} tcp://127.0.0.1:7070" in text
    assert "10 + the status code" in text


def test_cli_imports_only_the_runtime() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['gopherpipe', 'call', 'tcp://127.0.0.1:1', 'S.m', '[]']\n"
        "from gopherpipe_gen.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    loaded = [m for m in ('libcst', 'jinja2', 'black') if m in sys.modules]\n"
        "    print(exc.code, loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=environment()
    )
    assert done.stdout.strip() == "24 []", done.stdout + done.stderr

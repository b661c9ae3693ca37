"""Serve one generation of the evolution contract in its own process:
`evolution_serve.py STUB_DIR`. STUB_DIR holds ``evolution.py`` and its stubs, v1 or v2
(tests/e2e/evolution/); the implementation below suits both. Prints the bound address,
then serves until stdin closes."""

from __future__ import annotations

import sys
from typing import Any

sys.path.insert(0, sys.argv[1])

import evolution  # type: ignore[import-not-found]
from evolution_server import register_evolving  # type: ignore[import-not-found]

from gopherpipe_runtime import Server

V2 = hasattr(evolution.Level, "URGENT")


class Impl(evolution.Evolving):  # type: ignore[misc]
    def echo(self, note: Any) -> Any:
        if V2:  # what a v1 peer cannot see: the new field, filled in
            return evolution.Note(note.text, note.level, [*note.tags, "seen by v2"])
        return note

    def greet(self, name: str, polite: bool = False) -> str:
        return f"Good day, {name}." if polite else f"hi {name}"

    def level(self, name: str) -> Any:
        return evolution.Level[name]

    def take_level(self, level: Any) -> str:
        return level.name

    def length(self, text: str | None) -> int | None:
        return None if text is None or text == "" else len(text)

    def ping(self) -> str:
        return "pong"


server = Server("tcp://127.0.0.1:0")
register_evolving(server, Impl())
server.start()
print(server.addresses[0], flush=True)
sys.stdin.read()  # the test holds our stdin: EOF means it is done (or died)
server.stop(1.0)

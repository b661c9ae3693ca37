"""A GopherMap member in its own process, for tests/test_gophermap_e2e.py.

``gophermap_member.py CONFIG_JSON``: CONFIG holds ``bind``, ``seeds``, ``key`` (hex or
null), ``name``, ``swim`` (SwimConfig fields) and ``echo`` (true: also serve the echo
example's EchoService on tcp://127.0.0.1:0 with ``Server(gophermap=gmap)``).

Prints ``ADDRESS NAME [ECHO_ADDRESS]`` once started, then answers one JSON line per
command line on stdin: ``members``, ``stats``, ``events`` (every member event seen,
as [kind, name, incarnation]), ``resolve SERVICE``, ``stop-echo`` (the server stops,
withdrawing its service), ``leave`` (GopherMap.stop(), then exit). Stdin's EOF
leaves too.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

from gopherpipe_runtime import Server
from gopherpipe_runtime.discovery.gophermap import GopherMap
from gopherpipe_runtime.discovery.swim import MemberEvent, SwimConfig

config = json.loads(sys.argv[1])
events: list[list[Any]] = []
events_lock = threading.Lock()


def record(event: MemberEvent) -> None:
    with events_lock:
        events.append([event.kind, event.member.name, event.member.incarnation])


gmap = GopherMap(
    config.get("bind", "127.0.0.1:0"),
    config.get("seeds", []),
    None if config.get("key") is None else bytes.fromhex(config["key"]),
    name=config.get("name"),
    config=SwimConfig(**config.get("swim", {})),
    push_pull_timeout=config.get("push_pull_timeout", 5.0),
    join_backoff_max=config.get("join_backoff_max", 1.0),
)
gmap.on_event(record)
gmap.start()

server: Server | None = None
if config.get("echo"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "echo"))
    import service
    import service_server

    class Echo(service.EchoService):  # type: ignore[misc]
        def echo(self, text: str) -> str:
            return text

        def repeat(self, text: str, times: int = 2) -> Any:
            return service.Echoed(text * times, times)

    server = Server("tcp://127.0.0.1:0", gophermap=gmap, service_meta={"zone": "test"})
    service_server.register_echo_service(server, Echo())
    server.start()

print(gmap.address, gmap.name, *(server.addresses if server else []), flush=True)


def answer(value: Any) -> None:
    print(json.dumps(value), flush=True)


for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "members":
        answer(
            [
                [m.name, m.address, m.state.name, m.incarnation, sorted(m.services)]
                for m in gmap.members()
            ]
        )
    elif command == "stats":
        answer(gmap.stats)
    elif command == "events":
        with events_lock:
            answer(events)
    elif command == "resolve":
        answer(gmap.resolve(argument))
    elif command == "stop-echo":
        if server is not None:
            server.stop(0)
        answer("stopped")
    elif command == "leave":
        break
    else:
        answer({"error": f"unknown command {command!r}"})
if server is not None:
    server.stop(0)
gmap.stop()
answer("left")

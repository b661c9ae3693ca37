"""Serve the chat example (examples/chat/server.py) for the scale test:
`chat_serve.py ADDRESS [options JSON]`.

The options go to `Server`, as a user would set them. Prints the bound address,
then answers every line "stats" on stdin with one JSON line: the process's threads
by kind (the runtime's, named gopherpipe-*; the chat server's relay threads, named
chat-relay-*; the rest), the members of each room, the chat server's RELAY_GROUP
and the process's resident memory. Stops on stdin EOF.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

CHAT = Path(__file__).resolve().parents[2] / "examples" / "chat"
sys.path.insert(0, str(CHAT))

from server import RELAY_GROUP, Chat  # type: ignore[import-not-found]  # noqa: E402
from service_server import register_chat_service  # type: ignore[import-not-found]  # noqa: E402

from gopherpipe_runtime import Server  # noqa: E402


def stats() -> dict[str, object]:
    names = [thread.name for thread in threading.enumerate()]
    runtime = sorted(n for n in names if n.startswith("gopherpipe-"))
    relay = sum(n.startswith("chat-relay-") for n in names)
    rss = 0
    os_threads = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            os_threads = int(line.split()[1])
    return {
        "runtime": len(runtime),
        "runtime_names": runtime,
        "relay": relay,
        "other": len(names) - len(runtime) - relay,
        "os_threads": os_threads,
        "rss_kib": rss,
        "members": {room_id: len(room) for room_id, room in list(chat._rooms.items())},
        "relay_group": RELAY_GROUP,
    }


options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
server = Server(sys.argv[1], **options)
chat = Chat()
register_chat_service(server, chat)
server.start()
print(server.addresses[0], flush=True)
for command in sys.stdin:
    if command.strip() == "stats":
        print(json.dumps(stats()), flush=True)
server.stop(1.0)

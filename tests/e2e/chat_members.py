"""Many members of one chat room on one Pipe:
`chat_members.py ADDRESS ROOM PREFIX COUNT WAVE`.

Joins ROOM COUNT times (bidi `join_room`, members PREFIX0 .. PREFIX{COUNT-1}), in
waves of WAVE members that all join at once, each wave after the previous one got
its welcomes; then prints "joined COUNT RSS_KIB". Then follows
commands on stdin, one a line, each bounded in time:
  say TEXT     member 0 says TEXT; prints "said"
  expect TEXT  every member's next message must be TEXT; prints "heard COUNT"
  leave WAVE   members stop talking, WAVE at once, the next wave once the last one's
               streams ended; each must end cleanly (OK); prints "left"
Any failure raises, so the process exits non-zero with a traceback.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

CHAT = Path(__file__).resolve().parents[2] / "examples" / "chat"
sys.path.insert(0, str(CHAT))

from service_client import ChatServiceClient  # type: ignore[import-not-found]  # noqa: E402

from gopherpipe_runtime import Chan, Pipe  # noqa: E402

WAIT = 30.0
"""Seconds any one step may take before this process gives up."""


def rss_kib() -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    address, room, prefix = sys.argv[1:4]
    count, wave = int(sys.argv[4]), int(sys.argv[5])
    pipe = Pipe(address)
    client = ChatServiceClient(pipe)
    talk: list[Chan[str]] = []
    outputs = []
    for first in range(0, count, wave):
        for i in range(first, min(first + wave, count)):
            incoming: Chan[str] = Chan()
            talk.append(incoming)
            member = client.with_options(metadata={"user": f"{prefix}{i}"})
            outputs.append(member.join_room(room, incoming))
        for output in outputs[first:]:
            welcome = output.recv(timeout=WAIT)
            assert welcome.sender == "System" and welcome.text.startswith("welcome"), welcome
    print(f"joined {count} {rss_kib()}", flush=True)
    for line in sys.stdin:
        command, _, text = line.rstrip("\n").partition(" ")
        if command == "say":
            talk[0].send(text, timeout=WAIT)
            print("said", flush=True)
        elif command == "expect":
            deadline = time.monotonic() + WAIT
            for output in outputs:
                message = output.recv(timeout=max(0.0, deadline - time.monotonic()))
                assert message.text == text, message
            print(f"heard {count}", flush=True)
        elif command == "leave":
            wave = int(text)
            deadline = time.monotonic() + WAIT
            for first in range(0, count, wave):
                for incoming in talk[first : first + wave]:
                    incoming.close()
                for output in outputs[first : first + wave]:
                    _, ok = output.recv_ok(timeout=max(0.0, deadline - time.monotonic()))
                    assert not ok, "a message after leaving"
                    assert output.error is None, output.error  # ended with OK
            print("left", flush=True)
            break
    pipe.close()


if __name__ == "__main__":
    main()

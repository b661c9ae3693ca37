"""`make demo`: for each example, check the committed stubs, start its server, run clients.

The chat part is the main job: two clients join a room and talk. Every step is
bounded in time and the script exits non-zero if any fails, so the demo doubles
as a smoke test.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
GOPHERPIPE = Path(sys.executable).parent / "gopherpipe"


def step(text: str) -> None:
    print(f"== {text}", flush=True)


def check_stubs(folder: Path) -> None:
    step(f"{folder.name}: gopherpipe gen --check service.py")
    subprocess.run([str(GOPHERPIPE), "gen", "--check", "service.py"], cwd=folder, check=True)


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as scratch:
        address = f"unix://{scratch}/{folder.name}.sock"
        step(f"{folder.name}: python server.py {address}")
        server = subprocess.Popen(
            [sys.executable, "server.py", address], cwd=folder, stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            banner = server.stdout.readline()
            if not banner:
                raise SystemExit(f"{folder.name} server exited before listening")
            print(banner, end="", flush=True)
            yield address
        finally:
            server.terminate()
            server.wait(10)


def client(folder: Path, *args: str) -> subprocess.Popen[str]:
    step(f"{folder.name}: python client.py {' '.join(args)}")
    return subprocess.Popen(
        [sys.executable, "client.py", *args], cwd=folder, stdout=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str], name: str) -> None:
    out, _ = process.communicate(timeout=60)
    print(out, end="", flush=True)
    if process.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {process.returncode}")


def run_echo() -> None:
    folder = EXAMPLES / "echo"
    check_stubs(folder)
    with serving(folder) as address:
        finish(client(folder, address), "echo client")


def run_chat() -> None:
    folder = EXAMPLES / "chat"
    check_stubs(folder)
    with serving(folder) as address:
        ann = client(
            folder, address, "--name", "ann", "--reply", "Hi bob, ann here", "--expect", "1"
        )
        assert ann.stdout is not None
        joined = ann.stdout.readline()  # ann is in the room before bob speaks
        print(joined, end="", flush=True)
        if "joined" not in joined:
            raise SystemExit("ann could not join the room")
        bob = client(
            folder, address, "--name", "bob", "--say", "Hello Gophers!", "--say",
            "Is this thing on?", "--expect", "1",
        )  # fmt: skip
        finish(bob, "bob")
        finish(ann, "ann")


def main() -> None:
    run_echo()
    run_chat()
    step("demo finished: every example ran end to end")


if __name__ == "__main__":
    main()

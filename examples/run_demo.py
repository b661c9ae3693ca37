"""`make demo`: check the committed stubs, start each example's server, run its client.

Exits non-zero if any step fails, so the demo doubles as a smoke test.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
GOPHERPIPE = Path(sys.executable).parent / "gopherpipe"


def run_example(name: str) -> None:
    folder = EXAMPLES / name
    print(f"== {name}: gopherpipe gen --check service.py", flush=True)
    subprocess.run([str(GOPHERPIPE), "gen", "--check", "service.py"], cwd=folder, check=True)
    with tempfile.TemporaryDirectory() as scratch:
        address = f"unix://{scratch}/{name}.sock"
        print(f"== {name}: python server.py {address}", flush=True)
        server = subprocess.Popen(
            [sys.executable, "server.py", address], cwd=folder, stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            banner = server.stdout.readline()
            if not banner:
                raise SystemExit(f"{name} server exited before listening")
            print(banner, end="", flush=True)
            print(f"== {name}: python client.py {address}", flush=True)
            subprocess.run(
                [sys.executable, "client.py", address], cwd=folder, check=True, timeout=60
            )
        finally:
            server.terminate()
            server.wait(10)


def main() -> None:
    for name in ("echo",):
        run_example(name)
    print("== demo finished: all examples ran end to end")


if __name__ == "__main__":
    main()

"""`make demo`: for each example, check the committed stubs, start its server, run clients.

The chat part is the main job: two clients join a room and talk, over TLS with
client certificates (mTLS, the test certificates in examples/certs; the echo
example runs over a Unix socket). Then the asyncio variants (`*_aio.py`, on
`gopherpipe_runtime.aio`): the echo pair, and the chat with the asyncio server
hosting an asyncio client (ann) and a threaded one (bob) in one room. Every step is bounded in time and the script
exits non-zero if any fails, so the demo doubles as a smoke test.
tests/test_transports_e2e.py runs both examples over every transport with these
same functions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
GOPHERPIPE = Path(sys.executable).parent / "gopherpipe"
CERTS = EXAMPLES / "certs"
SCHEMES = ("tcp", "unix", "tls", "ws", "wss")


def tls_env(role: str) -> dict[str, str]:
    """The environment `transport.tls.context_from_env` reads: mTLS both ways."""
    return {
        "GOPHERPIPE_TLS_CERT": str(CERTS / f"{role}.pem"),
        "GOPHERPIPE_TLS_KEY": str(CERTS / f"{role}.key"),
        "GOPHERPIPE_TLS_CA": str(CERTS / "ca.pem"),
    }


def environment(scheme: str, role: str) -> dict[str, str]:
    env = dict(os.environ)
    if scheme in ("tls", "wss"):
        env.update(tls_env(role))
    return env


def step(text: str) -> None:
    print(f"== {text}", flush=True)


def check_stubs(folder: Path) -> None:
    step(f"{folder.name}: gopherpipe gen --check --asyncio service.py")
    subprocess.run(
        [str(GOPHERPIPE), "gen", "--check", "--asyncio", "service.py"], cwd=folder, check=True
    )


@contextmanager
def serving(folder: Path, scheme: str, script: str = "server.py") -> Iterator[str]:
    """Start the example's server (`script`) on a fresh address of `scheme`; yield the
    address it printed (the real port)."""
    with tempfile.TemporaryDirectory() as scratch:
        if scheme == "unix":
            address = f"unix://{scratch}/{folder.name}.sock"
        elif scheme in ("ws", "wss"):
            address = f"{scheme}://127.0.0.1:0/{folder.name}"
        else:
            address = f"{scheme}://127.0.0.1:0"
        step(f"{folder.name}: python {script} {address}")
        server = subprocess.Popen(
            [sys.executable, script, address],
            cwd=folder,
            stdout=subprocess.PIPE,
            text=True,
            env=environment(scheme, "server"),
        )
        try:
            assert server.stdout is not None
            banner = server.stdout.readline()
            if not banner:
                raise SystemExit(f"{folder.name} server exited before listening")
            print(banner, end="", flush=True)
            yield banner.split()[-1]
        finally:
            server.terminate()
            server.wait(10)


def client(
    folder: Path, address: str, *args: str, script: str = "client.py"
) -> subprocess.Popen[str]:
    step(f"{folder.name}: python {script} {address} {' '.join(args)}")
    scheme = address.partition("://")[0]
    return subprocess.Popen(
        [sys.executable, script, address, *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        text=True,
        env=environment(scheme, "client"),
    )


def finish(process: subprocess.Popen[str], name: str) -> str:
    out, _ = process.communicate(timeout=60)
    print(out, end="", flush=True)
    if process.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {process.returncode}")
    return out


def run_echo(scheme: str = "unix") -> str:
    """The echo example end to end; returns what the client printed."""
    folder = EXAMPLES / "echo"
    with serving(folder, scheme) as address:
        return finish(client(folder, address), "echo client")


def run_echo_aio(scheme: str = "unix") -> str:
    """The asyncio echo example: server_aio.py and client_aio.py."""
    folder = EXAMPLES / "echo"
    with serving(folder, scheme, "server_aio.py") as address:
        return finish(client(folder, address, script="client_aio.py"), "echo client (asyncio)")


def run_chat(scheme: str = "tls", server: str = "server.py", ann_script: str = "client.py") -> str:
    """The chat example end to end; returns what ann and bob printed. With
    `server="server_aio.py"` and `ann_script="client_aio.py"`, the asyncio server hosts
    ann on asyncio and bob on threads, in one room: the two runtimes interoperate."""
    folder = EXAMPLES / "chat"
    with serving(folder, scheme, server) as address:
        ann = client(
            folder,
            address,
            "--name",
            "ann",
            "--reply",
            "Hi bob, ann here",
            "--expect",
            "1",
            script=ann_script,
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
        said = finish(bob, "bob")
        heard = finish(ann, "ann")
        probe(address)
        return joined + heard + said


def probe(address: str) -> None:
    """What a Kubernetes exec probe would run: exit 0 only when the server is SERVING."""
    step(f"gopherpipe health {address}")
    scheme = address.partition("://")[0]
    subprocess.run(
        [str(GOPHERPIPE), "health", address], check=True, env=environment(scheme, "client")
    )


def main() -> None:
    check_stubs(EXAMPLES / "echo")
    run_echo("unix")
    check_stubs(EXAMPLES / "chat")
    run_chat("tls")
    run_echo_aio("unix")
    run_chat("tls", server="server_aio.py", ann_script="client_aio.py")
    step("demo finished: every example ran end to end")


if __name__ == "__main__":
    main()

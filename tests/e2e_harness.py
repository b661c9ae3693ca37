"""What the end-to-end tests share: a server in its own process, and a raw TCP_LITE peer."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from gopherpipe_runtime.frames import PREFACE, FrameDecoder, FrameType, encode_frame
from gopherpipe_runtime.handshake import client_hello

E2E = Path(__file__).parent / "e2e"


class ServerProcess:
    def __init__(
        self,
        stub_dir: Path,
        address: str = "tcp://127.0.0.1:0",
        options: str = "{}",
        harness: str = "{}",
        stderr: IO[str] | None = None,
    ) -> None:
        """`options` (JSON) go to Server; `harness` (JSON) sets up the process (serve.py)."""
        self.proc = subprocess.Popen(
            [sys.executable, str(E2E / "serve.py"), str(stub_dir), address, options, harness],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.kill()
            raise RuntimeError("server process did not start")
        self.address = line

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # serve.py stops on stdin EOF
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    return host, int(port)


def raw_socket(address: str) -> socket.socket:
    sock = socket.create_connection(host_port(address), timeout=5)
    return sock


def raw_handshake(address: str) -> tuple[socket.socket, FrameDecoder]:
    sock = raw_socket(address)
    sock.sendall(PREFACE + encode_frame(FrameType.HELLO, client_hello(("msgpack",), 1 << 20)))
    decoder = FrameDecoder(1 << 20)
    frames = []
    while not frames:
        frames = decoder.feed(sock.recv(65536))
    assert frames[0].type == FrameType.HELLO
    return sock, decoder


def read_frames(sock: socket.socket, decoder: FrameDecoder) -> list[Any]:
    frames: list[Any] = []
    while not frames:
        data = sock.recv(65536)
        if not data:
            return frames
        frames = decoder.feed(data)
    return frames


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def generate_stubs(folder: Path, *contracts: str) -> Path:
    """Copy e2e contracts into `folder` and run `gopherpipe gen` on them there."""
    for name in contracts:
        shutil.copy(E2E / "contract" / name, folder / name)
    gopherpipe = Path(sys.executable).parent / "gopherpipe"
    subprocess.run([str(gopherpipe), "gen", *(str(folder / n) for n in contracts)], check=True)
    return folder


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid`, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no Threads for process {pid}")

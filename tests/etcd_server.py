"""A real etcd server for the etcd tests, on free loopback ports with a temp data dir.

`etcd_binary()` finds etcd, running scripts/ensure-etcd (which installs Debian's
etcd-server) when it is missing; `EtcdServer` runs one etcd process. conftest.py's
session fixture `etcd` shares one server among the tests; a test that kills or
restarts etcd starts its own. Tests are skipped, with the reason, only when etcd can
be neither found nor installed (no root or sudo, no package registry), or when the
etcd3gw client (the ``etcd`` extra, in ``dev``) is not installed.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENSURE = ROOT / "scripts" / "ensure-etcd"

_INSTALL_LIMIT = 280.0  # apt-get update + install on a fresh machine; within the timeout


class EtcdUnavailable(Exception):
    """etcd cannot be had here; the message says why."""


def etcd_binary() -> str:
    for found in (shutil.which("etcd"), "/usr/bin/etcd", "/usr/sbin/etcd"):
        if found and Path(found).is_file():
            return found
    try:
        done = subprocess.run(
            [str(ENSURE)], capture_output=True, text=True, timeout=_INSTALL_LIMIT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EtcdUnavailable(f"scripts/ensure-etcd could not run: {exc}") from exc
    if done.returncode != 0 or not done.stdout.strip():
        tail = done.stderr.strip().splitlines()[-3:]
        raise EtcdUnavailable(
            "no etcd binary, and scripts/ensure-etcd could not install one: " + " / ".join(tail)
        )
    return done.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EtcdServer:
    """One etcd process; `url` is its client URL. `kill()` then `start()` restarts it on
    the same ports and data (a crash of etcd, as a client sees it)."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, limit: float = 30.0) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(self.data_dir / "etcd.log", "ab")  # noqa: SIM115 -- the child owns it
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--name=gopherpipe-test",
                f"--data-dir={self.data_dir / 'data'}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=gopherpipe-test={peer}",
                "--logger=zap",
                "--log-level=warn",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + limit
        while not self.healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited ({self.proc.returncode}): {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd not healthy within {limit} s: {self.log_tail()}")
            time.sleep(0.05)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as reply:
                return bool(json.loads(reply.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def log_tail(self) -> str:
        path = self.data_dir / "etcd.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return " / ".join(lines[-5:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

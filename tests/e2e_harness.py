"""What the end-to-end tests share: a server in its own process, a raw TCP_LITE peer,
and ways to watch the server from outside (its /proc status, a well-behaved client
calling in the background while something hostile happens)."""

from __future__ import annotations

import contextlib
import importlib
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgpack

from gopherpipe_runtime import Pipe, StatusCode
from gopherpipe_runtime.wire.frames import (
    PREFACE,
    FrameDecoder,
    FrameType,
    decode_goaway,
    encode_frame,
)
from gopherpipe_runtime.wire.handshake import client_hello

E2E = Path(__file__).parent / "e2e"
ROOT = Path(__file__).resolve().parent.parent


def same_checkout_env() -> dict[str, str]:
    """The environment for a child process that must run this checkout's gopherpipe:
    the venv's editable install points at one checkout (the main one), and a child
    started by path does not have the current directory on sys.path, so a test run
    in another worktree would otherwise start servers (and the generator) of another
    version of the code than the one it tests."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


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
            env=same_checkout_env(),
        )
        self.addresses: list[str] = []
        """Every bound address, in the order asked (serve.py takes several, comma-separated)."""
        self.address = ""
        line = self._read_line()
        if line != "standby":  # else `go()` binds
            self._bound(line)

    def _read_line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.kill()
            raise RuntimeError("server process did not start")
        return line

    def _bound(self, line: str) -> None:
        self.addresses = line.split()
        self.address = self.addresses[0]

    def go(self) -> None:
        """A server started with harness {"standby": true}: bind and serve now; returns
        once it listens."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self._bound(self._read_line())

    def status(self, field: str) -> int:
        """An integer field of the server's /proc/<pid>/status (VmRSS is in KiB)."""
        return proc_status(self.proc.pid, field)

    def rss_kib(self) -> int:
        return self.status("VmRSS")

    def threads(self) -> int:
        return self.status("Threads")

    def fds(self) -> int:
        """Open file descriptors: listeners, selector, and one per connection."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

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
    subprocess.run(
        [str(gopherpipe), "gen", *(str(folder / n) for n in contracts)],
        check=True,
        env=same_checkout_env(),
    )
    return folder


@contextlib.contextmanager
def e2e_api(stub_dir: Path) -> Iterator[dict[str, Any]]:
    """The e2e contracts' clients and the streams contract's `Item`, imported from the
    stubs `generate_stubs` wrote to `stub_dir` (on sys.path while the block runs)."""
    sys.path.insert(0, str(stub_dir))
    try:
        yield {
            "AllTypesClient": importlib.import_module("e2e_alltypes_client").AllTypesClient,
            "StreamsClient": importlib.import_module("e2e_streams_client").StreamsClient,
            "Item": importlib.import_module("e2e_streams").Item,
        }
    finally:
        sys.path.remove(str(stub_dir))


def proc_status(pid: int, field: str) -> int:
    """An integer field of /proc/<pid>/status (VmRSS is in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid`, from /proc."""
    return proc_status(pid, "VmRSS")


def thread_count(pid: int) -> int:
    return proc_status(pid, "Threads")


def wait_until(condition: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Poll a condition another process makes true; bounded, and it names what failed."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


@contextlib.contextmanager
def nofile_raised(wanted: int, headroom: int) -> Iterator[int]:
    """Raise the soft RLIMIT_NOFILE towards `wanted + headroom` (at most the hard limit),
    restoring it on exit; yields how many of `wanted` descriptors the limit allows with
    `headroom` kept free. A server process started inside inherits the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted + headroom:
        raised = (
            wanted + headroom if hard == resource.RLIM_INFINITY else min(hard, wanted + headroom)
        )
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    allowed = wanted if now == resource.RLIM_INFINITY else max(1, now - headroom)
    try:
        yield min(wanted, allowed)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- a raw TCP_LITE peer, for hostile tests ---------------------------------------------


def hello_bytes(codec: str = "msgpack", max_frame_size: int = 1 << 20) -> bytes:
    """The preface and a client HELLO offering only `codec`."""
    return PREFACE + encode_frame(FrameType.HELLO, client_hello((codec,), max_frame_size))


def handshake(
    address: str, codec: str = "msgpack", max_frame_size: int = 1 << 20
) -> tuple[socket.socket, FrameDecoder]:
    """A raw TCP_LITE connection past HELLO, with `codec` negotiated."""
    sock = raw_socket(address)
    sock.sendall(hello_bytes(codec, max_frame_size))
    decoder = FrameDecoder(1 << 20)
    received: list[Any] = []
    while not received:
        data = sock.recv(65536)
        assert data, "the server closed the connection instead of answering HELLO"
        received = decoder.feed(data)
    assert received[0].type == FrameType.HELLO
    assert msgpack.unpackb(received[0].payload)["codec"] == codec
    return sock, decoder


def frames_until_closed(sock: socket.socket, decoder: FrameDecoder) -> list[Any]:
    """Every frame the server sends until it closes (bounded by the socket timeout)."""
    received: list[Any] = []
    while chunk := sock.recv(65536):
        received += decoder.feed(chunk)
    return received


def next_frame(sock: socket.socket, decoder: FrameDecoder, wanted: int) -> Any:
    """The next frame of type `wanted` (others are skipped); fails on close."""
    while True:
        data = sock.recv(65536)
        assert data, f"connection closed while waiting for a {FrameType(wanted).name}"
        for frame in decoder.feed(data):
            if frame.type == wanted:
                return frame


def assert_goaway_protocol_error(received: list[Any], expected: str = "") -> str:
    """The peer got GOAWAY INTERNAL `protocol error: ...` as its last frame; the message."""
    assert received, "the connection was closed without a GOAWAY"
    last = received[-1]
    assert last.type == FrameType.GOAWAY, f"last frame is {FrameType(last.type).name}"
    _, code, message = decode_goaway(last.payload)
    assert code == StatusCode.INTERNAL, (code, message)
    assert message.startswith("protocol error:"), message
    assert expected in message, message
    return message


def call_body(service: str, method: str, args: list[Any]) -> bytes:
    """A msgpack CALL body: no timeout, no metadata."""
    return msgpack.packb([service, method, None, {}, args], use_bin_type=True)  # type: ignore[no-any-return]


def call_prefix(service: str, method: str) -> bytes:
    """A msgpack CALL array's first four items; the fifth (args) is appended raw."""
    return b"\x95" + msgpack.packb(service) + msgpack.packb(method) + b"\xc0\x80"


HUGE = 0xFFFF_FFFF
HUGE_HEADERS = {
    "array32": b"\xdd\xff\xff\xff\xff" + b"\xc0" * 3,
    "map32": b"\xdf\xff\xff\xff\xff" + b"\xc0" * 4,
    "str32": b"\xdb\xff\xff\xff\xff" + b"abc",
    "bin32": b"\xc6\xff\xff\xff\xff" + b"abc",
    "ext32": b"\xc9\xff\xff\xff\xff\x01" + b"abc",
}
"""msgpack headers declaring 4 G elements or bytes, followed by a few bytes."""


def count_readable(socks: list[socket.socket]) -> int:
    """How many of these sockets have something to read (for a silent peer: EOF) now."""
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        return len(selector.select(0))


# -- a well-behaved client in the background ------------------------------------------------


class Bystander:
    """A well-behaved client that keeps calling on a thread of its own while a test
    attacks the server, and records every failure it meets.

    `call(n)` makes the n-th call (and checks its result); it runs back to back, with
    `pause` seconds between calls so the attack gets CPU too. Use as a context manager
    around the attack: on entry it waits until `warmup` calls succeeded (so the calls
    really overlap the attack), on exit until `cooldown` more did, then stops.
    """

    def __init__(
        self,
        call: Callable[[int], None],
        pause: float = 0.005,
        warmup: int = 5,
        cooldown: int = 5,
        limit: float = 60.0,
    ) -> None:
        self._call = call
        self._pause = pause
        self._warmup = warmup
        self._cooldown = cooldown
        self._limit = limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bystander", daemon=True)
        self.calls = 0
        """Calls that succeeded."""
        self.failures: list[str] = []
        """One line per call that failed (any exception, a wrong result included)."""

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                self._call(n)
            except BaseException as exc:  # every failure counts; the test reports them
                self.failures.append(f"call {n}: {type(exc).__name__}: {exc}")
            else:
                self.calls += 1
            n += 1
            self._stop.wait(self._pause)

    def _wait_for(self, calls: int, what: str) -> None:
        # A failure ends the wait too: the test reports it, not a timeout.
        wait_until(lambda: self.calls >= calls or bool(self.failures), what, self._limit)

    def __enter__(self) -> Bystander:
        self._thread.start()
        self._wait_for(self._warmup, f"the bystander made {self._warmup} calls")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        try:
            if exc_type is None:
                target = self.calls + self._cooldown
                self._wait_for(target, f"the bystander made {self._cooldown} more calls")
        finally:
            self._stop.set()
            self._thread.join(self._limit)


# -- a row of the bad-input matrix -------------------------------------------------------------


def stub_calls(api: dict[str, Any], *pipes: Any) -> Callable[[int], None]:
    """A bystander's n-th call over the e2e stubs (`api` holds "AllTypesClient" and
    "StreamsClient"), taking `pipes` in turn: a unary `add`, and every tenth call a
    short server stream; each with a 30 s deadline."""
    calls = [api["AllTypesClient"](pipe).with_options(timeout=30) for pipe in pipes]
    streams = [api["StreamsClient"](pipe).with_options(timeout=30) for pipe in pipes]

    def call(n: int) -> None:
        which = n % len(pipes)
        if n % 10 == 9:
            items = streams[which].count_up(n, 3)
            assert [item.seq for item in items] == [n, n + 1, n + 2]
        else:
            assert calls[which].add(n, 1000) == n + 1000

    return call


def warm_up(api: dict[str, Any], address: str, max_workers: int, **pipe_options: Any) -> None:
    """Bring a server's pool to its cap (2 * max_workers calls at once) and start its
    stream sender, so that the threads a test finds afterwards are compared with a
    server that already started every thread it keeps."""
    with Pipe(address, **pipe_options) as pipe:
        calls = api["AllTypesClient"](pipe).with_options(timeout=30)
        streams = api["StreamsClient"](pipe).with_options(timeout=30)
        sleepers = [
            threading.Thread(target=calls.sleep, args=(0.2,)) for _ in range(2 * max_workers)
        ]
        for thread in sleepers:
            thread.start()
        assert [item.seq for item in streams.count_up(0, 3)] == [0, 1, 2]
        for thread in sleepers:
            thread.join(30)


def assert_served_fresh(
    api: dict[str, Any], server: ServerProcess, address: str, **dial_options: Any
) -> None:
    """The server is alive and serves new clients at `address`: a unary call and a
    server stream over msgpack, a unary call over JSON."""
    assert server.proc.poll() is None, f"the server process died ({server.proc.returncode})"
    with api["AllTypesClient"].dial(address, **dial_options) as client:
        assert client.with_options(timeout=15).add(40, 2) == 42
    with api["StreamsClient"].dial(address, **dial_options) as streams:
        items = streams.with_options(timeout=15).count_up(7, 5)
        assert [item.seq for item in items] == [7, 8, 9, 10, 11]
    with api["AllTypesClient"].dial(address, codec="json", **dial_options) as client:
        assert client.with_options(timeout=15).add(40, 2) == 42


class PeakRss:
    """Samples a server's VmRSS every 10 ms on a thread; `.peak` is the highest seen."""

    def __init__(self, server: ServerProcess) -> None:
        self._server = server
        self.peak = server.rss_kib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._server.rss_kib())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, self._server.rss_kib())


@dataclass
class Measured:
    """What one row of the bad-input matrix measured (RSS in KiB)."""

    row: str
    rss_before: int
    rss_peak: int
    rss_after: int
    threads_before: int
    threads_after: int
    calls: int
    """Calls the bystander made while the row ran (none of them failed)."""
    outcome: str
    """What the attacker got."""


def measure_row(
    row: str,
    server: ServerProcess,
    attack: Callable[[], str],
    bystander: Callable[[], contextlib.AbstractContextManager[Bystander]],
    healthy: Callable[[], None],
    thread_bound: int,
) -> Measured:
    """Run `attack` (it returns what the attacker got) while `bystander()` keeps calling;
    then check that the bystander saw no failure, that `healthy()` passes, that every
    connection the row opened is closed at the server, and that its threads are back
    to at most `thread_bound`. The caller checks the RSS figures against its bounds."""
    fds_before = server.fds()
    threads_before = server.threads()
    rss_before = server.rss_kib()
    with PeakRss(server) as rss, bystander() as calling:
        outcome = attack()
    assert calling.failures == [], f"{row}: the well-behaved client failed"
    healthy()
    wait_until(
        lambda: server.fds() <= fds_before,
        f"{row}: the server closed every connection of the row "
        f"({server.fds()} descriptors, {fds_before} before)",
    )
    wait_until(
        lambda: server.threads() <= thread_bound,
        f"{row}: the server is back to at most {thread_bound} threads ({server.threads()})",
    )
    return Measured(
        row,
        rss_before,
        rss.peak,
        server.rss_kib(),
        threads_before,
        server.threads(),
        calling.calls,
        outcome,
    )


def format_table(title: str, results: list[Measured]) -> str:
    lines = [
        "",
        title,
        f"{'row':<34} {'RSS KiB before':>14} {'peak':>7} {'after':>7} {'growth':>7} "
        f"{'threads':>8} {'calls':>6}  attacker outcome",
    ]
    for m in results:
        lines.append(
            f"{m.row:<34} {m.rss_before:>14} {m.rss_peak:>7} {m.rss_after:>7} "
            f"{m.rss_after - m.rss_before:>+7} {m.threads_before:>3} -> {m.threads_after:<2} "
            f"{m.calls:>6}  {m.outcome}"
        )
    return "\n".join(lines)


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `call` on a thread; the dict gets "value" or "error"."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome

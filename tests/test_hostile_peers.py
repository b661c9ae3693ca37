"""Attacks a hostile tester tried that the server already survives: regression tests
so they keep holding.

Each attack runs against a real server in its own process (one per module, see
the `server` fixture). After each one we check two things: the server process is
still alive, and a well-behaved client -- a generated stub over a fresh connection
-- is still served correctly. Where the RFC prescribes what the attacker gets
(GOAWAY with a `protocol error:` message, a STATUS, a plain close) that is checked
too. Memory is watched through the server's VmRSS and threads through its
`Threads` line in /proc/<pid>/status.
"""

from __future__ import annotations

import json
import os
import random
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from e2e_harness import (
    HUGE,
    HUGE_HEADERS,
    ServerProcess,
    assert_goaway_protocol_error,
    call_body,
    call_prefix,
    count_readable,
    e2e_api,
    frames_until_closed,
    generate_stubs,
    handshake,
    host_port,
    next_frame,
    nofile_raised,
    raw_socket,
    wait_until,
)

from gopherpipe_runtime import DeadlineExceededError, StatusCode
from gopherpipe_runtime.wire.frames import (
    PREFACE,
    FrameDecoder,
    FrameType,
    decode_goaway,
    encode_frame,
    encode_stream_frame,
)
from gopherpipe_runtime.wire.handshake import client_hello

HANDSHAKE_TIMEOUT = 2.0
"""Short, so waiting for the server to drop half-open peers stays quick; 2 s rather
than 1 s leaves opening 2 000 connections (about 0.3 s here) ample room to finish
before the first of them expires, so they are really all open at once."""
MAX_WORKERS = 32
SILENT_CONNECTIONS = 2000
ACCEPT_CHUNK = 200
FD_HEADROOM = 256
"""Descriptors kept free for everything else the test process (and the server,
which inherits the limit) opens besides the silent connections."""
RSS_SLACK_KIB = 4 * 1024
"""How much the server's RSS may grow across an attack: a few MB of allocator
noise, far below the GiB a forged length would cost if it were believed."""


# -- helpers ------------------------------------------------------------------------------


def rss_kib(server: ServerProcess) -> int:
    return server.rss_kib()


def server_fds(server: ServerProcess) -> int:
    return server.fds()


def server_threads(server: ServerProcess) -> int:
    return server.threads()


def assert_served(api: dict[str, Any], server: ServerProcess, codec: str = "msgpack") -> None:
    """The server is alive and serves a well-behaved stub client on a fresh connection."""
    assert server.proc.poll() is None, f"the server process died ({server.proc.returncode})"
    with api["AllTypesClient"].dial(server.address, codec=codec) as client:
        assert client.with_options(timeout=15).add(40, 2) == 42


def wait_for_eofs(socks: list[socket.socket], started: list[float], limit: float) -> list[float]:
    """Wait (bounded) until the server closed every socket; each one's open time.

    A socket counts as closed only on a clean EOF with no bytes before it: the
    handshake timeout closes silently, it sends no GOAWAY to a peer that never
    finished HELLO.
    """
    lifetimes = [0.0] * len(socks)
    left = len(socks)
    deadline = time.monotonic() + limit
    with selectors.DefaultSelector() as selector:
        for index, sock in enumerate(socks):
            selector.register(sock, selectors.EVENT_READ, index)
        while left:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{left} of {len(socks)} connections still open after {limit}s"
            for key, _ in selector.select(remaining):
                index = key.data
                data = socks[index].recv(64)
                assert data == b"", f"connection {index} got {data!r} instead of a plain close"
                lifetimes[index] = time.monotonic() - started[index]
                selector.unregister(socks[index])
                left -= 1
    return lifetimes


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_stubs(
        tmp_path_factory.mktemp("hostile_stubs"), "e2e_alltypes.py", "e2e_streams.py"
    )


@pytest.fixture(scope="module")
def api(stub_dir: Path) -> Iterator[dict[str, Any]]:
    with e2e_api(stub_dir) as found:
        yield found


@pytest.fixture(scope="module")
def silent_count() -> Iterator[int]:
    """Raise the soft RLIMIT_NOFILE (towards the hard limit) so 2 000 connections fit
    at both ends: the server process inherits the limit, so this runs before it starts.
    Yields how many silent connections the limits allow."""
    with nofile_raised(SILENT_CONNECTIONS, FD_HEADROOM) as allowed:
        yield allowed


@pytest.fixture(scope="module")
def server(stub_dir: Path, silent_count: int) -> Iterator[ServerProcess]:
    # The fuzzers follow every batch with a PING, whose PONG proves the batch was read:
    # the ping policy (min_ping_interval, tested in test_keepalive_e2e.py) is off here.
    options = {
        "handshake_timeout": HANDSHAKE_TIMEOUT,
        "max_workers": MAX_WORKERS,
        "min_ping_interval": None,
    }
    process = ServerProcess(stub_dir, options=json.dumps(options))
    yield process
    process.stop()


# -- 1. silent connections --------------------------------------------------------------


def test_two_thousand_silent_connections_are_held_then_dropped(
    api: dict[str, Any], server: ServerProcess, silent_count: int
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    how_many = f"{silent_count} silent connections (RLIMIT_NOFILE soft {soft}, hard {hard})"
    if silent_count < SILENT_CONNECTIONS:
        how_many += (
            f": fewer than {SILENT_CONNECTIONS}, as many as the hard limit allows with "
            f"{FD_HEADROOM} descriptors kept free"
        )
    socks: list[socket.socket] = []
    started: list[float] = []
    try:
        target = host_port(server.address)
        accepted_before = server_fds(server)
        begin = time.monotonic()
        while len(socks) < silent_count:
            # In chunks well below the listen backlog (512), each accepted before the
            # next: a connect flood beyond the backlog gets SYNs dropped and retried
            # after 1 s, which would stretch opening them past the handshake timeout.
            for _ in range(min(ACCEPT_CHUNK, silent_count - len(socks))):
                # A plain connect: no name lookup per socket, as create_connection does.
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.settimeout(5)
                started.append(time.monotonic())
                sock.connect(target)
            wait_until(
                lambda: server_fds(server) >= accepted_before + len(socks),
                f"the server accepted {len(socks)} of {how_many}",
            )
        opened = time.monotonic() - begin
        # All of them are open at once only if the last one connected before the
        # first could expire; the server cannot close one before HANDSHAKE_TIMEOUT.
        assert opened < HANDSHAKE_TIMEOUT, (
            f"opening {how_many} took {opened:.2f}s, longer than the "
            f"{HANDSHAKE_TIMEOUT}s handshake timeout: they were never all open at once"
        )
        # Another client is served while they are held...
        assert_served(api, server)
        closed_early = count_readable(socks)
        assert closed_early == 0, (
            f"{closed_early} of {how_many} were already closed when "
            f"the well-behaved client had been served ({opened:.2f}s to open them all)"
        )
        # ...and every silent one is closed once its handshake time is up, not before.
        lifetimes = wait_for_eofs(socks, started, limit=HANDSHAKE_TIMEOUT + 30)
        assert (
            min(lifetimes) >= HANDSHAKE_TIMEOUT
        ), f"{how_many}: one closed after {min(lifetimes)}s"
        print(
            f"{how_many} opened in {opened:.2f}s, closed after "
            f"{min(lifetimes):.2f}..{max(lifetimes):.2f}s"
        )
    finally:
        for sock in socks:
            sock.close()
    assert_served(api, server)


# -- 2. half handshakes -------------------------------------------------------------------


def test_half_handshakes_are_closed_after_the_handshake_timeout(
    api: dict[str, Any], server: ServerProcess
) -> None:
    hello = encode_frame(FrameType.HELLO, client_hello(("msgpack",), 1 << 20))
    attempts = {
        "half the preface": PREFACE[:4],
        "preface only": PREFACE,
        "preface + half a HELLO header": PREFACE + hello[:2],
        "preface + HELLO header, body never sent": PREFACE + hello[:5],
        "preface + HELLO header and half its body": PREFACE + hello[: 5 + (len(hello) - 5) // 2],
    }
    socks: list[socket.socket] = []
    started: list[float] = []
    try:
        for prefix in attempts.values():
            started.append(time.monotonic())
            sock = raw_socket(server.address)
            sock.sendall(prefix)
            socks.append(sock)
        assert_served(api, server)  # while all of them sit in the handshake
        assert_served(api, server, codec="json")
        assert count_readable(socks) == 0, "a half handshake was closed before its timeout"
        lifetimes = wait_for_eofs(socks, started, limit=HANDSHAKE_TIMEOUT + 20)
        for name, lifetime in zip(attempts, lifetimes, strict=True):
            assert lifetime >= HANDSHAKE_TIMEOUT, f"{name}: closed after {lifetime:.2f}s"
        print("half handshakes closed after", [f"{t:.2f}s" for t in lifetimes])
    finally:
        for sock in socks:
            sock.close()
    assert_served(api, server)


# -- 3. forged 4 GiB lengths ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "frame_type"),
    [
        ("before HELLO", FrameType.HELLO),
        ("before HELLO", FrameType.CALL),
        ("after HELLO", FrameType.CALL),
        ("after HELLO", FrameType.MESSAGE),
        ("after HELLO", FrameType.PING),
        ("after HELLO", 0x7F),  # an unknown type is still length-checked
    ],
)
def test_length_of_4_gib_gets_goaway_without_allocating(
    api: dict[str, Any], server: ServerProcess, phase: str, frame_type: int
) -> None:
    limit = 16384 if phase == "before HELLO" else 4 * 1024 * 1024
    header = struct.pack(">BI", frame_type, HUGE)
    rss_before = rss_kib(server)
    for _ in range(10):  # repeated, so an allocation per attempt would add up
        if phase == "before HELLO":
            with raw_socket(server.address) as sock:
                # Only the header: the server reads everything we send before it
                # closes, so the close is a FIN and the GOAWAY is not lost to a reset.
                sock.sendall(PREFACE + header)
                received = frames_until_closed(sock, FrameDecoder(1 << 20))
        else:
            sock, decoder = handshake(server.address)
            with sock:
                sock.sendall(header)
                received = frames_until_closed(sock, decoder)
        assert_goaway_protocol_error(
            received, f"frame of {HUGE} bytes exceeds the negotiated maximum of {limit}"
        )
    growth = rss_kib(server) - rss_before
    print(f"RSS growth over 10 forged 4 GiB lengths {phase}: {growth} KiB")
    assert growth < RSS_SLACK_KIB, f"server RSS grew by {growth} KiB"
    assert_served(api, server)


# -- 4. huge msgpack headers inside valid frames -------------------------------------------


def test_huge_msgpack_headers_in_call_fail_only_that_call(
    api: dict[str, Any], server: ServerProcess
) -> None:
    """RFC 6.2: a CALL body that does not decode gets STATUS INVALID_ARGUMENT
    "malformed CALL: ..." and the connection stays open."""
    rss_before = rss_kib(server)
    sock, decoder = handshake(server.address)
    with sock:
        stream_id = 1
        for _ in range(5):
            for name, huge in HUGE_HEADERS.items():
                bodies = {
                    "as the body": huge,
                    "as args": call_prefix("AllTypes", "echo_optional") + huge,
                    "as an arg": call_prefix("AllTypes", "echo_optional") + b"\x91" + huge,
                }
                for where, body in bodies.items():
                    sock.sendall(encode_frame(FrameType.CALL, body, stream_id))
                    status = next_frame(sock, decoder, FrameType.STATUS)
                    code, message, result = msgpack.unpackb(status.payload)
                    assert status.stream_id == stream_id, (name, where)
                    assert code == StatusCode.INVALID_ARGUMENT, (name, where, message)
                    assert message.startswith("malformed CALL"), (name, where, message)
                    assert result is None
                    stream_id += 2
        # The same connection still serves a good call.
        sock.sendall(encode_frame(FrameType.CALL, call_body("AllTypes", "add", [2, 3]), stream_id))
        status = next_frame(sock, decoder, FrameType.STATUS)
        assert msgpack.unpackb(status.payload) == [0, "", 5]
    growth = rss_kib(server) - rss_before
    print(f"RSS growth over {stream_id // 2} CALLs with huge headers: {growth} KiB")
    assert growth < RSS_SLACK_KIB, f"server RSS grew by {growth} KiB"
    assert_served(api, server)


@pytest.mark.parametrize("name", list(HUGE_HEADERS))
def test_huge_msgpack_headers_in_message_get_goaway(
    api: dict[str, Any], server: ServerProcess, name: str
) -> None:
    """RFC 6.6: a MESSAGE body that is not a non-empty array is a connection error."""
    rss_before = rss_kib(server)
    for wrapped in (HUGE_HEADERS[name], b"\x91" + HUGE_HEADERS[name]):
        sock, decoder = handshake(server.address)
        with sock:
            # A client stream (Streams.total) that is open and waiting for items.
            sock.sendall(
                encode_frame(FrameType.CALL_STREAM, call_body("Streams", "total", []), 1)
                + encode_frame(FrameType.MESSAGE, msgpack.packb([[0, "ok"]]), 1)
                + encode_frame(FrameType.MESSAGE, wrapped, 1)
            )
            received = frames_until_closed(sock, decoder)
        message = assert_goaway_protocol_error(received)
        assert "MESSAGE on stream 1" in message, message
    growth = rss_kib(server) - rss_before
    assert growth < RSS_SLACK_KIB, f"server RSS grew by {growth} KiB"
    assert_served(api, server)


@pytest.mark.parametrize("name", list(HUGE_HEADERS))
def test_huge_msgpack_headers_in_hello_get_goaway(
    api: dict[str, Any], server: ServerProcess, name: str
) -> None:
    """RFC 5: a malformed HELLO is a connection error."""
    rss_before = rss_kib(server)
    huge = HUGE_HEADERS[name]
    for body in (huge, b"\x81" + msgpack.packb("codecs") + huge):
        with raw_socket(server.address) as sock:
            sock.sendall(PREFACE + encode_frame(FrameType.HELLO, body))
            received = frames_until_closed(sock, FrameDecoder(1 << 20))
        assert_goaway_protocol_error(received, "malformed HELLO")
    growth = rss_kib(server) - rss_before
    assert growth < RSS_SLACK_KIB, f"server RSS grew by {growth} KiB"
    assert_served(api, server)


# -- 5. deep nesting ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100_000, 900])
@pytest.mark.parametrize("codec", ["msgpack", "json"])
def test_deeply_nested_args_fail_the_call_cleanly(
    api: dict[str, Any], server: ServerProcess, codec: str, depth: int
) -> None:
    """Nesting beyond the server's max_nesting_depth (100; below msgpack's stack and
    the JSON scanner's recursion limit) gets RESOURCE_EXHAUSTED naming the limit, not
    a crash; 900 deep is the case that would get past the C decoders into Python
    recursion."""
    if codec == "msgpack":
        nested = b"\x91" * depth + b"\xc0"
        bodies = [call_prefix("AllTypes", "echo_optional") + b"\x91" + nested, nested]
        good = call_body("AllTypes", "add", [2, 3])
    else:
        nested = b"[" * depth + b"]" * depth
        bodies = [b'["AllTypes","echo_optional",null,{},[' + nested + b"]]", nested]
        good = b'["AllTypes","add",null,{},[2,3]]'
    sock, decoder = handshake(server.address, codec)
    with sock:
        for stream_id, body in enumerate(bodies, start=1):
            sock.sendall(encode_frame(FrameType.CALL, body, stream_id))
            status = next_frame(sock, decoder, FrameType.STATUS)
            code, message, _ = decode_status(codec, status.payload)
            assert status.stream_id == stream_id
            assert code == StatusCode.RESOURCE_EXHAUSTED, message
            assert message.startswith("CALL refused: ") and "max_nesting_depth" in message
            print(f"{codec} nested {depth} deep: {message[:90]!r}")
        sock.sendall(encode_frame(FrameType.CALL, good, 9))
        status = next_frame(sock, decoder, FrameType.STATUS)
        assert decode_status(codec, status.payload) == [0, "", 5]
    assert_served(api, server, codec)


def decode_status(codec: str, payload: bytes) -> Any:
    return msgpack.unpackb(payload) if codec == "msgpack" else json.loads(payload)


# -- 6. fuzzed frames -----------------------------------------------------------------------

FUZZ_SEED = 20240611
FUZZ_FRAMES = int(os.environ.get("GOPHERPIPE_FUZZ_FRAMES", "8000"))
"""8,000 random frames keep the suite's time in bounds (this test took most of a minute
at 20,000); set GOPHERPIPE_FUZZ_FRAMES for a longer run. The deep search of the same
decoders is coverage-guided, in fuzz/ (`make fuzz`)."""
FUZZ_THREADS = 4
FRAMES_PER_CONNECTION = 100
"""Fuzzed CALL_STREAMs to total/echo hold a handler thread until their connection
ends; rotating connections keeps that bounded far below MAX_WORKERS."""

_UNKNOWN = [0x00, 0x05, 0x0F, 0x18, 0x20, 0x7F, 0xFF]
_TYPE_WEIGHTS = {
    FrameType.CALL: 25,
    FrameType.CALL_STREAM: 10,
    FrameType.MESSAGE: 15,
    FrameType.HALF_CLOSE: 5,
    FrameType.CANCEL: 5,
    FrameType.CREDIT: 5,
    FrameType.PING: 5,
    FrameType.PONG: 2,
    FrameType.GOAWAY: 2,
    FrameType.HELLO: 1,  # a second HELLO, and STATUS from a client: connection errors
    FrameType.STATUS: 1,
    **{unknown: 1 for unknown in _UNKNOWN},
}
_ODD_VALUES: list[Any] = [
    None, True, 0, -1, 1.5, 2**64 - 1, -(2**63), "", "x" * 40, b"\x00\xff",
    [], [1, "two"], {}, {"k": 1}, {1: 2}, [[0, "nested"]],
]  # fmt: skip


class FuzzFrames:
    """A deterministic stream of hostile frames for one connection sequence."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fresh = 1
        self.recent: list[int] = [1]

    def value(self) -> Any:
        return self.rng.choice(_ODD_VALUES)

    def stream_id(self, opening: bool) -> int:
        rng = self.rng
        roll = rng.random()
        if (opening and roll < 0.8) or roll < 0.3:
            self.fresh += 2
            self.recent = [*self.recent[-7:], self.fresh]
            return self.fresh
        if roll < 0.85:
            return rng.choice(self.recent)
        if roll < 0.95:
            return rng.randrange(1, HUGE + 1)
        return rng.choice([0, HUGE])  # 0 is a connection error for stream frames

    def call_args(self) -> tuple[str, str, list[Any]]:
        rng = self.rng
        templates: list[tuple[str, str, list[Any]]] = [
            ("AllTypes", "add", [rng.randrange(-(2**63), 2**63), rng.randrange(-10, 10)]),
            ("AllTypes", "echo_scalars", [1, 1.5, "s", b"b", True]),
            ("AllTypes", "nothing", []),
            ("AllTypes", "whoami", []),
            ("AllTypes", "fail", [rng.randrange(1, 17), "fuzz"]),
            ("AllTypes", "crash", ["fuzz"]),
            ("AllTypes", "wrong_return", []),
            ("AllTypes", "echo_optional", [[[1.0, 2.0]]]),
            ("AllTypes", "sleep", [rng.random() / 50]),  # never long: handlers are finite
            ("AllTypes", "blob", [rng.randrange(0, 4096)]),
            ("Streams", "count_up", [rng.randrange(100), rng.randrange(20)]),
            ("Streams", "total", []),
            ("Streams", "echo", ["re: "]),
            ("Streams", "fail_after", [2, 5, "fuzz"]),
            ("Streams", "crash_after", [1]),
            ("Streams", "stats", ["fuzz"]),
            ("Ghost", "add", [1, 2]),
            ("AllTypes", "nope", []),
        ]
        return rng.choice(templates)

    def call_body(self) -> bytes:
        rng = self.rng
        service, method, args = self.call_args()
        fields: list[Any] = [service, method, rng.choice([None, 0, 5000]), {"k": "v"}, args]
        mutation = rng.random()
        if mutation < 0.25:  # a field of the wrong type
            fields[rng.randrange(5)] = self.value()
        elif mutation < 0.35 and args:  # an argument of the wrong type
            args[rng.randrange(len(args))] = self.value()
        elif mutation < 0.4:  # too few fields, or extra ones
            fields = fields[: rng.randrange(5)] if rng.random() < 0.5 else [*fields, 1, "x"]
        body: bytes = msgpack.packb(fields, use_bin_type=True)
        return self.mangle(body)

    def mangle(self, body: bytes) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            return body[: rng.randrange(len(body) + 1)]  # truncated
        if roll < 0.15:
            return rng.randbytes(rng.randrange(64))  # random bytes
        return body

    def message_body(self) -> bytes:
        rng = self.rng
        items = [[i, "item"] for i in range(rng.randrange(1, 5))]
        if rng.random() < 0.2:
            items[0] = self.value()  # an item of the wrong type
        body: bytes = msgpack.packb(items if rng.random() < 0.9 else self.value())
        return self.mangle(body)

    def frame(self) -> bytes:
        rng = self.rng
        types = list(_TYPE_WEIGHTS)
        frame_type = rng.choices(types, weights=list(_TYPE_WEIGHTS.values()))[0]
        if frame_type in (FrameType.CALL, FrameType.CALL_STREAM):
            return encode_stream_frame(frame_type, self.stream_id(True), self.call_body())
        if frame_type == FrameType.MESSAGE:
            return encode_stream_frame(frame_type, self.stream_id(False), self.message_body())
        if frame_type == FrameType.CREDIT:
            count = struct.pack(">I", rng.choice([0, 1, 512, HUGE]))
            body = count if rng.random() < 0.8 else rng.randbytes(rng.choice([0, 3, 5]))
            return encode_stream_frame(frame_type, self.stream_id(False), body)
        if frame_type in (FrameType.HALF_CLOSE, FrameType.CANCEL, FrameType.STATUS):
            body = b"" if rng.random() < 0.7 else rng.randbytes(rng.randrange(16))
            return encode_stream_frame(frame_type, self.stream_id(False), body)
        if frame_type == FrameType.HELLO:
            body = client_hello(("msgpack",), 1 << 20)
            return encode_frame(FrameType.HELLO, self.mangle(body))
        # PING, PONG, GOAWAY and unknown types: opaque random bodies.
        return struct.pack(">BI", frame_type, n := rng.randrange(32)) + rng.randbytes(n)

    def batch(self) -> list[bytes]:
        return [self.frame() for _ in range(self.rng.randrange(1, 9))]


_SERVER_SENDS = {FrameType.PONG, FrameType.MESSAGE, FrameType.CREDIT, FrameType.CANCEL}


class FuzzTally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frames = 0
        self.connections = 0
        self.goaways = 0
        self.statuses: dict[int, int] = {}
        self.problems: list[str] = []

    def note(self, received: list[Any]) -> None:
        with self.lock:
            for frame in received:
                if frame.type == FrameType.GOAWAY:
                    self.goaways += 1
                    _, code, message = decode_goaway(frame.payload)
                    if code != StatusCode.INTERNAL or not message.startswith("protocol error:"):
                        self.problems.append(f"GOAWAY {code} {message!r}")
                elif frame.type == FrameType.STATUS:
                    body = msgpack.unpackb(frame.payload)
                    if type(body) is not list or len(body) != 3 or body[0] not in range(17):
                        self.problems.append(f"STATUS {body!r}")
                    else:
                        self.statuses[body[0]] = self.statuses.get(body[0], 0) + 1
                elif frame.type not in _SERVER_SENDS:
                    self.problems.append(f"unexpected frame {frame.type:#04x}")


def fuzz_connections(address: str, seed: int, count: int, tally: FuzzTally) -> None:
    """Send `count` fuzzed frames in batches, each batch followed by a PING whose PONG
    proves the server read it all; a connection the server drops is replaced."""
    fuzz = FuzzFrames(seed)
    sent = 0
    sock: socket.socket | None = None
    decoder = FrameDecoder(1 << 20)
    on_this_connection = 0
    try:
        while sent < count:
            if sock is None or on_this_connection >= FRAMES_PER_CONNECTION:
                if sock is not None:
                    sock.close()
                sock, decoder = handshake(address)
                on_this_connection = 0
                with tally.lock:
                    tally.connections += 1
            batch = fuzz.batch()[: count - sent]
            sent += len(batch)
            on_this_connection += len(batch)
            token = struct.pack(">I", sent) + b"sync"
            lying = fuzz.rng.random() < 0.005
            if lying:  # a length longer than the body, then hang up mid-frame
                batch.append(struct.pack(">BI", FrameType.CALL, 1000) + b"\x00\x00\x00\x07")
            try:
                sock.sendall(b"".join(batch) + encode_frame(FrameType.PING, token))
                if lying:
                    sock.close()
                    sock = None
                    continue
                while True:  # bounded by the socket timeout
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionResetError("closed")
                    received = decoder.feed(data)
                    tally.note(received)
                    if any(f.type == FrameType.PONG and f.payload == token for f in received):
                        break
            except (ConnectionResetError, BrokenPipeError):
                # A connection error in the batch: the server sent GOAWAY and closed
                # (or reset, when our later frames were still unread).
                sock.close()
                sock = None
    finally:
        if sock is not None:
            sock.close()
        with tally.lock:
            tally.frames += sent


def test_fuzzed_frames_leave_the_server_serving(api: dict[str, Any], server: ServerProcess) -> None:
    rss_before = rss_kib(server)
    tally = FuzzTally()
    errors: list[BaseException] = []
    stop = threading.Event()
    served = [0]

    def well_behaved() -> None:
        try:
            with api["AllTypesClient"].dial(server.address) as client:
                client = client.with_options(timeout=15)
                while not stop.is_set():
                    n = served[0]
                    assert client.add(n, 1000) == n + 1000
                    served[0] += 1
                    stop.wait(0.005)  # pacing only: leave CPU to the fuzzers
        except BaseException as exc:  # reported below
            errors.append(exc)

    def fuzzer(index: int) -> None:
        try:
            fuzz_connections(server.address, FUZZ_SEED + index, FUZZ_FRAMES // FUZZ_THREADS, tally)
        except BaseException as exc:  # reported below
            errors.append(exc)

    bystander = threading.Thread(target=well_behaved)
    fuzzers = [threading.Thread(target=fuzzer, args=(i,)) for i in range(FUZZ_THREADS)]
    began = time.monotonic()
    bystander.start()
    for thread in fuzzers:
        thread.start()
    for thread in fuzzers:
        thread.join(120)
    stop.set()
    bystander.join(30)
    took = time.monotonic() - began
    assert not any(t.is_alive() for t in [*fuzzers, bystander]), "a fuzz thread hung"
    assert errors == []
    assert tally.problems == []
    assert tally.frames == FUZZ_FRAMES
    assert served[0] > 0
    growth = rss_kib(server) - rss_before
    print(
        f"{tally.frames} fuzzed frames over {tally.connections} connections in {took:.1f}s: "
        f"{tally.goaways} GOAWAYs, STATUS codes {dict(sorted(tally.statuses.items()))}; "
        f"{served[0]} calls served meanwhile; RSS growth {growth} KiB"
    )
    assert_served(api, server)
    assert_served(api, server, codec="json")


# -- 7. a client killed mid-call ---------------------------------------------------------------

THREAD_BOUND = MAX_WORKERS + 4
"""The server's threads once idle: the pool never has more than max_workers + 1
(one polling while max_workers run handlers), plus the server's one stream-sending
thread, the main thread and serve.py's stdin watcher. Stream producers of the test
services end with their streams."""

_DOOMED = """
import sys, threading, time
sys.path.insert(0, {stub_dir!r})
from e2e_alltypes_client import AllTypesClient
from e2e_streams import Item
from e2e_streams_client import StreamsClient
from gopherpipe_runtime import Pipe

pipe = Pipe({address!r})
calls, streams = AllTypesClient(pipe), StreamsClient(pipe)
hold = threading.Event()  # never set: every call stays in flight until the kill
ready = threading.Semaphore(0)

def first_then_hold():
    yield Item(0, "x")
    ready.release()  # the pump came back for a second item: the first went out
    hold.wait()

def server_stream(tag):
    stream = streams.endless(tag, 4)
    stream.recv()
    ready.release()
    hold.wait()

def bidi():
    out = streams.echo("e", first_then_hold())
    out.recv()
    hold.wait()

jobs = [(calls.sleep, (60.0,))] * 10
jobs += [(server_stream, ("{tag}-endless-0",)), (server_stream, ("{tag}-endless-1",))]
jobs += [(bidi, ()), (bidi, ())]
jobs += [(streams.total, (first_then_hold(),)), (streams.total, (first_then_hold(),))]
for target, args in jobs:
    threading.Thread(target=target, args=args, daemon=True).start()
# Every stream has carried an item (so its call is open at the server)...
assert all(ready.acquire(timeout=30) for _ in range(2 + 2 + 2)), "streams did not start"
deadline = time.monotonic() + 30
while len(pipe._connection.calls) < 10:  # ...the unary calls are registered...
    assert time.monotonic() < deadline, "unary calls were not made"
    hold.wait(0.005)
# ...and a later call on the same connection came back: the server has read the
# CALLs the writer sent before it (a thread registered but not yet written is
# possible in principle; then it is in flight only from the client's side).
assert calls.with_options(timeout=30).add(1, 2) == 3
print("ready", len(jobs), flush=True)
hold.wait()
"""


def kill_a_busy_client(
    api: dict[str, Any], server: ServerProcess, stub_dir: Path, tag: str
) -> None:
    script = textwrap.dedent(_DOOMED).format(
        stub_dir=str(stub_dir), address=server.address, tag=tag
    )
    doomed = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    # Bounds the readline below: a child stuck before "ready" is killed, we read EOF.
    watchdog = threading.Timer(60, doomed.kill)
    watchdog.start()
    try:
        assert doomed.stdout is not None
        assert doomed.stdout.readline().split() == ["ready", "16"]
        assert_served(api, server)  # while 16 calls are in flight
        doomed.send_signal(signal.SIGKILL)
        assert doomed.wait(10) == -signal.SIGKILL
    finally:
        watchdog.cancel()
        doomed.kill()
        doomed.wait(10)
    with api["StreamsClient"].dial(server.address) as client:
        for index in range(2):
            stats = f"{tag}-endless-{index}"
            wait_until(lambda s=stats: client.stats(s)["stopped"] == 1, f"{stats} was stopped")
            wait_until(lambda s=stats: client.stats(s)["threads"] == 0, f"{stats} thread ended")


def assert_every_worker_comes_free(api: dict[str, Any], server: ServerProcess, tag: str) -> None:
    """max_workers - 1 handlers blocked at once while the last worker still answers
    `stats`: only possible if no handler of the killed client holds a worker. (A
    burst of quick calls alone would pass with a few workers leaked.)"""
    held = MAX_WORKERS - 1
    tags = [f"{tag}-hold-{i}" for i in range(held)]
    results: list[Any] = []
    with api["StreamsClient"].dial(server.address) as client:
        item = api["Item"](0, "x")
        # Each probe is bounded: with every worker taken it would queue until one frees.
        probe = client.with_options(timeout=2.0)

        def hold(t: str) -> None:
            results.append(client.drain_slowly(t, [item]))

        def started(t: str) -> bool:
            try:
                return bool(probe.stats(t)["consumed"] == 1)
            except DeadlineExceededError:
                return False  # no worker free to answer: one is still taken

        callers = [threading.Thread(target=hold, args=(t,)) for t in tags]
        try:
            for caller in callers:
                caller.start()
            for t in tags:
                wait_until(
                    lambda t=t: started(t),
                    f"{held} handlers block at once and one more worker answers stats "
                    f"(stuck at {t}: a worker is still taken)",
                )
        finally:
            # The handlers give up waiting by themselves after 30 s if this cannot run.
            for t in tags:
                client.with_options(timeout=40).release(t)
            for caller in callers:
                caller.join(40)
    assert results == [1] * held


def burst_of_unary_calls(api: dict[str, Any], server: ServerProcess, count: int) -> list[int]:
    """`count` concurrent unary calls from a new client; their results."""
    results: list[int] = []
    with api["AllTypesClient"].dial(server.address) as client:
        client = client.with_options(timeout=20)

        def call(n: int) -> None:
            results.append(client.add(n, 1))

        burst = [threading.Thread(target=call, args=(n,)) for n in range(count)]
        for thread in burst:
            thread.start()
        for thread in burst:
            thread.join(30)
    return results


def test_client_killed_with_calls_in_flight(
    api: dict[str, Any], server: ServerProcess, stub_dir: Path
) -> None:
    figures = []
    for round_ in range(2):  # twice: threads must not grow from one kill to the next
        kill_a_busy_client(api, server, stub_dir, f"kill{round_}")
        assert_every_worker_comes_free(api, server, f"kill{round_}")
        # A later burst of 32 concurrent unary calls from a new client all succeed.
        assert sorted(burst_of_unary_calls(api, server, 32)) == list(range(1, 33))
        wait_until(
            lambda: server_threads(server) <= THREAD_BOUND,
            f"the server is back to at most {THREAD_BOUND} threads (max_workers + 4)",
        )
        figures.append(server_threads(server))
    print(f"server threads after each kill: {figures} (bound {THREAD_BOUND})")
    assert_served(api, server)

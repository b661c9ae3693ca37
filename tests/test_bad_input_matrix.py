"""The bad-input matrix (issue 9): each row is a kind of bad input, tried against a
server in its own process while a well-behaved client keeps calling.

Every row runs the same way (`run_row`):
- the server's VmRSS, thread count and open descriptors are read from /proc;
- a bystander -- generated stubs over a `Pipe` of their own, unary `add` calls and
  every tenth call a short server stream, each with a 30 s deadline -- starts
  calling and keeps calling through the attack; it must see zero failures;
- the attack runs over raw sockets and checks what the RFC prescribes for the
  attacker (GOAWAY and its code and reason, a STATUS code, a plain close, or that
  the bad frame is ignored and the connection keeps serving);
- afterwards the server must still be alive and serve fresh clients (unary and a
  stream over msgpack, unary over JSON), every connection the row opened must be
  closed at the server (descriptors back to where they were), and the server's
  threads must be back within `THREAD_BOUND`;
- RSS growth is checked against the row's bound, both the peak while the row ran
  (sampled every 10 ms) and what is left afterwards.

Bounds (the server runs with `SERVER_OPTIONS`; its pool is warmed up to its cap
first, so threads started on demand do not count as growth):
- threads after every row <= max_workers + 4 (`THREAD_BOUND`: the pool's cap of
  max_workers + 1, the stream-sending thread, the main thread and serve.py's stdin
  watcher);
- RSS growth <= 8 MiB (`RSS_BOUND_KIB`), at the row's peak and after it, except:
  - 2,000 idle connections: <= 8 KiB per connection while all are held (16 MiB; the
    same bound after, since the allocator keeps what they used), and 2,000 more
    opened and closed afterwards add <= 4 MiB: the memory is reused, no connection
    stays behind (a whole one costs about 4 KiB);
  - a client that never reads its results: <= 30 MiB at the peak and after
    (`NEVER_READS_KIB`): twice max_outbound_bytes (the queue for that client, and the
    buffer a flush joins it into) + per handler thread a result, its encoding and its
    frame (3 x 256 KiB) + 8 MiB. (100 floods in a row settle at about 90 MiB above the
    start, from the 60th on: glibc keeps freed memory in each thread's arena; with
    MALLOC_ARENA_MAX=1 they stay within 15 MiB of it. No connection stays alive.)

Rows 2 and 5 run again on a connection whose server stream is sending when the bad
frame arrives (`test_connection_error_while_a_stream_is_sending`): the GOAWAY must
still come, as the last frame.

Run with `-s` to see the table of what each row measured. One run at 6f5d39a (a quiet
2-core VM, `pytest -s`; RSS in KiB, threads before -> after, the bystander's calls
meanwhile, none failed):

    row                          before    peak   after threads calls  attacker got
    truncated frame               25640   25720   25736 11 -> 11  357  GOAWAY UNAVAILABLE
                                  (frame_timeout) after 1.1 s; before HELLO closed after 2.1 s
    oversized length              25736   26032   26032 11 -> 11   14  GOAWAY INTERNAL x20;
                                  result over the client's max: STATUS RESOURCE_EXHAUSTED
    unknown frame type            26032   26032   26044 11 -> 11   19  26 ignored, served on;
                                  as the first frame: GOAWAY INTERNAL
    frame for unknown/closed      26044   26052   26056 11 -> 11   26  28 ignored, served on
    duplicate stream id           26056   26064   26068 11 -> 11   34  GOAWAY INTERNAL x3
    oversized, stream sending     26068   26156   26172 11 -> 12 1026  GOAWAY last (10/10)
    duplicate id, stream sending  26172   26228   26232 12 -> 12  623  GOAWAY last (10/10)
    bad msgpack                   26232   26248   26248 12 -> 12   48  CALL: INVALID_ARGUMENT
                                  x7, served on; MESSAGE, HELLO: GOAWAY INTERNAL
    valid msgpack, wrong shape    26248   26264   26260 12 -> 12   50  INVALID_ARGUMENT x22;
                                  MESSAGE, HELLO: GOAWAY INTERNAL; old version: UNIMPLEMENTED
    huge declared length          26260   26332   26332 12 -> 12  102  INVALID_ARGUMENT x54;
                                  MESSAGE, HELLO: GOAWAY INTERNAL x18
    nesting 100,000 deep          26332   27484   27488 12 -> 12   14  RESOURCE_EXHAUSTED
                                  (max_nesting_depth) x5; MESSAGE, HELLO: GOAWAY INTERNAL
    2000 idle connections         27488   37348   37356 12 -> 12 1094  4.3 KiB each; GOAWAY
                                  UNAVAILABLE (idle timeout) 5.1-5.3 s after HELLO; 2000 more: +1148
    never reads (flood)           37356   45344   41888 12 -> 12   14  dropped at once (cap)
    never reads (stall)           41888   49964   42708 12 -> 12  361  dropped after 2.1 s
    never reads (streams)         42708   43160   42992 12 -> 12  119  held at the window,
                                  producers stopped when it went
    (TLS client without a certificate: +2368 KiB; WebSocket text frames: +344 KiB;
     tests/test_bad_input_matrix_transports.py, an earlier run)
"""

from __future__ import annotations

import contextlib
import json
import random
import selectors
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from e2e_harness import (
    HUGE,
    HUGE_HEADERS,
    Bystander,
    Measured,
    ServerProcess,
    assert_served_fresh,
    call_body,
    call_prefix,
    e2e_api,
    format_table,
    frames_until_closed,
    generate_stubs,
    handshake,
    hello_bytes,
    host_port,
    measure_row,
    next_frame,
    nofile_raised,
    raw_socket,
    stub_calls,
    wait_until,
    warm_up,
)

from gopherpipe_runtime import Pipe, StatusCode
from gopherpipe_runtime.wire.frames import (
    DEFAULT_MAX_FRAME_SIZE,
    MAX_HELLO_SIZE,
    PREFACE,
    FrameDecoder,
    FrameType,
    decode_goaway,
    encode_credit,
    encode_frame,
)

MiB = 1024 * 1024
MAX_WORKERS = 8
HANDSHAKE_TIMEOUT = 2.0
FRAME_TIMEOUT = 1.0
IDLE_TIMEOUT = 5.0
WRITE_TIMEOUT = 2.0
MAX_OUTBOUND = 8 * MiB
SERVER_OPTIONS = {
    "max_workers": MAX_WORKERS,
    "handshake_timeout": HANDSHAKE_TIMEOUT,
    "frame_timeout": FRAME_TIMEOUT,
    "idle_timeout": IDLE_TIMEOUT,
    "write_timeout": WRITE_TIMEOUT,
    "max_outbound_bytes": MAX_OUTBOUND,
}
"""Short timeouts so rows that wait for one stay quick; a small outbound cap so the
client that never reads reaches it with little memory."""

THREAD_BOUND = MAX_WORKERS + 4
RSS_BOUND_KIB = 8 * 1024
IDLE_CONNECTIONS = 2000
IDLE_KIB_EACH = 8
IDLE_AGAIN_KIB = 4 * 1024
FD_HEADROOM = 256
BLOB = 256 * 1024
NEVER_READS_KIB = (2 * MAX_OUTBOUND + MAX_WORKERS * 3 * BLOB) // 1024 + 8 * 1024


# -- the server, the bystander, and measuring a row --------------------------------------------


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_stubs(
        tmp_path_factory.mktemp("matrix_stubs"), "e2e_alltypes.py", "e2e_streams.py"
    )


@pytest.fixture(scope="module")
def api(stub_dir: Path) -> Iterator[dict[str, Any]]:
    with e2e_api(stub_dir) as found:
        yield found


@pytest.fixture(scope="module")
def idle_count() -> Iterator[int]:
    """Room for 2,000 idle connections at both ends (the server inherits the limit)."""
    with nofile_raised(IDLE_CONNECTIONS, FD_HEADROOM) as allowed:
        yield allowed


@pytest.fixture(scope="module")
def server(stub_dir: Path, api: dict[str, Any], idle_count: int) -> Iterator[ServerProcess]:
    process = ServerProcess(stub_dir, options=json.dumps(SERVER_OPTIONS))
    try:
        warm_up(api, process.address, MAX_WORKERS)
        yield process
    finally:
        process.stop()
        print_table()


@contextlib.contextmanager
def bystander(api: dict[str, Any], server: ServerProcess) -> Iterator[Bystander]:
    with Pipe(server.address) as pipe, Bystander(stub_calls(api, pipe)) as calling:
        yield calling


RESULTS: list[Measured] = []


def print_table() -> None:
    if RESULTS:
        title = (
            "bad-input matrix: the server's RSS and threads before and after each row, "
            "the calls the bystander made meanwhile (none failed), what the attacker got"
        )
        print(format_table(title, RESULTS))


def run_row(
    row: str,
    api: dict[str, Any],
    server: ServerProcess,
    attack: Callable[[], str],
    peak_bound_kib: int = RSS_BOUND_KIB,
    after_bound_kib: int = RSS_BOUND_KIB,
) -> Measured:
    """Run `attack` while a bystander keeps calling (`measure_row`), then check the
    row's RSS bounds and that the bystander really called throughout."""
    measured = measure_row(
        row,
        server,
        attack,
        lambda: bystander(api, server),
        lambda: assert_served_fresh(api, server, server.address),
        THREAD_BOUND,
    )
    RESULTS.append(measured)
    print(f"\n{measured}")
    assert measured.calls >= 10, f"{row}: the bystander made only {measured.calls} calls"
    growth = measured.rss_after - measured.rss_before
    assert growth <= after_bound_kib, f"{row}: server RSS grew by {growth} KiB"
    peak = measured.rss_peak - measured.rss_before
    assert peak <= peak_bound_kib, f"{row}: server RSS peaked {peak} KiB above where it was"
    return measured


# -- raw-peer helpers ------------------------------------------------------------------------


def status_of(sock: socket.socket, decoder: FrameDecoder, stream_id: int) -> list[Any]:
    """The next STATUS (msgpack or JSON) on `sock`, which must be for `stream_id`."""
    frame = next_frame(sock, decoder, FrameType.STATUS)
    assert frame.stream_id == stream_id, (frame.stream_id, stream_id)
    try:
        body: list[Any] = msgpack.unpackb(frame.payload)
    except Exception:
        body = json.loads(frame.payload)
    return body


def ping_pong(sock: socket.socket, decoder: FrameDecoder, token: bytes = b"matrix!!") -> list[Any]:
    """PING, and every frame that came before its PONG (the server read all we sent)."""
    sock.sendall(encode_frame(FrameType.PING, token))
    before: list[Any] = []
    while True:
        data = sock.recv(65536)
        assert data, "the server closed the connection instead of answering PING"
        for frame in decoder.feed(data):
            if frame.type == FrameType.PONG and frame.payload == token:
                return before
            before.append(frame)


def assert_still_serves(sock: socket.socket, decoder: FrameDecoder, stream_id: int) -> None:
    """The same connection answers a PING and a good CALL."""
    ping_pong(sock, decoder)
    sock.sendall(encode_frame(FrameType.CALL, call_body("AllTypes", "add", [2, 3]), stream_id))
    assert status_of(sock, decoder, stream_id) == [0, "", 5]


def frame_name(frame_type: int) -> str:
    try:
        return FrameType(frame_type).name
    except ValueError:
        return f"{frame_type:#04x}"


def goaway_then_close(
    sock: socket.socket, decoder: FrameDecoder, code: int, reason: str, what: str = ""
) -> tuple[int, str]:
    """The server sent GOAWAY with `code` and a message containing `reason` as its last
    frame, then closed; (last stream id, message). `what` names the case in failures."""
    received = frames_until_closed(sock, decoder)
    kinds = [frame_name(f.type) for f in received]
    assert received, f"{what}: the connection was closed without a GOAWAY"
    last = received[-1]
    assert last.type == FrameType.GOAWAY, f"{what}: frames before the close: {kinds}"
    last_stream, got_code, message = decode_goaway(last.payload)
    assert got_code == code, (what, StatusCode(got_code).name, message)
    assert reason in message, (what, message)
    if code == StatusCode.INTERNAL:
        assert message.startswith("protocol error:"), (what, message)
    return last_stream, message


def protocol_error(sock: socket.socket, decoder: FrameDecoder, reason: str, what: str = "") -> str:
    return goaway_then_close(sock, decoder, StatusCode.INTERNAL, reason, what)[1]


BUSY_TRIES = 10
"""Busy-connection cases are tried this often: whether the server's writer is in the
middle of a send when the bad frame arrives is a matter of timing."""


def busy_connection(address: str, tag: str) -> tuple[socket.socket, FrameDecoder]:
    """A connection past HELLO whose stream 1 is an endless server stream (Streams.endless)
    the server is sending on: the server's writer is busy with it when the next frame
    arrives. RFC §8 holds all the same: a connection error's GOAWAY is the last frame."""
    sock, decoder = handshake(address)
    sock.sendall(encode_frame(FrameType.CALL, call_body("Streams", "endless", [tag, 4]), 1))
    ping_pong(sock, decoder)  # the stream is open at the server
    return sock, decoder


def assert_producers_stopped(api: dict[str, Any], server: ServerProcess, tag: str) -> None:
    """The endless streams tagged `tag` ended at the server: their producer saw it."""
    with api["StreamsClient"].dial(server.address) as observer:
        stats = observer.with_options(timeout=15).stats
        wait_until(
            lambda: stats(tag)["stopped"] == 1 and stats(tag)["threads"] == 0,
            f"the producer of the server stream {tag!r} stopped",
        )


def closed_silently(sock: socket.socket) -> None:
    """The server closed the connection without sending anything."""
    assert sock.recv(65536) == b""


def client_stream(sock: socket.socket, stream_id: int, items: list[Any]) -> None:
    """Open Streams.total (a client stream) on `stream_id` and send `items`, no HALF_CLOSE."""
    sock.sendall(
        encode_frame(FrameType.CALL_STREAM, call_body("Streams", "total", []), stream_id)
        + encode_frame(FrameType.MESSAGE, msgpack.packb(items), stream_id)
    )


# -- 1. truncated frame ------------------------------------------------------------------------


def test_truncated_frame(api: dict[str, Any], server: ServerProcess) -> None:
    """RFC §10: a frame must arrive within frame_timeout of its first byte, else
    GOAWAY UNAVAILABLE and close; before HELLO the handshake timeout closes silently;
    a peer that hangs up mid-frame is simply closed."""
    call = encode_frame(FrameType.CALL, call_body("AllTypes", "add", [1, 2]), 1)

    def attack() -> str:
        cuts = {
            "header, half the body": call[: len(call) // 2],
            "3 bytes of a header": call[:3],
            "a 1 MiB MESSAGE, 1 KiB of it": struct.pack(">BII", FrameType.MESSAGE, MiB, 1)
            + b"\x00" * 1024,
        }
        opened = contextlib.ExitStack()
        socks: list[tuple[str, socket.socket, FrameDecoder, float]] = []
        for name, prefix in cuts.items():
            sock, decoder = handshake(server.address)
            opened.enter_context(sock)
            sock.sendall(prefix)
            socks.append((name, sock, decoder, time.monotonic()))
        # Before HELLO: preface and half a HELLO.
        early = opened.enter_context(raw_socket(server.address))
        early.sendall(hello_bytes()[: len(PREFACE) + 7])
        early_at = time.monotonic()
        # Mid-frame, then the peer half-closes: the server closes too.
        hung_up, decoder = handshake(server.address)
        with opened, hung_up:
            hung_up.sendall(call[:-2])
            hung_up.shutdown(socket.SHUT_WR)
            assert frames_until_closed(hung_up, decoder) == []
            took = []
            # Every GOAWAY first: the server closes each connection only after a linger.
            for name, sock, decoder, began in socks:
                goaway = next_frame(sock, decoder, FrameType.GOAWAY)
                took.append(time.monotonic() - began)
                last, code, message = decode_goaway(goaway.payload)
                assert (last, code) == (0, StatusCode.UNAVAILABLE), (name, last, code, message)
                assert "(frame_timeout)" in message, message
            for name, sock, decoder, _ in socks:
                assert frames_until_closed(sock, decoder) == [], name
            assert min(took) >= FRAME_TIMEOUT, took
            closed_silently(early)
            early_took = time.monotonic() - early_at
            assert early_took >= HANDSHAKE_TIMEOUT
        return (
            f"mid-frame: GOAWAY UNAVAILABLE frame_timeout after {min(took):.1f}-{max(took):.1f}s, "
            f"then close (3/3); before HELLO: closed after {early_took:.1f}s; hung up: closed"
        )

    run_row("truncated frame", api, server, attack)


# -- 2. oversized length ---------------------------------------------------------------------


def test_oversized_length(api: dict[str, Any], server: ServerProcess) -> None:
    """RFC §3: a length beyond the receiver's max_frame_size is a connection error,
    checked before any of the body is buffered; a result larger than the client's
    max_frame_size fails only that call with RESOURCE_EXHAUSTED (§6.5)."""

    def attack() -> str:
        goaways = 0
        for _ in range(5):  # repeated: an allocation per attempt would add up
            for frame_type, length in (
                (FrameType.CALL, DEFAULT_MAX_FRAME_SIZE + 1),
                (FrameType.MESSAGE, HUGE),
                (0x7F, HUGE),
            ):
                sock, decoder = handshake(server.address)
                with sock:
                    sock.sendall(struct.pack(">BI", frame_type, length))
                    protocol_error(
                        sock,
                        decoder,
                        f"frame of {length} bytes exceeds the negotiated maximum of "
                        f"{DEFAULT_MAX_FRAME_SIZE}",
                    )
                    goaways += 1
            with raw_socket(server.address) as sock:
                sock.sendall(PREFACE + struct.pack(">BI", FrameType.HELLO, MAX_HELLO_SIZE + 1))
                protocol_error(sock, FrameDecoder(1 << 20), f"maximum of {MAX_HELLO_SIZE}")
                goaways += 1
        # The other way round: a result too large for this client's 16 KiB frames.
        sock, decoder = handshake(server.address, max_frame_size=MAX_HELLO_SIZE)
        with sock:
            sock.sendall(encode_frame(FrameType.CALL, call_body("AllTypes", "blob", [10**5]), 1))
            code, message, result = status_of(sock, decoder, 1)
            assert code == StatusCode.RESOURCE_EXHAUSTED, message
            assert "exceeds the client's max frame size" in message, message
            assert result is None
            assert_still_serves(sock, decoder, 3)
        return (
            f"GOAWAY INTERNAL 'exceeds the negotiated maximum' ({goaways}/{goaways}); "
            "result too large for the client: STATUS RESOURCE_EXHAUSTED, connection kept"
        )

    run_row("oversized length", api, server, attack)


# -- 3. unknown frame type ---------------------------------------------------------------------

UNKNOWN_TYPES = [0x00, 0x05, 0x0F, 0x18, 0x20, 0x7F, 0x80, 0xFF]


def test_unknown_frame_type(api: dict[str, Any], server: ServerProcess) -> None:
    """RFC §3, §11: frames of an unknown type are ignored (later versions add types);
    before HELLO, a first frame other than HELLO is a connection error (§5)."""

    def attack() -> str:
        sock, decoder = handshake(server.address)
        sent = 0
        with sock:
            for frame_type in UNKNOWN_TYPES:
                for body in (b"", b"\x00\x00\x00\x01", random.Random(frame_type).randbytes(4096)):
                    sock.sendall(struct.pack(">BI", frame_type, len(body)) + body)
                    sent += 1
            # In between a call, so an unknown frame amid real ones is skipped too.
            sock.sendall(
                struct.pack(">BI", 0x42, 3)
                + b"abc"
                + encode_frame(FrameType.CALL, call_body("AllTypes", "add", [1, 2]), 1)
                + struct.pack(">BI", 0x43, 0)
            )
            assert status_of(sock, decoder, 1) == [0, "", 3]
            assert ping_pong(sock, decoder) == []
            assert_still_serves(sock, decoder, 3)
        with raw_socket(server.address) as early:
            early.sendall(PREFACE + struct.pack(">BI", 0x7F, 4) + b"abcd")
            protocol_error(early, FrameDecoder(1 << 20), "the first frame must be HELLO")
        return (
            f"after HELLO: {sent + 2} ignored, PONG and STATUS OK on the same connection; "
            "as the first frame: GOAWAY INTERNAL 'first frame must be HELLO'"
        )

    run_row("unknown frame type", api, server, attack)


# -- 4. frames for unknown or closed streams ---------------------------------------------------


def test_frame_for_unknown_or_closed_stream(api: dict[str, Any], server: ServerProcess) -> None:
    """RFC §6.4, §6.6: MESSAGEs on a stream that ended are discarded, CANCEL for an
    unknown stream is ignored; HALF_CLOSE and CREDIT may cross a STATUS on the wire
    too, so the server ignores them as well. The connection keeps serving."""

    def attack() -> str:
        sock, decoder = handshake(server.address)
        with sock:
            # Stream 1: a unary call, finished. Stream 3: a client stream, finished.
            sock.sendall(encode_frame(FrameType.CALL, call_body("AllTypes", "add", [1, 2]), 1))
            assert status_of(sock, decoder, 1) == [0, "", 3]
            client_stream(sock, 3, [[0, "a"]])
            sock.sendall(encode_frame(FrameType.HALF_CLOSE, b"", 3))
            assert status_of(sock, decoder, 3) == [0, "", [1, 1]]
            # Stream 5: cancelled by us while open.
            client_stream(sock, 5, [[0, "a"]])
            sock.sendall(encode_frame(FrameType.CANCEL, b"", 5))
            strays = 0
            for stream_id in (1, 3, 5, 7, 1001, 0x7FFF_FFFF, HUGE):  # ended, or never opened
                sock.sendall(
                    encode_frame(FrameType.MESSAGE, msgpack.packb([[0, "late"]]), stream_id)
                    + encode_frame(FrameType.HALF_CLOSE, b"", stream_id)
                    + encode_credit(stream_id, 1, 64)
                    + encode_frame(FrameType.CANCEL, b"", stream_id)
                )
                strays += 4
            before_pong = ping_pong(sock, decoder)
            # The server may still tell us it stopped reading stream 5 (a CANCEL);
            # it must not answer anything else, and must not hang up.
            assert all(
                f.type == FrameType.CANCEL and f.stream_id == 5 for f in before_pong
            ), before_pong
            assert_still_serves(sock, decoder, 9)
        return f"{strays} stray frames ignored; PONG and STATUS OK on the same connection"

    run_row("frame for unknown/closed stream", api, server, attack)


# -- 5. duplicate stream id ----------------------------------------------------------------------


def test_duplicate_stream_id(api: dict[str, Any], server: ServerProcess) -> None:
    """RFC §6.1: a CALL on a stream id that is still open is a connection error (§8:
    GOAWAY, then close); the call already open on it ends (a running handler sees it
    cancelled, a server stream's producer that it is over)."""

    def call(method: str, args: list[Any], frame_type: int = FrameType.CALL) -> bytes:
        service = "AllTypes" if method in ("sleep", "add") else "Streams"
        return encode_frame(FrameType(frame_type), call_body(service, method, args), 1)

    add = call("add", [1, 2])
    total = call("total", [], FrameType.CALL_STREAM)
    cases = {
        "CALL on a running CALL": (call("sleep", [20.0]), add),
        "CALL_STREAM on a client stream": (total, total),
        "CALL on a client stream": (total, add),
    }

    def attack() -> str:
        for name, (first, second) in cases.items():
            sock, decoder = handshake(server.address)
            with sock:
                sock.sendall(first)
                ping_pong(sock, decoder)  # the first call is open at the server
                sock.sendall(second)
                last, _ = goaway_then_close(
                    sock, decoder, StatusCode.INTERNAL, "stream 1 is already open", name
                )
                assert last == 1, name
        return (
            f"GOAWAY INTERNAL 'stream 1 is already open', last stream 1 "
            f"({len(cases)}/{len(cases)}); the open call ended"
        )

    run_row("duplicate stream id", api, server, attack)


# -- 2 and 5 again, on a connection the server is busy sending on -------------------------------


@pytest.mark.parametrize(
    ("row", "bad", "reason"),
    [
        (
            "oversized length",
            struct.pack(">BI", FrameType.CALL, HUGE),
            "exceeds the negotiated maximum",
        ),
        (
            "duplicate stream id",
            encode_frame(FrameType.CALL, call_body("AllTypes", "add", [1, 2]), 1),
            "stream 1 is already open",
        ),
    ],
    ids=["oversized length", "duplicate stream id"],
)
def test_connection_error_while_a_stream_is_sending(
    api: dict[str, Any], server: ServerProcess, row: str, bad: bytes, reason: str
) -> None:
    """Rows 2 and 5 on a connection whose stream 1 is an endless server stream, so the
    server's writer is busy with its MESSAGEs when the bad frame arrives. RFC §8 holds
    all the same: GOAWAY INTERNAL with the reason, then the close, and the stream's
    producer learns the stream is over."""

    def attack() -> str:
        for attempt in range(BUSY_TRIES):
            tag = f"{row}-{attempt}"
            sock, decoder = busy_connection(server.address, tag)
            with sock:
                sock.sendall(bad)
                protocol_error(sock, decoder, reason, f"{row}, try {attempt + 1}")
            assert_producers_stopped(api, server, tag)
        return (
            f"GOAWAY INTERNAL {reason!r} as the last frame ({BUSY_TRIES}/{BUSY_TRIES}); "
            "the stream's producer stopped"
        )

    run_row(f"{row}, stream sending", api, server, attack)


# -- 6. bad msgpack --------------------------------------------------------------------------

GOOD_CALL = call_body("AllTypes", "add", [1, 2])
BAD_MSGPACK = {
    "reserved byte 0xc1": b"\xc1",
    "truncated": GOOD_CALL[: len(GOOD_CALL) // 2],
    "truncated str": b"\x95\xa8AllTy",
    "trailing bytes": GOOD_CALL + b"\x01",
    "empty": b"",
    "random": random.Random(9).randbytes(64),
}


def test_bad_msgpack(api: dict[str, Any], server: ServerProcess) -> None:
    """RFC §6.2: a CALL body that does not decode fails only that call (STATUS
    INVALID_ARGUMENT "malformed CALL"); a MESSAGE or HELLO that does not decode is a
    connection error (§6.6, §5)."""

    def attack() -> str:
        sock, decoder = handshake(server.address)
        with sock:
            stream_id = 1
            for name, body in BAD_MSGPACK.items():
                sock.sendall(encode_frame(FrameType.CALL, body, stream_id))
                code, message, _ = status_of(sock, decoder, stream_id)
                assert code == StatusCode.INVALID_ARGUMENT, (name, message)
                assert message.startswith("malformed CALL"), (name, message)
                stream_id += 2
            assert_still_serves(sock, decoder, stream_id)
        sock, decoder = handshake(server.address, "json")
        with sock:
            sock.sendall(encode_frame(FrameType.CALL, b'["AllTypes","add",', 1))
            code, message, _ = status_of(sock, decoder, 1)
            assert code == StatusCode.INVALID_ARGUMENT and message.startswith("malformed CALL")
            sock.sendall(encode_frame(FrameType.CALL, b'["AllTypes","add",null,{},[1,2]]', 3))
            assert status_of(sock, decoder, 3) == [0, "", 3]
        for body in BAD_MSGPACK.values():
            if not body:
                continue  # an empty MESSAGE is another row's (wrong shape) business
            sock, decoder = handshake(server.address)
            with sock:
                client_stream(sock, 1, [[0, "ok"]])
                sock.sendall(encode_frame(FrameType.MESSAGE, body, 1))
                protocol_error(sock, decoder, "MESSAGE on stream 1")
        with raw_socket(server.address) as sock:
            sock.sendall(PREFACE + encode_frame(FrameType.HELLO, b"\xc1"))
            protocol_error(sock, FrameDecoder(1 << 20), "malformed HELLO")
        return (
            f"CALL: STATUS INVALID_ARGUMENT 'malformed CALL' ({len(BAD_MSGPACK) + 1}/"
            f"{len(BAD_MSGPACK) + 1}, connection kept); MESSAGE, HELLO: GOAWAY INTERNAL"
        )

    run_row("bad msgpack", api, server, attack)


# -- 7. valid msgpack of the wrong shape -------------------------------------------------------

WRONG_CALLS: dict[str, Any] = {
    "a map": {"service": "AllTypes"},
    "an int": 5,
    "3 items": ["AllTypes", "add", None],
    "service not a str": [1, "add", None, {}, [1, 2]],
    "method nil": ["AllTypes", None, None, {}, [1, 2]],
    "timeout a str": ["AllTypes", "add", "5", {}, [1, 2]],
    "timeout negative": ["AllTypes", "add", -1, {}, [1, 2]],
    "timeout 2**32": ["AllTypes", "add", 2**32, {}, [1, 2]],
    "metadata a list": ["AllTypes", "add", None, [], [1, 2]],
    "metadata int keys": ["AllTypes", "add", None, {1: "x"}, [1, 2]],
}
WRONG_ARGS: dict[str, Any] = {
    "args a map": {"a": 1, "b": 2},
    "args a str": "12",
    "args nil": None,
    "args an int": 12,
    "an arg of the wrong type": ["x", 2],
    # (More args than declared is not here: a newer client's trailing arguments are
    # ignored, RFC §6.2, so an older server still answers.)
    "too few args": [],
    "too many args, one of the wrong type": [1, "x", 3],
    "a float for an int": [1.5, 2],
}
WRONG_MESSAGES: dict[str, Any] = {"a map": {"seq": 0}, "an empty array": [], "an int": 7}
WRONG_ITEMS: dict[str, Any] = {
    "an item that is a str": ["item"],
    "an item with one field": [[0]],
    "an item with a field of the wrong type": [[0, 5]],
    "a nil item": [None],
}


def test_valid_msgpack_of_the_wrong_shape(api: dict[str, Any], server: ServerProcess) -> None:
    """RFC §6.2, §6.5: a CALL of the wrong shape is "malformed CALL", arguments that do
    not fit the contract are INVALID_ARGUMENT naming them -- only that call fails.
    A MESSAGE body that is not a non-empty array is a connection error (§6.6); items
    that do not fit the contract fail the call with INVALID_ARGUMENT. A HELLO that is
    not a map is a connection error; one with no common version gets GOAWAY
    UNIMPLEMENTED (§5)."""

    def attack() -> str:
        sock, decoder = handshake(server.address)
        with sock:
            stream_id = 1
            for name, body in WRONG_CALLS.items():
                sock.sendall(encode_frame(FrameType.CALL, msgpack.packb(body), stream_id))
                code, message, _ = status_of(sock, decoder, stream_id)
                assert code == StatusCode.INVALID_ARGUMENT, (name, message)
                assert message.startswith("malformed CALL"), (name, message)
                stream_id += 2
            for name, args in WRONG_ARGS.items():
                body = msgpack.packb(["AllTypes", "add", None, {}, args])
                sock.sendall(encode_frame(FrameType.CALL, body, stream_id))
                code, message, _ = status_of(sock, decoder, stream_id)
                assert code == StatusCode.INVALID_ARGUMENT, (name, StatusCode(code).name, message)
                stream_id += 2
            for name, items in WRONG_ITEMS.items():
                client_stream(sock, stream_id, items)
                sock.sendall(encode_frame(FrameType.HALF_CLOSE, b"", stream_id))
                code, message, _ = status_of(sock, decoder, stream_id)
                assert code == StatusCode.INVALID_ARGUMENT, (name, StatusCode(code).name, message)
                stream_id += 2
            assert_still_serves(sock, decoder, stream_id)
        for body in WRONG_MESSAGES.values():
            sock, decoder = handshake(server.address)
            with sock:
                client_stream(sock, 1, [[0, "ok"]])
                sock.sendall(encode_frame(FrameType.MESSAGE, msgpack.packb(body), 1))
                protocol_error(sock, decoder, "MESSAGE on stream 1 is not a non-empty array")
        for hello in ([2], {"versions": "2"}):
            with raw_socket(server.address) as sock:
                sock.sendall(PREFACE + encode_frame(FrameType.HELLO, msgpack.packb(hello)))
                protocol_error(sock, FrameDecoder(1 << 20), "malformed HELLO")
        with raw_socket(server.address) as sock:
            old = {"versions": [1], "codecs": ["msgpack"], "max_frame_size": 1 << 20}
            sock.sendall(PREFACE + encode_frame(FrameType.HELLO, msgpack.packb(old)))
            goaway_then_close(
                sock, FrameDecoder(1 << 20), StatusCode.UNIMPLEMENTED, "no common protocol version"
            )
        calls = len(WRONG_CALLS) + len(WRONG_ARGS) + len(WRONG_ITEMS)
        return (
            f"CALL/args/items: STATUS INVALID_ARGUMENT ({calls}/{calls}, connection kept); "
            "MESSAGE, HELLO: GOAWAY INTERNAL; old version: GOAWAY UNIMPLEMENTED"
        )

    run_row("valid msgpack, wrong shape", api, server, attack)


# -- 8. huge declared lengths inside msgpack ---------------------------------------------------


def test_msgpack_with_a_huge_declared_length(api: dict[str, Any], server: ServerProcess) -> None:
    """A msgpack header declaring 4 G elements (or 64 Ki) followed by a few bytes: the
    decoder must not believe it. In a CALL: malformed CALL; in a MESSAGE or a HELLO: a
    connection error. RSS must not move (the bound is far below one such allocation)."""
    headers = {**HUGE_HEADERS, "array16": b"\xdc\xff\xff" + b"\xc0" * 3}

    def attack() -> str:
        calls = 0
        sock, decoder = handshake(server.address)
        with sock:
            stream_id = 1
            for _ in range(3):
                for name, huge in headers.items():
                    for body in (
                        huge,
                        call_prefix("AllTypes", "echo_optional") + huge,
                        call_prefix("AllTypes", "echo_optional") + b"\x91" + huge,
                    ):
                        sock.sendall(encode_frame(FrameType.CALL, body, stream_id))
                        code, message, _ = status_of(sock, decoder, stream_id)
                        assert code == StatusCode.INVALID_ARGUMENT, (name, message)
                        assert message.startswith("malformed CALL"), (name, message)
                        stream_id += 2
                        calls += 1
            assert_still_serves(sock, decoder, stream_id)
        goaways = 0
        for huge in headers.values():
            for body in (huge, b"\x91" + huge):
                sock, decoder = handshake(server.address)
                with sock:
                    client_stream(sock, 1, [[0, "ok"]])
                    sock.sendall(encode_frame(FrameType.MESSAGE, body, 1))
                    protocol_error(sock, decoder, "MESSAGE on stream 1")
                goaways += 1
            with raw_socket(server.address) as sock:
                sock.sendall(PREFACE + encode_frame(FrameType.HELLO, huge))
                protocol_error(sock, FrameDecoder(1 << 20), "malformed HELLO")
            goaways += 1
        return (
            f"CALL: STATUS INVALID_ARGUMENT 'malformed CALL' ({calls}/{calls}); "
            f"MESSAGE, HELLO: GOAWAY INTERNAL ({goaways}/{goaways})"
        )

    run_row("huge declared msgpack length", api, server, attack)


# -- 9. nesting 100,000 deep -------------------------------------------------------------------

DEPTH = 100_000


def test_nesting_100000_deep(api: dict[str, Any], server: ServerProcess) -> None:
    """A value nested 100,000 deep, in msgpack and in JSON: in a CALL a refused CALL
    (RESOURCE_EXHAUSTED naming max_nesting_depth, never INTERNAL, never a crashed
    server); in a MESSAGE or a HELLO a connection error."""
    packed = b"\x91" * DEPTH + b"\xc0"
    texts = b"[" * DEPTH + b"]" * DEPTH

    def attack() -> str:
        sock, decoder = handshake(server.address)
        with sock:
            for stream_id, body in (
                (1, packed),
                (3, call_prefix("AllTypes", "echo_optional") + b"\x91" + packed),
                (5, call_prefix("AllTypes", "echo_everything") + b"\x91" + packed),
            ):
                sock.sendall(encode_frame(FrameType.CALL, body, stream_id))
                code, message, _ = status_of(sock, decoder, stream_id)
                assert code == StatusCode.RESOURCE_EXHAUSTED, message
                assert "max_nesting_depth" in message
            assert_still_serves(sock, decoder, 7)
        sock, decoder = handshake(server.address, "json")
        with sock:
            for stream_id, body in (
                (1, texts),
                (3, b'["AllTypes","echo_optional",null,{},[' + texts + b"]]"),
            ):
                sock.sendall(encode_frame(FrameType.CALL, body, stream_id))
                code, message, _ = status_of(sock, decoder, stream_id)
                assert code == StatusCode.RESOURCE_EXHAUSTED, message
                assert "max_nesting_depth" in message
            sock.sendall(encode_frame(FrameType.CALL, b'["AllTypes","add",null,{},[1,2]]', 5))
            assert status_of(sock, decoder, 5) == [0, "", 3]
        for codec, body in (("msgpack", b"\x91" + packed), ("json", b"[" + texts + b"]")):
            sock, decoder = handshake(server.address, codec)
            with sock:
                sock.sendall(
                    encode_frame(FrameType.CALL_STREAM, codec_call(codec, "Streams", "total"), 1)
                    + encode_frame(FrameType.MESSAGE, body, 1)
                )
                protocol_error(sock, decoder, "MESSAGE on stream 1")
        with raw_socket(server.address) as sock:
            sock.sendall(PREFACE + encode_frame(FrameType.HELLO, b"\x81\xa6codecs" + packed[:9000]))
            protocol_error(sock, FrameDecoder(1 << 20), "malformed HELLO")
        return (
            "CALL: STATUS RESOURCE_EXHAUSTED max_nesting_depth (msgpack 3/3, JSON 2/2, kept); "
            "MESSAGE, HELLO: GOAWAY INTERNAL"
        )

    run_row("nesting 100,000 deep", api, server, attack)


def codec_call(codec: str, service: str, method: str) -> bytes:
    if codec == "json":
        return json.dumps([service, method, None, {}, []]).encode()
    return call_body(service, method, [])


# -- 10. 2,000 idle connections ----------------------------------------------------------------

OPEN_CHUNK = 200
"""Connections opened (and answered) at a time: well below the listen backlog."""


def open_idle_connections(
    address: str, count: int, opened: list[float] | None = None
) -> list[socket.socket]:
    """`count` connections that finished HELLO, then say nothing; `opened` gets the
    time each one sent its HELLO (the server cannot have heard from it later)."""
    target = host_port(address)
    hello = hello_bytes()
    socks: list[socket.socket] = []
    chunk: list[socket.socket] = []
    try:
        while len(socks) < count:
            chunk: list[socket.socket] = []
            for _ in range(min(OPEN_CHUNK, count - len(socks))):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                chunk.append(sock)
                sock.settimeout(10)
                sock.connect(target)  # a plain connect: no name lookup per socket
                sock.sendall(hello)
                if opened is not None:
                    opened.append(time.monotonic())
            for sock in chunk:
                decoder = FrameDecoder(1 << 20)
                received: list[Any] = []
                while not received:
                    data = sock.recv(65536)
                    assert data, "an idle connection was closed before its HELLO"
                    received = decoder.feed(data)
                assert [f.type for f in received] == [FrameType.HELLO]
            socks += chunk
    except BaseException:
        for sock in socks + chunk:
            sock.close()
        raise
    return socks


def idle_goaways(socks: list[socket.socket], limit: float) -> list[tuple[bytes, float]]:
    """Wait (bounded) until the server closed every socket: for each, what it received
    and when the first of it arrived."""
    received = [b""] * len(socks)
    first = [0.0] * len(socks)
    left = len(socks)
    deadline = time.monotonic() + limit
    with selectors.DefaultSelector() as selector:
        for index, sock in enumerate(socks):
            selector.register(sock, selectors.EVENT_READ, index)
        while left:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{left} of {len(socks)} idle connections still open"
            for key, _ in selector.select(remaining):
                index = key.data
                data = socks[index].recv(65536)
                if data:
                    first[index] = first[index] or time.monotonic()
                    received[index] += data
                    continue
                selector.unregister(socks[index])
                left -= 1
    return list(zip(received, first, strict=True))


def test_two_thousand_idle_connections(
    api: dict[str, Any], server: ServerProcess, idle_count: int
) -> None:
    """2,000 connections finish HELLO and then send nothing, all held at once while the
    bystander is served: each costs the server a bounded amount of memory, and each gets
    GOAWAY UNAVAILABLE "idle timeout" after idle_timeout and is closed (RFC §10). Then
    2,000 more are opened and closed by us: the memory the first ones took is reused,
    nothing stays behind per connection."""
    figures: dict[str, float] = {}

    def attack() -> str:
        fds = server.fds()
        rss = server.rss_kib()
        began = time.monotonic()
        opened_at: list[float] = []
        socks = open_idle_connections(server.address, idle_count, opened_at)
        try:
            opened = time.monotonic() - began
            wait_until(
                lambda: server.fds() >= fds + idle_count,
                f"the server holds {idle_count} idle connections",
            )
            assert_served_fresh(api, server, server.address)  # while all are held
            figures["held"] = server.rss_kib() - rss
            outcome = idle_goaways(socks, limit=IDLE_TIMEOUT + 30)
        finally:
            for sock in socks:
                sock.close()
        for data, _ in outcome:
            frames = FrameDecoder(1 << 20).feed(data)
            assert [f.type for f in frames] == [FrameType.GOAWAY], frames
            last, code, message = decode_goaway(frames[0].payload)
            assert (last, code) == (0, StatusCode.UNAVAILABLE), (last, code, message)
            assert "idle timeout" in message, message
        lifetimes = [when - at for (_, when), at in zip(outcome, opened_at, strict=True)]
        assert min(lifetimes) >= IDLE_TIMEOUT, min(lifetimes)
        wait_until(lambda: server.fds() <= fds, "the server closed the idle connections")
        # Again, closed from our side this time: the memory must be reused.
        rss = server.rss_kib()
        for sock in open_idle_connections(server.address, idle_count):
            sock.close()
        wait_until(lambda: server.fds() <= fds, "the server closed the second idle batch")
        figures["again"] = server.rss_kib() - rss
        return (
            f"{idle_count} opened in {opened:.1f}s, held at "
            f"{figures['held'] / idle_count:.1f} KiB each; GOAWAY UNAVAILABLE 'idle timeout' "
            f"to all {min(lifetimes):.1f}-{max(lifetimes):.1f}s after their HELLO; "
            f"{idle_count} more opened and closed: RSS {figures['again']:+.0f} KiB"
        )

    run_row(
        f"{idle_count} idle connections",
        api,
        server,
        attack,
        peak_bound_kib=max(RSS_BOUND_KIB, IDLE_KIB_EACH * idle_count),
        after_bound_kib=max(RSS_BOUND_KIB, IDLE_KIB_EACH * idle_count),
    )
    assert figures["held"] <= IDLE_KIB_EACH * idle_count, figures
    assert figures["again"] <= IDLE_AGAIN_KIB, figures


# -- 11. a client that never reads its answers -------------------------------------------------


def never_reading_client(address: str, calls: int, size: int) -> socket.socket:
    """A connection that asks for `calls` results of `size` bytes each and reads none of
    them (its receive buffer pinned small, so the kernel holds little on its side)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(10)
    sock.connect(host_port(address))
    sock.sendall(hello_bytes(max_frame_size=2 * size))
    decoder = FrameDecoder(1 << 20)
    received: list[Any] = []
    while not received:
        data = sock.recv(65536)
        assert data, "closed before HELLO"
        received = decoder.feed(data)
    body = call_body("AllTypes", "blob", [size])
    sock.sendall(b"".join(encode_frame(FrameType.CALL, body, 2 * n + 1) for n in range(calls)))
    return sock


def drain(sock: socket.socket) -> int:
    """Read what the server sent before it dropped us, until EOF (or a reset)."""
    total = 0
    try:
        while chunk := sock.recv(1 << 20):
            total += len(chunk)
    except ConnectionResetError:
        pass
    return total


@pytest.mark.parametrize(
    ("case", "calls"),
    [("flood", 256), ("stall", 28)],
)
def test_client_that_never_reads_its_answers(
    api: dict[str, Any], server: ServerProcess, case: str, calls: int
) -> None:
    """A client asks for results of 256 KiB and never reads them (RFC §10, §12).
    Flooding, 256 of them (64 MiB): the server's queue for it passes max_outbound_bytes
    (8 MiB here) and the connection is dropped at once. Stalling, 28 of them (7 MiB:
    under the cap even if the kernel took nothing): the queue stops moving and the
    connection is dropped after write_timeout (2 s here). Either way the server's
    memory stays within `NEVER_READS_KIB`."""

    def attack() -> str:
        fds = server.fds()
        began = time.monotonic()
        sock = never_reading_client(server.address, calls, BLOB)
        with sock:
            wait_until(
                lambda: server.fds() <= fds,
                f"the server dropped the client that never reads ({case})",
                limit=WRITE_TIMEOUT + 20,
            )
            dropped = time.monotonic() - began
            if case == "stall":
                assert dropped >= WRITE_TIMEOUT, dropped
                assert dropped < IDLE_TIMEOUT, f"dropped after {dropped:.1f}s: not write_timeout"
            else:
                assert dropped < WRITE_TIMEOUT, f"dropped after {dropped:.1f}s: not at the cap"
            got = drain(sock)
        assert got < calls * BLOB, "every answer arrived: the client was never dropped"
        return (
            f"{calls} x {BLOB // 1024} KiB asked; dropped after {dropped:.1f}s "
            f"({'queue over max_outbound_bytes' if case == 'flood' else 'write_timeout'}), "
            f"{got / MiB:.1f} MiB had reached it"
        )

    run_row(
        f"never reads its answers ({case})",
        api,
        server,
        attack,
        peak_bound_kib=NEVER_READS_KIB,
        after_bound_kib=NEVER_READS_KIB,
    )


STREAMS = 16
STREAM_WINDOW = 1024
"""The items the raw client grants each stream in its HELLO (the default window)."""
ENDLESS_CAPACITY = 16


def test_client_that_never_reads_its_streams(api: dict[str, Any], server: ServerProcess) -> None:
    """A client opens 16 endless server streams and reads none of them (RFC §6.7): each
    producer is stopped by flow control once the stream's window is out, so the server
    holds at most a window per stream, not what the producers would make; the
    connection has calls open, so it is kept. When the client goes, every producer
    learns it (its send fails) and its thread ends."""
    tags = [f"never-reads-{n}" for n in range(STREAMS)]

    def attack() -> str:
        with api["StreamsClient"].dial(server.address) as observer:
            watch = observer.with_options(timeout=15)

            def produced() -> list[int]:
                return [watch.stats(tag).get("produced", 0) for tag in tags]

            sock, decoder = handshake(server.address)
            with sock:
                sock.sendall(
                    b"".join(
                        encode_frame(
                            FrameType.CALL,
                            call_body("Streams", "endless", [tag, ENDLESS_CAPACITY]),
                            2 * n + 1,
                        )
                        for n, tag in enumerate(tags)
                    )
                )
                wait_until(
                    lambda: min(produced()) >= STREAM_WINDOW,
                    "every stream used its window",
                )
                time.sleep(0.5)  # an observation window: none may go further
                most = max(produced())
                assert most <= STREAM_WINDOW + ENDLESS_CAPACITY + 1, most
                assert ping_pong(sock, decoder, b"stillopn") is not None  # kept, and read
            for tag in tags:
                wait_until(
                    lambda t=tag: watch.stats(t)["stopped"] == 1 and watch.stats(t)["threads"] == 0,
                    f"the producer of {tag} stopped when its client went",
                )
        return (
            f"{STREAMS} streams held at their window (at most {most} items made of "
            f"{STREAM_WINDOW} + {ENDLESS_CAPACITY} allowed); connection kept while open; "
            "every producer stopped when the client went"
        )

    run_row("never reads its answers (streams)", api, server, attack)

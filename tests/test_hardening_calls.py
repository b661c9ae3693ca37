"""Hostile peers against calls: status codes, deadlines and numbers from the wire.

Client cases talk to a fake server: a listening socket in this process whose
connection threads speak raw TCP_LITE and answer however the test says. Server
cases talk to a real server in its own process over a raw socket.
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from e2e_harness import E2E, ServerProcess, raw_socket

from gopherpipe_runtime import (
    CallOptions,
    DeadlineExceededError,
    InternalError,
    Pipe,
    RpcError,
    Server,
    StatusCode,
    UnavailableError,
    UnknownError,
)
from gopherpipe_runtime import server as server_module
from gopherpipe_runtime.wire.codec import CODECS
from gopherpipe_runtime.wire.envelope import (
    MAX_TIMEOUT_MS,
    decode_call,
    decode_status,
    encode_status,
)
from gopherpipe_runtime.wire.frames import (
    PREFACE,
    Frame,
    FrameDecoder,
    FrameType,
    decode_goaway,
    encode_frame,
)
from gopherpipe_runtime.wire.handshake import client_hello, server_choose

# Every wait in these tests is bounded by this; a hang fails instead of blocking CI.
BOUND = 20.0

# -- a fake server ------------------------------------------------------------------------

Answer = Callable[["FakeConnection", Frame], None]


class FakeConnection:
    """One accepted connection of the fake server, from the server's side."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = FrameDecoder(1 << 20)
        self.codec = CODECS["msgpack"]

    def handshake(self) -> None:
        """Read the client's preface and HELLO; answer with the server's HELLO."""
        received = b""
        while len(received) < len(PREFACE):
            chunk = self.sock.recv(len(PREFACE) - len(received))
            if not chunk:
                raise ConnectionError("client left before its preface")
            received += chunk
        assert received == PREFACE
        (hello,) = self.read_frames()
        settings, reply = server_choose(hello.payload, ("msgpack", "json"), 1 << 20)
        self.codec = CODECS[settings.codec]
        self.sock.sendall(encode_frame(FrameType.HELLO, reply))

    def read_frames(self) -> list[Frame]:
        """The next frames; [] once the client has closed."""
        received: list[Frame] = []
        while not received:
            data = self.sock.recv(65536)
            if not data:
                return []
            received = self.decoder.feed(data)
        return received

    def status(self, stream_id: int, code: int, message: str, result: Any = None) -> None:
        body = encode_status(self.codec, code, message, result)
        self.sock.sendall(encode_frame(FrameType.STATUS, body, stream_id))

    def serve(self, answer: Answer) -> None:
        """Hand every CALL / CALL_STREAM to `answer` until the client hangs up."""
        while received := self.read_frames():
            for frame in received:
                if frame.type in (FrameType.CALL, FrameType.CALL_STREAM):
                    answer(self, frame)


class FakeServer:
    """Accepts connections and runs `on_connect` for each on its own thread."""

    def __init__(self, on_connect: Callable[[FakeConnection], None]) -> None:
        self._on_connect = on_connect
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.address = f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"
        self.accepted = 0
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(BOUND)
            self.accepted += 1
            self.connected.set()
            self._sockets.append(sock)
            thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            self._on_connect(FakeConnection(sock))

    def close(self) -> None:
        self._stopping.set()
        self._acceptor.join(BOUND)
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(BOUND)


@contextlib.contextmanager
def fake_server(on_connect: Callable[[FakeConnection], None]) -> Iterator[FakeServer]:
    server = FakeServer(on_connect)
    try:
        yield server
    finally:
        server.close()


def answering(answer: Answer) -> Callable[[FakeConnection], None]:
    """A connection that completes HELLO at once, then answers calls with `answer`."""

    def on_connect(conn: FakeConnection) -> None:
        conn.handshake()
        conn.serve(answer)

    return on_connect


def method_of(conn: FakeConnection, frame: Frame) -> str:
    return decode_call(conn.codec, frame.payload).method


# -- 1. status codes the runtime does not know --------------------------------------------


@pytest.mark.parametrize("code", [99, -1, 17, 255, 2**63, -(2**63)])
def test_rpc_error_with_unknown_code_is_unknown_error(code: int) -> None:
    error = RpcError(code, "x")
    assert type(error) is UnknownError and error.code is StatusCode.UNKNOWN
    assert error.message == f"unknown status code {code}: x"
    assert RpcError(code).message == f"unknown status code {code}"


def test_unknown_code_too_large_to_print_is_not_echoed() -> None:
    error = RpcError(10**4000, "x")
    assert type(error) is UnknownError and error.message == "unknown status code out of range: x"


@pytest.mark.parametrize("code", [99, -1, 2**64 - 1])
def test_decode_status_maps_unknown_codes(code: int) -> None:
    codec = CODECS["msgpack"]
    assert decode_status(codec, encode_status(codec, code, "why", None)) == (
        StatusCode.UNKNOWN,
        f"unknown status code {code}: why",
        None,
    )
    known = decode_status(codec, encode_status(codec, 5, "gone", None))
    assert known == (StatusCode.NOT_FOUND, "gone", None) and type(known[0]) is StatusCode


def test_decode_status_maps_a_huge_json_code() -> None:
    code, message, _ = decode_status(CODECS["json"], b'[%s,"m",null]' % (b"9" * 4000))
    assert code is StatusCode.UNKNOWN and message == "unknown status code out of range: m"


def test_unknown_status_code_from_server_keeps_the_connection_working() -> None:
    def answer(conn: FakeConnection, frame: Frame) -> None:
        method = method_of(conn, frame)
        if method == "weird":
            conn.status(frame.stream_id, 99, "from the future")
        elif method == "weird_stream":
            conn.status(frame.stream_id, 2**64 - 1, "")
        else:
            conn.status(frame.stream_id, 0, "", "fine")

    with fake_server(answering(answer)) as server, Pipe(server.address) as pipe:
        options = CallOptions(timeout=BOUND)
        with pytest.raises(UnknownError) as info:
            pipe.unary("Fake", "weird", [], options)
        assert info.value.message == "unknown status code 99: from the future"

        stream = pipe.stream("Fake", "weird_stream", [], CallOptions(timeout=2), decode_item=str)
        output = stream.take_output()
        with pytest.raises(UnknownError) as stream_info:
            output.recv(timeout=BOUND)
        assert stream_info.value.message == f"unknown status code {2**64 - 1}"
        assert stream.ended

        assert pipe.unary("Fake", "plain", [], options) == "fine"
        stream = pipe.stream("Fake", "plain_stream", [], options, decode_item=str)
        with pytest.raises(Exception) as end:
            stream.take_output().recv(timeout=BOUND)
        assert type(end.value).__name__ == "ChanClosed"  # ended OK, no items
        assert server.accepted == 1  # all of it on the first connection


# -- 2. every RpcError can be built, printed and pickled ----------------------------------

ERROR_CLASSES = [RpcError, *RpcError._by_code.values()]


def _check_round_trip(error: RpcError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RpcError._by_code.get(error.code, RpcError)
    assert (copy.code, copy.message) == (error.code, error.message)
    assert str(copy) == str(error) and repr(copy) == repr(error).replace(
        type(error).__name__, type(copy).__name__, 1
    )


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_class_builds_without_and_with_a_message(cls: type[RpcError]) -> None:
    bare = cls()
    assert bare.code is cls.default_code and bare.message == ""
    assert str(bare) == cls.default_code.name
    assert repr(bare) == f"{cls.__name__}({cls.default_code.name}, '')"
    with_message = cls("it broke")
    assert with_message.code is cls.default_code and with_message.message == "it broke"
    assert str(with_message) == f"{cls.default_code.name}: it broke"
    assert repr(with_message) == f"{cls.__name__}({cls.default_code.name}, 'it broke')"
    assert cls(message="kw").message == "kw"
    for error in (bare, with_message):
        _check_round_trip(error)


@pytest.mark.parametrize("code", list(StatusCode), ids=lambda code: code.name)
def test_rpc_error_from_every_code(code: StatusCode) -> None:
    for error in (RpcError(code), RpcError(int(code), "msg"), RpcError(code, "")):
        assert isinstance(error, RpcError) and error.code is code
        assert type(error) is RpcError._by_code.get(code, RpcError)
        assert str(error) == (f"{code.name}: msg" if error.message else code.name)
        _check_round_trip(error)


def test_server_deadline_exceeded_without_message_is_not_taken_for_a_local_expiry() -> None:
    with (
        fake_server(answering(lambda conn, frame: conn.status(frame.stream_id, 4, ""))) as (server),
        Pipe(server.address) as pipe,
    ):
        for timeout in (None, BOUND):
            with pytest.raises(DeadlineExceededError) as info:
                pipe.unary("Fake", "slow_downstream", [], CallOptions(timeout=timeout))
            # What the server said, not a local "did not answer within" claim.
            assert info.value.message == "" and str(info.value) == "DEADLINE_EXCEEDED"


def test_local_deadline_expiry_names_the_call_and_timeout() -> None:
    with fake_server(answering(lambda conn, frame: None)) as server, Pipe(server.address) as pipe:
        with pytest.raises(DeadlineExceededError) as info:
            pipe.unary("Fake", "never", [], CallOptions(timeout=0.2))
        assert info.value.message == "Fake.never did not answer within 0.2s"


# -- 3. numbers from the wire are range-checked before use --------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The e2e AllTypes server, in its own process (stubs generated for this run)."""
    folder = tmp_path_factory.mktemp("hardening_stubs")
    shutil.copy(E2E / "contract" / "e2e_alltypes.py", folder / "e2e_alltypes.py")
    gopherpipe = Path(sys.executable).parent / "gopherpipe"
    subprocess.run(
        [str(gopherpipe), "gen", str(folder / "e2e_alltypes.py")], check=True, timeout=120
    )
    process = ServerProcess(folder)
    yield process
    process.stop()


def _handshake_as(address: str, codec: str) -> tuple[socket.socket, FrameDecoder]:
    sock = raw_socket(address)
    sock.settimeout(BOUND)
    sock.sendall(PREFACE + encode_frame(FrameType.HELLO, client_hello((codec,), 1 << 20)))
    decoder = FrameDecoder(1 << 20)
    received: list[Frame] = []
    while not received:
        received = decoder.feed(sock.recv(65536))
    assert received[0].type == FrameType.HELLO
    return sock, decoder


def _status_of(sock: socket.socket, decoder: FrameDecoder, codec: str) -> tuple[int, Any, Any]:
    received: list[Frame] = []
    while not received:
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        received = decoder.feed(data)
    (frame,) = received
    assert frame.type == FrameType.STATUS
    code, message, result = CODECS[codec].decode(frame.payload)
    return frame.stream_id, (code, message), result


HUGE_TIMEOUTS = [
    ("json", b'["AllTypes","add",1%s,{},[1,2]]' % (b"0" * 4000)),  # 10**4000
    ("json", b'["AllTypes","add",-1,{},[1,2]]'),
    ("json", b'["AllTypes","add",%d,{},[1,2]]' % (MAX_TIMEOUT_MS + 1)),
    ("json", b'["AllTypes","add",1e400,{},[1,2]]'),  # a float, and an infinite one
    ("msgpack", msgpack.packb(["AllTypes", "add", 2**64 - 1, {}, [1, 2]])),
    ("msgpack", msgpack.packb(["AllTypes", "add", -(2**63), {}, [1, 2]])),
]


@pytest.mark.parametrize(("codec", "body"), HUGE_TIMEOUTS, ids=lambda v: str(v)[:24])
def test_absurd_timeout_ms_is_a_malformed_call_and_the_connection_serves_on(
    server: ServerProcess, codec: str, body: bytes
) -> None:
    sock, decoder = _handshake_as(server.address, codec)
    with sock:
        sock.sendall(encode_frame(FrameType.CALL, body, 1))
        stream_id, (code, message), result = _status_of(sock, decoder, codec)
        assert stream_id == 1 and code == StatusCode.INVALID_ARGUMENT and result is None
        assert (
            message == f"malformed CALL: CALL timeout_ms must be nil or an integer in "
            f"0..{MAX_TIMEOUT_MS}"
        )
        valid = CODECS[codec].encode(["AllTypes", "add", MAX_TIMEOUT_MS, {}, [2, 3]])
        sock.sendall(encode_frame(FrameType.CALL, valid, 3))
        assert _status_of(sock, decoder, codec) == (3, (0, ""), 5)


def test_timeout_longer_than_the_protocol_allows_is_sent_as_the_maximum() -> None:
    seen: list[int | None] = []

    def answer(conn: FakeConnection, frame: Frame) -> None:
        seen.append(decode_call(conn.codec, frame.payload).timeout_ms)
        conn.status(frame.stream_id, 0, "", None)

    with fake_server(answering(answer)) as server, Pipe(server.address) as pipe:
        # 60 days: over the wire's maximum, and over what poll() takes in one go.
        pipe.unary("Fake", "far", [], CallOptions(timeout=60 * 86400.0))
        # The maximum, less the moments spent connecting.
        assert len(seen) == 1 and seen[0] is not None
        assert MAX_TIMEOUT_MS - BOUND * 1000 < seen[0] <= MAX_TIMEOUT_MS


@pytest.mark.parametrize("code", [-(2**63), 2**64 - 1])
def test_any_status_code_from_a_handler_reaches_the_client_as_a_known_code(code: int) -> None:
    # What a server encodes from a handler's RpcError is always a code in §9.
    error = RpcError(code, "x")
    codec = CODECS["msgpack"]
    assert decode_status(codec, encode_status(codec, error.code, error.message, None))[0] == 2


def test_a_server_bug_while_serving_a_call_still_answers_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The original failure: an exception nobody foresaw (there, OverflowError from
    # the timeout) escaped the handler thread and no STATUS was ever sent.
    def broken(codec: Any, payload: bytes) -> Any:
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(server_module, "decode_call", broken)
    with Server("tcp://127.0.0.1:0") as running, Pipe(running.addresses[0]) as pipe:
        with pytest.raises(InternalError) as info:
            pipe.unary("Any", "thing", [], CallOptions(timeout=BOUND))
        assert "OverflowError" in info.value.message


# -- 4. a call's deadline bounds connecting too -------------------------------------------


def silent(conn: FakeConnection) -> None:
    """Accept, then never say a word (reads until the client hangs up)."""
    while conn.sock.recv(65536):
        pass


def _timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        call()
    except BaseException as exc:  # returned for the test to check
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


def test_server_that_never_sends_hello_cannot_hold_a_call_past_its_deadline() -> None:
    with fake_server(silent) as server, Pipe(server.address, connect_timeout=30) as pipe:
        for _ in range(2):  # the second: a deadline-cut connect set no backoff
            error, took = _timed(lambda: pipe.unary("Fake", "m", [], CallOptions(timeout=0.5)))
            assert isinstance(error, DeadlineExceededError), error
            assert "passed while connecting to" in error.message
            assert 0.5 <= took < 10  # its own deadline, far from connect_timeout's 30 s
        error, took = _timed(
            lambda: pipe.stream("Fake", "s", [], CallOptions(timeout=0.5), decode_item=str)
        )
        assert isinstance(error, DeadlineExceededError), error
        assert 0.5 <= took < 10
        assert server.accepted == 3


def test_connect_timeout_still_applies_and_still_backs_off() -> None:
    with (
        fake_server(silent) as server,
        Pipe(server.address, connect_timeout=0.3, backoff_base=30) as pipe,
    ):
        error, took = _timed(lambda: pipe.unary("Fake", "m", [], CallOptions(timeout=BOUND)))
        assert isinstance(error, UnavailableError) and "cannot reach" in error.message, error
        assert took < BOUND
        with pytest.raises(UnavailableError, match="next attempt in"):
            pipe.unary("Fake", "m", [], CallOptions(timeout=BOUND))
        assert server.accepted == 1


def test_slow_hello_fails_a_short_call_but_not_a_later_patient_one() -> None:
    hello_after = threading.Event()  # never set: a timed wait, the server being slow

    def slow(conn: FakeConnection) -> None:
        received = b""
        while len(received) < len(PREFACE):
            received += conn.sock.recv(len(PREFACE) - len(received))
        (hello,) = conn.read_frames()
        hello_after.wait(3.0)
        _, reply = server_choose(hello.payload, ("msgpack",), 1 << 20)
        conn.sock.sendall(encode_frame(FrameType.HELLO, reply))
        conn.serve(lambda conn, frame: conn.status(frame.stream_id, 0, "", "late but fine"))

    with fake_server(slow) as server, Pipe(server.address, connect_timeout=30) as pipe:
        error, took = _timed(lambda: pipe.unary("Fake", "m", [], CallOptions(timeout=0.5)))
        assert isinstance(error, DeadlineExceededError), error
        assert took < 3.0  # did not wait for the HELLO
        assert pipe.unary("Fake", "m", [], CallOptions(timeout=BOUND)) == "late but fine"
        assert server.accepted == 2


def test_a_call_waiting_for_another_calls_connect_keeps_its_own_deadline() -> None:
    outcomes: dict[str, tuple[BaseException | None, float]] = {}

    def call(name: str, timeout: float) -> None:
        outcomes[name] = _timed(lambda: pipe.unary("Fake", name, [], CallOptions(timeout=timeout)))

    with fake_server(silent) as server, Pipe(server.address, connect_timeout=30) as pipe:
        patient = threading.Thread(target=call, args=("patient", 3.0))
        patient.start()
        assert server.connected.wait(BOUND)  # the patient call holds the connect
        hasty = threading.Thread(target=call, args=("hasty", 0.5))
        hasty.start()
        hasty.join(BOUND)
        patient.join(BOUND)
        assert not hasty.is_alive() and not patient.is_alive()

    error, took = outcomes["hasty"]
    assert isinstance(error, DeadlineExceededError), error
    assert "while another call was connecting" in error.message
    assert 0.5 <= took < 3.0  # did not wait for the other call's connect to end
    error, took = outcomes["patient"]
    assert isinstance(error, DeadlineExceededError), error
    assert 3.0 <= took < 30


def test_a_leader_leaving_at_its_deadline_hands_reading_to_a_waiting_call() -> None:
    # The first call leads (reads the socket) and expires; the second call's answer
    # is sent only once the first one's CANCEL arrives, so only a new leader reads it.
    hasty_arrived = threading.Event()

    def on_connect(conn: FakeConnection) -> None:
        conn.handshake()
        waiting: list[int] = []
        while received := conn.read_frames():
            for frame in received:
                if frame.type == FrameType.CANCEL:
                    for stream_id in waiting:
                        conn.status(stream_id, 0, "", "answered")
                elif frame.type == FrameType.CALL and method_of(conn, frame) == "hasty":
                    hasty_arrived.set()
                elif frame.type == FrameType.CALL:
                    waiting.append(frame.stream_id)

    outcomes: dict[str, tuple[BaseException | None, float]] = {}
    with fake_server(on_connect) as server, Pipe(server.address) as pipe:

        def hasty() -> None:
            outcomes["hasty"] = _timed(
                lambda: pipe.unary("Fake", "hasty", [], CallOptions(timeout=1.0))
            )

        def patient() -> None:
            outcomes["patient"] = _timed(
                lambda: pipe.unary("Fake", "patient", [], CallOptions(timeout=BOUND))
            )

        first = threading.Thread(target=hasty)
        first.start()
        assert hasty_arrived.wait(BOUND)  # sent, so it is reading for its answer now
        second = threading.Thread(target=patient)
        second.start()
        first.join(BOUND)
        second.join(BOUND)
        assert not first.is_alive() and not second.is_alive()

    assert isinstance(outcomes["hasty"][0], DeadlineExceededError)
    assert outcomes["patient"][0] is None  # not DeadlineExceededError at BOUND


# -- a server that breaks the protocol is told why ---------------------------------------


def test_a_client_answers_a_protocol_error_with_goaway_before_closing() -> None:
    """RFC §8: the side that detects a connection error sends GOAWAY (INTERNAL,
    'protocol error: ...') as its last frame, then closes."""
    seen: list[Frame] = []

    def on_connect(conn: FakeConnection) -> None:
        conn.handshake()
        conn.read_frames()  # the CALL
        # A frame longer than the client's max_frame_size: a connection error.
        conn.sock.sendall(struct.pack(">BI", int(FrameType.STATUS), (1 << 20) + 1))
        while received := conn.read_frames():
            seen.extend(received)

    with fake_server(on_connect) as server, Pipe(server.address, max_frame_size=1 << 20) as pipe:
        with pytest.raises(UnavailableError, match="protocol error"):
            pipe.unary("Svc", "method", [], CallOptions(timeout=BOUND))
        deadline = time.monotonic() + BOUND
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert seen and seen[-1].type == FrameType.GOAWAY
    _, code, message = decode_goaway(seen[-1].payload)
    assert code == StatusCode.INTERNAL
    assert message.startswith("protocol error:")

"""The two rows of the bad-input matrix (issue 9) that need the TLS and WebSocket
transports: a TLS client without a (trusted) certificate against a server that
requires mTLS, and a WebSocket client that sends text frames.

Written against the fixed API (`Server(*addresses, tls=SSLContext)`, `Pipe(address,
tls=...)`, `dial(address, tls=...)`, `server.addresses` as URLs) while the transports
were being built; without them the module fails (the server process cannot start),
it is never skipped. It runs as tests/test_bad_input_matrix.py does (see its
docstring): one server in its own process, listening on tcp://, tls:// (mTLS: clients
need a certificate of the test CA, tests/tls_certs.py) and ws://.../gp at once; a
bystander calls over the three transports in turn (with the CA's client certificate
over TLS) and must see no failure; afterwards the server serves fresh clients over
each transport, every connection of the row is closed at the server, threads are
back within max_workers + 4, and RSS grew by at most 8 MiB (at the peak and after).

What the attacker must get (issue 9, RFC §2):
- TLS without a certificate, or with one from another CA, offering TLS 1.3 or at most
  1.2: the handshake is refused (the server's alert, or the connection closed) within
  5 s, never a TCP_LITE HELLO; a generated client dialling that way gets UNAVAILABLE
  naming the TLS failure within 5 s, although its deadline is 30 s;
- a WebSocket text message (as the first message, after HELLO, or with a call open):
  the server closes the WebSocket with code 1003 (unsupported data); a client
  speaking TCP_LITE in binary messages on the same listener is still served.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgpack
import pytest
from e2e_harness import (
    Bystander,
    Measured,
    ServerProcess,
    assert_served_fresh,
    call_body,
    e2e_api,
    format_table,
    generate_stubs,
    hello_bytes,
    measure_row,
    stub_calls,
    warm_up,
)
from tls_certs import Pki, make_pki
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from gopherpipe_runtime import Pipe, UnavailableError
from gopherpipe_runtime.wire.frames import FrameDecoder, FrameType, encode_frame

MiB = 1024 * 1024
MAX_WORKERS = 8
SERVER_OPTIONS = {"max_workers": MAX_WORKERS, "handshake_timeout": 2.0}
ADDRESSES = "tcp://127.0.0.1:0,tls://127.0.0.1:0,ws://127.0.0.1:0/gp"
THREAD_BOUND = MAX_WORKERS + 4
RSS_BOUND_KIB = 8 * 1024
REFUSED_WITHIN = 5.0
"""Seconds a refused TLS client may take to learn it (it must not wait for a deadline)."""
UNSUPPORTED_DATA = 1003


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_stubs(
        tmp_path_factory.mktemp("matrix_transport_stubs"), "e2e_alltypes.py", "e2e_streams.py"
    )


@pytest.fixture(scope="module")
def api(stub_dir: Path) -> Iterator[dict[str, Any]]:
    with e2e_api(stub_dir) as found:
        yield found


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(stub_dir: Path, api: dict[str, Any], pki: Pki) -> Iterator[ServerProcess]:
    process = ServerProcess(
        stub_dir,
        address=ADDRESSES,
        options=json.dumps(SERVER_OPTIONS),
        harness=json.dumps({"tls": pki.server_harness(require_client_cert=True)}),
    )
    try:
        schemes = [urlsplit(address).scheme for address in process.addresses]
        assert schemes == ["tcp", "tls", "ws"], process.addresses
        assert urlsplit(process.addresses[2]).path == "/gp", process.addresses
        warm_up(api, process.address, MAX_WORKERS)
        yield process
    finally:
        process.stop()
        if RESULTS:
            print(format_table("bad-input matrix, transport rows", RESULTS))


def address_of(server: ServerProcess, scheme: str) -> str:
    return next(a for a in server.addresses if a.startswith(scheme + "://"))


@contextlib.contextmanager
def bystander(api: dict[str, Any], server: ServerProcess, pki: Pki) -> Iterator[Bystander]:
    """Calls over tcp://, tls:// (with the CA's client certificate) and ws:// in turn."""
    with (
        Pipe(address_of(server, "tcp")) as tcp,
        Pipe(address_of(server, "tls"), tls=pki.client_context()) as tls,
        Pipe(address_of(server, "ws")) as ws,
        Bystander(stub_calls(api, tcp, tls, ws)) as calling,
    ):
        yield calling


def healthy(api: dict[str, Any], server: ServerProcess, pki: Pki) -> None:
    assert_served_fresh(api, server, address_of(server, "tcp"))
    assert_served_fresh(api, server, address_of(server, "tls"), tls=pki.client_context())
    assert_served_fresh(api, server, address_of(server, "ws"))


RESULTS: list[Measured] = []


def run_row(
    row: str, api: dict[str, Any], server: ServerProcess, pki: Pki, attack: Callable[[], str]
) -> None:
    measured = measure_row(
        row,
        server,
        attack,
        lambda: bystander(api, server, pki),
        lambda: healthy(api, server, pki),
        THREAD_BOUND,
    )
    RESULTS.append(measured)
    print(f"\n{measured}")
    growth = measured.rss_after - measured.rss_before
    assert growth <= RSS_BOUND_KIB, f"{row}: server RSS grew by {growth} KiB"
    peak = measured.rss_peak - measured.rss_before
    assert peak <= RSS_BOUND_KIB, f"{row}: server RSS peaked {peak} KiB above where it was"


# -- 12. a TLS client without a certificate ----------------------------------------------------


def tls_attempt(address: str, context: ssl.SSLContext) -> str:
    """Connect over TLS with `context` and try TCP_LITE's preface and HELLO: how the
    server refused (it must), within REFUSED_WITHIN seconds."""
    host, port = urlsplit(address).hostname, urlsplit(address).port
    assert host is not None and port is not None
    began = time.monotonic()
    raw = socket.create_connection((host, port), timeout=REFUSED_WITHIN)
    try:
        # TLS 1.3 ends the client's side of the handshake before the server has checked
        # the client's certificate: the refusal then arrives as an alert on the first read.
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(hello_bytes())
            data = tls.recv(65536)
            assert not data, f"the server answered a client it must refuse: {data[:16]!r}"
            outcome = "closed"
    except ssl.SSLError as exc:
        outcome = f"SSLError {exc.reason or exc}"
    except (ConnectionResetError, BrokenPipeError) as exc:
        outcome = type(exc).__name__
    finally:
        raw.close()
    took = time.monotonic() - began
    assert took < REFUSED_WITHIN, f"refused only after {took:.1f}s ({outcome})"
    return outcome


def test_tls_client_without_a_certificate(
    api: dict[str, Any], server: ServerProcess, pki: Pki
) -> None:
    tls_address = address_of(server, "tls")

    def attack() -> str:
        seen: dict[str, set[str]] = {}
        identities: list[Literal["rogue"] | None] = [None, "rogue"]
        for identity in identities:
            for max_version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2) * 5:
                context = pki.client_context(identity)
                context.maximum_version = max_version
                outcome = tls_attempt(tls_address, context)
                seen.setdefault(identity or "no certificate", set()).add(outcome)
        for identity in identities:
            began = time.monotonic()
            with (
                pytest.raises(UnavailableError) as refused,
                api["AllTypesClient"].dial(tls_address, tls=pki.client_context(identity)) as client,
            ):
                client.with_options(timeout=30).add(1, 2)
            took = time.monotonic() - began
            assert took < REFUSED_WITHIN, f"the stub client learnt it only after {took:.1f}s"
            message = refused.value.message.lower()
            assert any(word in message for word in ("tls", "ssl", "certificate")), message
            seen.setdefault(identity or "no certificate", set()).add(
                f"stub: UNAVAILABLE ({took:.1f}s)"
            )
        return "; ".join(f"{who}: {', '.join(sorted(how))}" for who, how in seen.items())

    run_row("TLS client without a certificate", api, server, pki, attack)


# -- 13. a WebSocket client sending text frames ------------------------------------------------


def ws_frames(ws: ClientConnection, decoder: FrameDecoder, wanted: int) -> Any:
    """TCP_LITE frames from binary messages until one of type `wanted`."""
    while True:
        message = ws.recv(timeout=5)
        assert isinstance(message, bytes), f"the server sent a text message: {message!r}"
        for frame in decoder.feed(message):
            if frame.type == wanted:
                return frame


def ws_handshake(ws: ClientConnection) -> FrameDecoder:
    ws.send(hello_bytes())
    decoder = FrameDecoder(1 << 20)
    ws_frames(ws, decoder, FrameType.HELLO)
    return decoder


def closed_with(ws: ClientConnection) -> tuple[int, str]:
    """The close code and reason the server ended the WebSocket with (binary messages
    still in flight before it are skipped)."""
    try:
        while True:
            ws.recv(timeout=5)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the connection was dropped without a close frame"
        return closed.rcvd.code, closed.rcvd.reason


def test_websocket_client_sending_text_frames(
    api: dict[str, Any], server: ServerProcess, pki: Pki
) -> None:
    url = address_of(server, "ws")

    def before_nothing(ws: ClientConnection) -> None:
        pass

    def after_hello(ws: ClientConnection) -> None:
        ws_handshake(ws)

    def with_a_call_open(ws: ClientConnection) -> None:
        ws_handshake(ws)
        ws.send(encode_frame(FrameType.CALL, call_body("AllTypes", "sleep", [10.0]), 1))

    cases = {"first": before_nothing, "after HELLO": after_hello, "call open": with_a_call_open}

    def text_frame(name: str) -> tuple[str, int, str]:
        with connect(url, open_timeout=5, close_timeout=5) as ws:
            cases[name](ws)
            ws.send("hello, text")  # a str goes as a text frame
            return name, *closed_with(ws)

    def attack() -> str:
        # Concurrently: the server keeps a closed connection for a moment before it
        # drops it (so its last frame is not lost to a reset), which is the client's
        # wait for the TCP close.
        with ThreadPoolExecutor(3 * len(cases)) as pool:
            closes = list(pool.map(text_frame, list(cases) * 3))
        codes: dict[str, set[int]] = {}
        reasons = set()
        for name, code, reason in closes:
            assert code == UNSUPPORTED_DATA, (name, code, reason)
            codes.setdefault(name, set()).add(code)
            reasons.add(reason)
        # A TCP_LITE client in binary messages, on the same listener, is served.
        with connect(url, open_timeout=5, close_timeout=5) as ws:
            decoder = ws_handshake(ws)
            ws.send(encode_frame(FrameType.CALL, call_body("AllTypes", "add", [2, 3]), 1))
            status = ws_frames(ws, decoder, FrameType.STATUS)
            assert (status.stream_id, msgpack.unpackb(status.payload)) == (1, [0, "", 5])
        return (
            ", ".join(f"{name}: closed {sorted(got)}" for name, got in codes.items())
            + f" ({' / '.join(sorted(reasons))!r}, 3 each); binary TCP_LITE client served"
        )

    run_row("WebSocket text frames", api, server, pki, attack)

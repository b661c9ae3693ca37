"""Every transport end to end: tcp, unix, tls (mTLS), ws, wss.

- The echo and chat examples, unchanged, over each scheme (their server and
  clients in their own processes, run as `make demo` runs them: only the address
  and, for TLS, the environment differ).
- All four call shapes of the chat contract over each scheme, in one process.
- TLS: the client's verified identity in `current_call().peer`; clients without
  a valid certificate refused at once with UNAVAILABLE naming the TLS failure; a
  plain TCP_LITE client on a TLS port told so.
- WebSocket: a third-party client (the `websockets` package) speaking TCP_LITE in
  binary messages, frames split across messages; a text message closed with 1003
  while others are served; plain HTTP still gets its 400; a wrong path a 404.
"""

from __future__ import annotations

import importlib
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest

from gopherpipe_runtime import Chan, Server, StatusCode, UnavailableError, current_call
from gopherpipe_runtime.transport import tls as tls_transport
from gopherpipe_runtime.wire.frames import (
    PREFACE,
    FrameDecoder,
    FrameType,
    encode_frame,
    encode_stream_frame,
)
from gopherpipe_runtime.wire.handshake import client_hello

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CERTS = EXAMPLES / "certs"
SCHEMES = ("tcp", "unix", "tls", "ws", "wss")

sys.path.insert(0, str(EXAMPLES))
run_demo: Any = importlib.import_module("run_demo")


def cert(name: str) -> str:
    return str(CERTS / name)


def server_tls() -> ssl.SSLContext:
    return tls_transport.server_context(
        cert("server.pem"), cert("server.key"), client_ca=cert("ca.pem")
    )


def client_tls(role: str | None = "client") -> ssl.SSLContext:
    if role is None:
        return tls_transport.client_context(cert("ca.pem"))
    return tls_transport.client_context(
        cert("ca.pem"), certfile=cert(f"{role}.pem"), keyfile=cert(f"{role}.key")
    )


# -- the examples, unchanged, over every transport ------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_echo_example_over(scheme: str) -> None:
    out = run_demo.run_echo(scheme)
    assert "Hello Gophers!" in out
    assert "(3 times)" in out
    assert "server refused: INVALID_ARGUMENT" in out


@pytest.mark.parametrize("scheme", SCHEMES)
def test_chat_example_over(scheme: str) -> None:
    out = run_demo.run_chat(scheme)
    assert "ann joined General" in out
    assert "[ann hears] bob: Hello Gophers!" in out
    assert "[bob hears] ann: Hi bob, ann here" in out
    assert "the room's history has 3 messages" in out


# -- all four shapes in one process ------------------------------------------------------


@pytest.fixture(scope="module")
def chat() -> Iterator[tuple[ModuleType, list[str]]]:
    """One server on every scheme at once, with the chat example's implementation."""
    folder = str(EXAMPLES / "chat")
    sys.path.insert(0, folder)
    try:
        for name in ("service", "service_client", "service_server", "server"):
            sys.modules.pop(name, None)
        chat_server = importlib.import_module("server")
        client = importlib.import_module("service_client")
    finally:
        sys.path.remove(folder)
    with tempfile.TemporaryDirectory() as scratch:
        server = Server(
            "tcp://127.0.0.1:0",
            f"unix://{scratch}/chat.sock",
            "tls://127.0.0.1:0",
            "ws://127.0.0.1:0/chat",
            (
                "wss://[::1]:0/chat"
                if socket.has_ipv6 and _ipv6_loopback()
                else "wss://127.0.0.1:0/chat"
            ),
            tls=server_tls(),
        )
        chat_server.register_chat_service(server, chat_server.Chat())
        with server:
            yield client, server.addresses
        for name in ("service", "service_client", "service_server", "server"):
            sys.modules.pop(name, None)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_server_addresses_are_urls_of_every_scheme(chat: tuple[ModuleType, list[str]]) -> None:
    _, addresses = chat
    assert [a.partition("://")[0] for a in addresses] == list(SCHEMES)
    for address in addresses:
        if address.startswith("unix://"):
            continue
        port = int(address.rpartition(":")[2].partition("/")[0])
        assert port > 0, address
    assert addresses[3].endswith("/chat") and addresses[4].endswith("/chat")


@pytest.mark.parametrize("index", range(len(SCHEMES)), ids=SCHEMES)
def test_every_call_shape_over(chat: tuple[ModuleType, list[str]], index: int) -> None:
    stubs, addresses = chat
    room = f"room-{SCHEMES[index]}"
    with stubs.ChatServiceClient.dial(addresses[index], tls=client_tls()) as client:
        member = client.with_options(metadata={"user": "ann"}, timeout=10.0)
        # unary + server stream: tail the room, then say things through a bidi member
        tail = member.tail(room)
        incoming: Chan[str] = Chan(4)
        output = member.join_room(room, incoming)
        assert "welcome" in output.recv().text
        for text in ("one", "two"):
            incoming.send(text)
        heard = [output.recv().text for _ in range(2)]
        assert heard == ["one", "two"]
        assert [tail.recv().text for _ in range(2)] == ["one", "two"]
        incoming.close()
        assert [m.text for m in member.history(room)] == ["one", "two"]
        # client stream
        lines: Chan[str] = Chan(8)
        for line in ("a", "b", "c"):
            lines.send(line)
        lines.close()
        assert member.upload(lines) == 3


# -- TLS ---------------------------------------------------------------------------------

TLS_SERVER_ADDRESSES: list[str] = []
"""The `tls_server` fixture's addresses: tls://, wss://, tcp://."""


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[str, list[Any]]]:
    """An echo server that requires client certificates and records each caller's peer."""
    peers: list[Any] = []
    echo = _echo_stubs()

    class Echo(echo.service.EchoService):  # type: ignore[name-defined,misc]
        def echo(self, text: str) -> str:
            peers.append(current_call().peer)
            return text

        def repeat(self, text: str, times: int = 2) -> Any:
            raise NotImplementedError("unused here")

    server = Server(
        "tls://127.0.0.1:0", "wss://127.0.0.1:0/gp", "tcp://127.0.0.1:0", tls=server_tls()
    )
    echo.service_server.register_echo_service(server, Echo())
    with server:
        TLS_SERVER_ADDRESSES[:] = server.addresses
        yield server.addresses[0], peers


class _Stubs:
    service: ModuleType
    service_client: ModuleType
    service_server: ModuleType


def _echo_stubs() -> _Stubs:
    folder = str(EXAMPLES / "echo")
    stubs = _Stubs()
    sys.path.insert(0, folder)
    try:
        for name in ("service", "service_client", "service_server"):
            sys.modules.pop(name, None)
            setattr(stubs, name, importlib.import_module(name))
    finally:
        sys.path.remove(folder)
        for name in ("service", "service_client", "service_server"):
            sys.modules.pop(name, None)
    return stubs


def test_the_handler_sees_the_client_certificate(tls_server: tuple[str, list[Any]]) -> None:
    address, peers = tls_server
    echo = _echo_stubs()
    with echo.service_client.EchoServiceClient.dial(address, tls=client_tls()) as client:
        assert client.echo("hi") == "hi"
    peer = peers[-1]
    assert isinstance(peer, str) and peer.startswith("127.0.0.1:")
    assert peer.transport == "tls"
    assert peer.identity.subject == "O=GopherPipe Tests,CN=billing-service"
    assert peer.identity.sans == ("DNS:billing.internal", "URI:spiffe://example.org/billing")


@pytest.mark.parametrize(
    ("role", "failure"),
    [(None, "certificate required"), ("rogue-client", "unknown ca")],
    ids=["no-certificate", "certificate-from-another-ca"],
)
def test_a_client_without_a_valid_certificate_gets_unavailable_at_once(
    tls_server: tuple[str, list[Any]], role: str | None, failure: str
) -> None:
    address, _ = tls_server
    echo = _echo_stubs()
    with echo.service_client.EchoServiceClient.dial(address, tls=client_tls(role)) as client:
        started = time.monotonic()
        with pytest.raises(UnavailableError) as caught:
            client.with_options(timeout=30).echo("hi")
        took = time.monotonic() - started
    assert failure in str(caught.value)
    assert "TLS" in str(caught.value)
    assert took < 5.0  # at once, not at the 30 s deadline or the handshake timeout


def test_a_client_that_does_not_trust_the_server_says_why(
    tls_server: tuple[str, list[Any]],
) -> None:
    address, _ = tls_server
    echo = _echo_stubs()
    system_cas = ssl.create_default_context()
    with (
        echo.service_client.EchoServiceClient.dial(address, tls=system_cas) as client,
        pytest.raises(UnavailableError, match="certificate verify failed"),
    ):
        client.echo("hi")


def test_plain_tcp_lite_on_a_tls_port_is_told_to_use_tls(
    tls_server: tuple[str, list[Any]],
) -> None:
    address, _ = tls_server
    echo = _echo_stubs()
    plain = address.replace("tls://", "tcp://")
    with (
        echo.service_client.EchoServiceClient.dial(plain) as client,
        pytest.raises(UnavailableError, match="this port speaks TLS"),
    ):
        client.echo("hi")


def test_tls_addresses_need_a_server_context() -> None:
    with pytest.raises(ValueError, match=r"tls=ssl\.SSLContext"):
        Server("tls://127.0.0.1:0")
    with pytest.raises(ValueError, match=r"tls=ssl\.SSLContext"):
        Server("tcp://127.0.0.1:0", "wss://127.0.0.1:0/x")
    with pytest.raises(TypeError, match="SSLContext"):
        Server("tls://127.0.0.1:0", tls="cert.pem")  # type: ignore[arg-type]


def test_context_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOPHERPIPE_TLS_CERT", "GOPHERPIPE_TLS_KEY", "GOPHERPIPE_TLS_CA"):
        monkeypatch.delenv(name, raising=False)
    assert tls_transport.context_from_env(server_side=True) is None
    assert tls_transport.context_from_env(server_side=False) is None
    monkeypatch.setenv("GOPHERPIPE_TLS_CA", cert("ca.pem"))
    with pytest.raises(ValueError, match="GOPHERPIPE_TLS_CERT"):
        tls_transport.context_from_env(server_side=True)
    client = tls_transport.context_from_env(server_side=False)
    assert client is not None and client.verify_mode == ssl.CERT_REQUIRED
    monkeypatch.setenv("GOPHERPIPE_TLS_CERT", cert("server.pem"))
    monkeypatch.setenv("GOPHERPIPE_TLS_KEY", cert("server.key"))
    server = tls_transport.context_from_env(server_side=True)
    assert server is not None and server.verify_mode == ssl.CERT_REQUIRED  # mTLS


# -- WebSocket ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws_server() -> Iterator[list[str]]:
    echo = _echo_stubs()

    class Echo(echo.service.EchoService):  # type: ignore[name-defined,misc]
        def echo(self, text: str) -> str:
            return f"{text} via {current_call().peer.transport}"

        def repeat(self, text: str, times: int = 2) -> Any:
            raise NotImplementedError("unused here")

    server = Server("ws://127.0.0.1:0/gp", "tcp://127.0.0.1:0")
    echo.service_server.register_echo_service(server, Echo())
    with server:
        yield server.addresses


def _call_frames(text: str, stream_id: int = 1) -> bytes:
    body = msgpack.packb(["EchoService", "echo", 5000, {}, [text]])
    return encode_stream_frame(FrameType.CALL, stream_id, body)


def _third_party_round_trip(url: str, split: bool) -> tuple[int, Any]:
    from websockets.sync.client import connect

    with connect(url, open_timeout=5) as ws:
        hello = PREFACE + encode_frame(FrameType.HELLO, client_hello(("msgpack",), 1 << 20))
        ws.send(hello)
        decoder = FrameDecoder(1 << 20)
        frames = []
        while not frames:
            frames = decoder.feed(ws.recv(timeout=5))  # type: ignore[arg-type]
        assert frames[0].type == FrameType.HELLO
        call = _call_frames("hello")
        if split:  # one frame across three messages, boundaries mid-header
            for piece in (call[:3], call[3:11], call[11:]):
                ws.send(piece)
        else:
            ws.send(call)
        received: list[Any] = list(frames[1:])
        while not any(f.type == FrameType.STATUS for f in received):
            received += decoder.feed(ws.recv(timeout=5))  # type: ignore[arg-type]
        status = next(f for f in received if f.type == FrameType.STATUS)
        code, _message, result = msgpack.unpackb(status.payload)
        return code, result


@pytest.mark.parametrize("split", [False, True], ids=["frame-per-message", "split-frames"])
def test_a_third_party_websocket_client_speaks_tcp_lite(ws_server: list[str], split: bool) -> None:
    code, result = _third_party_round_trip(ws_server[0], split)
    assert code == StatusCode.OK
    assert result == "hello via ws"


def test_a_tcp_port_upgrades_and_a_ws_port_serves_native_clients(ws_server: list[str]) -> None:
    ws_address, tcp_address = ws_server
    code, result = _third_party_round_trip(tcp_address.replace("tcp://", "ws://") + "/", False)
    assert (code, result) == (StatusCode.OK, "hello via ws")
    echo = _echo_stubs()
    native = ws_address.replace("ws://", "tcp://").removesuffix("/gp")
    with echo.service_client.EchoServiceClient.dial(native) as client:
        assert client.echo("hi") == "hi via tcp"


def test_a_text_message_is_closed_with_1003_and_others_are_served(ws_server: list[str]) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    echo = _echo_stubs()
    with echo.service_client.EchoServiceClient.dial(ws_server[0]) as bystander:
        assert bystander.echo("before") == "before via ws"
        with connect(ws_server[0], open_timeout=5) as ws:
            ws.send("not binary")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
        assert bystander.echo("after") == "after via ws"


def test_plain_http_gets_400_and_a_wrong_path_404(ws_server: list[str]) -> None:
    host, _, rest = ws_server[0].removeprefix("ws://").partition(":")
    port = int(rest.partition("/")[0])
    for request, expected in (
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 400"),
        (
            b"GET /elsewhere HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            b"HTTP/1.1 404",
        ),
    ):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(request)
            answer = b""
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(expected), answer[:80]


def test_ws_client_of_a_wss_only_peer_fails_cleanly(tls_server: tuple[str, list[Any]]) -> None:
    """ws:// (no TLS) to a TLS port: a clear UNAVAILABLE, never a hang."""
    address, _ = tls_server
    echo = _echo_stubs()
    url = address.replace("tls://", "ws://") + "/gp"
    with echo.service_client.EchoServiceClient.dial(url) as client:
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            client.with_options(timeout=20).echo("hi")
        assert time.monotonic() - started < 5.0


def test_many_threads_over_wss_share_one_connection(tls_server: tuple[str, list[Any]]) -> None:
    """Concurrent writers through the TLS and WebSocket layers keep the byte stream intact."""
    echo = _echo_stubs()
    errors: list[BaseException] = []
    wss = TLS_SERVER_ADDRESSES[1]
    with echo.service_client.EchoServiceClient.dial(wss, tls=client_tls()) as client:

        def worker(n: int) -> None:
            try:
                for i in range(40):
                    text = f"{n}-{i}-" + "x" * (i * 997)
                    assert client.echo(text) == text
            except BaseException as exc:  # collected and re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors, errors[:3]


def test_a_server_at_its_connection_limit_says_so_over_every_transport() -> None:
    """The refusal is a GOAWAY in the clear, sent before any TLS or upgrade: the client
    reads it where it expected a handshake and reports its reason."""
    echo = _echo_stubs()

    class Echo(echo.service.EchoService):  # type: ignore[name-defined,misc]
        def echo(self, text: str) -> str:
            return text

        def repeat(self, text: str, times: int = 2) -> Any:
            raise NotImplementedError("unused here")

    server = Server(
        "tls://127.0.0.1:0",
        "wss://127.0.0.1:0/gp",
        "ws://127.0.0.1:0/gp",
        tls=server_tls(),
        max_connections=1,
    )
    echo.service_server.register_echo_service(server, Echo())
    with (
        server,
        echo.service_client.EchoServiceClient.dial(server.addresses[0], tls=client_tls()) as first,
    ):
        assert first.echo("in") == "in"
        for address in server.addresses:
            late = echo.service_client.EchoServiceClient.dial(address, tls=client_tls())
            with late, pytest.raises(UnavailableError, match="at its limit of 1 connections"):
                late.echo("refused")

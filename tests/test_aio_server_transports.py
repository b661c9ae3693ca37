"""gopherpipe_runtime.aio.Server over every transport, with the threaded client: tcp,
unix, memory, tls (mTLS, the client's certificate seen by the handler), ws, wss; the
WebSocket upgrade on a tcp:// port, TCP_LITE on a ws:// port, plain TCP_LITE on a TLS
port refused in words the client reads, and an HTTP probe's 400 on every kind."""

from __future__ import annotations

import socket
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from aio_lab import LabClient
from test_aio_server import LoopThread, Served

from gopherpipe_runtime import RpcError, StatusCode
from gopherpipe_runtime.transport import tls as tls_transport

CERTS = Path(__file__).resolve().parent.parent / "examples" / "certs"
SCHEMES = ("tcp", "unix", "memory", "tls", "ws", "wss")


def cert(name: str) -> str:
    return str(CERTS / name)


def server_tls() -> ssl.SSLContext:
    return tls_transport.server_context(
        cert("server.pem"), cert("server.key"), client_ca=cert("ca.pem")
    )


def client_tls() -> ssl.SSLContext:
    return tls_transport.client_context(
        cert("ca.pem"), certfile=cert("client.pem"), keyfile=cert("client.key")
    )


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def everywhere(request: pytest.FixtureRequest) -> Iterator[Served]:
    """One asyncio server on every scheme at once, on asyncio's own loop and on uvloop."""
    runner = LoopThread(request.param)
    with tempfile.TemporaryDirectory() as scratch:
        served = Served(
            runner,
            "tcp://127.0.0.1:0",
            f"unix://{scratch}/lab.sock",
            f"memory://aio-lab-{request.param}",
            "tls://127.0.0.1:0",
            "ws://127.0.0.1:0/lab",
            "wss://127.0.0.1:0/lab",
            tls=server_tls(),
        )
        try:
            yield served
        finally:
            served.stop()
            runner.close()
        assert not Path(f"{scratch}/lab.sock").exists()  # stop removes the socket's path


def test_addresses_are_urls_of_every_scheme(everywhere: Served) -> None:
    addresses = everywhere.server.addresses
    assert [a.partition("://")[0] for a in addresses] == list(SCHEMES)
    assert addresses[4].endswith("/lab") and addresses[5].endswith("/lab")


@pytest.mark.parametrize("index", range(len(SCHEMES)), ids=SCHEMES)
def test_every_call_shape_over(everywhere: Served, index: int) -> None:
    address = everywhere.server.addresses[index]
    with LabClient.dial(address, tls=client_tls()) as client:
        assert client.echo("hi") == "hi"
        assert list(client.stream("count", 300)) == list(range(300))
        assert client.total(iter(range(300))) == sum(range(300))
        assert list(client.double(2, iter(range(300)))) == [2 * i for i in range(300)]
        transport = client.meta("x").split("|")[1]
    assert transport == SCHEMES[index]


@pytest.mark.parametrize("index", [3, 5], ids=["tls", "wss"])
def test_the_handler_sees_the_client_certificate(everywhere: Served, index: int) -> None:
    with LabClient.dial(everywhere.server.addresses[index], tls=client_tls()) as client:
        transport, subject = client.whoami().split("|")
    assert transport == SCHEMES[index]
    assert "CN=" in subject


def test_tcp_port_upgrades_websocket_and_ws_port_speaks_tcp_lite(everywhere: Served) -> None:
    tcp, ws = everywhere.server.addresses[0], everywhere.server.addresses[4]
    as_ws = "ws://" + tcp.removeprefix("tcp://") + "/"
    with LabClient.dial(as_ws) as client:
        assert client.meta("x").split("|")[1] == "ws"
    as_tcp = "tcp://" + ws.removeprefix("ws://").removesuffix("/lab")
    with LabClient.dial(as_tcp) as client:
        assert client.meta("x").split("|")[1] == "tcp"


def test_a_websocket_to_the_wrong_path_is_refused(everywhere: Served) -> None:
    wrong = everywhere.server.addresses[4].removesuffix("/lab") + "/elsewhere"
    with LabClient.dial(wrong, connect_timeout=3) as client, pytest.raises(RpcError) as caught:
        client.echo("x")
    assert caught.value.code == StatusCode.UNAVAILABLE


def test_plain_tcp_lite_on_a_tls_port_is_told_why(everywhere: Served) -> None:
    plain = "tcp://" + everywhere.server.addresses[3].removeprefix("tls://")
    with LabClient.dial(plain, connect_timeout=3) as client, pytest.raises(RpcError) as caught:
        client.echo("x")
    assert caught.value.code == StatusCode.UNAVAILABLE
    assert "this port speaks TLS" in caught.value.message


def _http_probe(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    return answer


@pytest.mark.parametrize("index", [0, 1, 3], ids=["tcp", "unix", "tls"])
def test_an_http_probe_gets_400(everywhere: Served, index: int) -> None:
    address = everywhere.server.addresses[index]
    if address.startswith("unix://"):
        raw = socket.socket(socket.AF_UNIX)
        raw.settimeout(5)
        raw.connect(address.removeprefix("unix://"))
    else:
        host, _, port = address.partition("://")[2].rpartition(":")
        raw = socket.create_connection((host, int(port)), timeout=5)
    with raw:
        if address.startswith("tls://"):
            context = client_tls()
            with context.wrap_socket(raw, server_hostname="localhost") as wrapped:
                answer = _http_probe(wrapped)
        else:
            answer = _http_probe(raw)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")


@pytest.mark.parametrize(
    ("role", "failure"),
    [(None, "certificate required"), ("rogue-client", "unknown ca")],
    ids=["no-certificate", "certificate-from-another-ca"],
)
def test_a_client_without_a_valid_certificate_gets_unavailable(
    everywhere: Served, role: str | None, failure: str
) -> None:
    if role is None:
        context = tls_transport.client_context(cert("ca.pem"))
    else:
        context = tls_transport.client_context(
            cert("ca.pem"), certfile=cert(f"{role}.pem"), keyfile=cert(f"{role}.key")
        )
    address = everywhere.server.addresses[3]
    with (
        LabClient.dial(address, tls=context, connect_timeout=3) as client,
        pytest.raises(RpcError) as caught,
    ):
        client.echo("x")
    assert caught.value.code == StatusCode.UNAVAILABLE
    assert failure in caught.value.message.lower()
    with LabClient.dial(everywhere.server.addresses[3], tls=client_tls()) as client:
        assert client.echo("the server goes on") == "the server goes on"

"""tests/tls_certs.py makes certificates the standard library's ssl accepts: the server's
for localhost and 127.0.0.1, the client's for mTLS, and refuses the others."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Literal

import pytest
from tls_certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def handshake(
    pki: Pki, identity: Literal["client", "rogue"] | None, server_name: str = "127.0.0.1"
) -> tuple[BaseException | None, BaseException | None, dict[str, object] | None]:
    """A TLS 1.3 handshake and one byte each way between the two contexts over
    loopback: (the server's error, the client's error, the client certificate the
    server saw)."""
    errors: list[BaseException | None] = [None, None]
    seen: list[dict[str, object] | None] = [None]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            conn.settimeout(5)
            try:
                with pki.server_context().wrap_socket(conn, server_side=True) as tls:
                    seen[0] = tls.getpeercert()  # type: ignore[assignment]
                    tls.sendall(tls.recv(1))
            except (ssl.SSLError, OSError) as exc:
                errors[0] = exc

        server = threading.Thread(target=serve)
        server.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                context = pki.client_context(identity)
                with context.wrap_socket(raw, server_hostname=server_name) as tls:
                    tls.sendall(b"x")
                    assert tls.recv(1) == b"x"
        except (ssl.SSLError, OSError, AssertionError) as exc:
            errors[1] = exc
        server.join(10)
    return errors[0], errors[1], seen[0]


def test_the_client_certificate_is_accepted_and_identified(pki: Pki) -> None:
    server_error, client_error, peer = handshake(pki, "client")
    assert (server_error, client_error) == (None, None)
    assert peer is not None
    assert ("DNS", "client.test") in peer["subjectAltName"]  # type: ignore[operator]
    assert ("URI", "spiffe://gopherpipe.test/client") in peer["subjectAltName"]  # type: ignore[operator]


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_the_server_certificate_names_localhost_and_127_0_0_1(pki: Pki, name: str) -> None:
    assert handshake(pki, "client", name)[:2] == (None, None)


@pytest.mark.parametrize("identity", [None, "rogue"])
def test_mtls_refuses_a_client_without_a_trusted_certificate(
    pki: Pki, identity: Literal["rogue"] | None
) -> None:
    server_error, _, peer = handshake(pki, identity)
    assert isinstance(server_error, ssl.SSLError), server_error
    assert peer is None


def test_pem_files_are_where_the_paths_say(pki: Pki) -> None:
    for path in (pki.ca, pki.server_cert, pki.client_cert, pki.other_ca, pki.rogue_cert):
        assert Path(path).read_text().startswith("-----BEGIN CERTIFICATE-----")
    for path in (pki.server_key, pki.client_key, pki.rogue_key):
        assert "PRIVATE KEY-----" in Path(path).read_text()

"""tls:// (and the TLS under wss://): the stdlib's `ssl` over memory buffers.

`TlsLayer` drives an `ssl.SSLObject` between two `ssl.MemoryBIO`s, so TLS is
sans-IO like every other layer: the server's selector and the client's reading
leader poll the plain socket, and no record ever hides in an SSL buffer that
`poll` cannot see (each `receive` reads every complete record out).

What `receive` may leave pending: handshake records, TLS 1.3 session tickets,
and the alert that ends a failed handshake, so a refused client learns why
("certificate required", "unknown ca") instead of seeing a bare close.

The contexts are the caller's: `Server(tls=...)`, `Pipe(tls=...)`. The two
builders here make the usual ones from PEM files: TLS 1.2 at least, and on the
server, client certificates required when a CA for them is given (mTLS).
"""

from __future__ import annotations

import contextlib
import os
import ssl
from typing import Any

from . import PeerIdentity, TransportClosed, TransportError

_READ_SIZE = 64 * 1024
"""Plaintext asked of each read: under glibc's mmap threshold (see server.py)."""


def server_context(
    certfile: str, keyfile: str | None = None, *, client_ca: str | None = None
) -> ssl.SSLContext:
    """A server context from PEM files; with `client_ca`, clients must present a
    certificate signed by it (mTLS), and `current_call().peer.identity` names them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    ca: str | None = None, *, certfile: str | None = None, keyfile: str | None = None
) -> ssl.SSLContext:
    """A client context: the server must present a certificate for the address's
    host signed by `ca` (the system's CAs when None); `certfile` (and `keyfile`)
    is the client's own certificate, for servers that require one."""
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    return context


class TlsLayer:
    """TLS as a `Layer`; a client when `server_hostname` is given, else a server."""

    __slots__ = ("_incoming", "_outgoing", "_tls", "established")

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None = None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        client = server_hostname is not None
        self._tls = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=not client,
            server_hostname=server_hostname or None,
        )
        self.established = False
        if client:
            self._handshake()  # the ClientHello, now pending

    def __str__(self) -> str:
        return "TLS"

    @property
    def pending(self) -> bool:
        return self._outgoing.pending > 0

    def _handshake(self) -> None:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLError as exc:
            raise TransportError(f"TLS handshake failed: {_describe(exc)}") from None
        self.established = True

    def receive(self, data: bytes) -> bytes:
        self._incoming.write(data)
        if not self.established:
            self._handshake()
            if not self.established:
                return b""
        chunks: list[bytes] = []
        incoming, tls = self._incoming, self._tls
        # Stop when nothing is left to decrypt rather than at SSLWantReadError: the
        # usual read holds whole records, and an exception per read costs more than
        # the two checks.
        while incoming.pending or tls.pending():
            try:
                chunk = tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                raise TransportClosed("the peer closed TLS (close_notify)") from None
            except ssl.SSLError as exc:
                raise TransportError(f"TLS: {_describe(exc)}") from None
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, data: bytes) -> bytes:
        if data:
            # Never raises (writer.transform): after a fatal error the data is
            # dropped, and `receive` is what reports the failure.
            with contextlib.suppress(ssl.SSLError):
                self._tls.write(data)
        return self._outgoing.read()

    def close(self) -> None:
        if self.established:
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()  # queues close_notify; the peer's answer is not awaited

    def identity(self) -> PeerIdentity | None:
        cert: dict[str, Any] | None = self._tls.getpeercert() if self.established else None
        if not cert:
            return None
        # RFC 4514 writes the RDNs last first; getpeercert lists them in certificate order.
        subject = ",".join(
            f"{_SHORT.get(key, key)}={value}"
            for rdn in reversed(cert.get("subject", ()))
            for key, value in rdn
        )
        sans = tuple(f"{kind}:{value}" for kind, value in cert.get("subjectAltName", ()))
        return PeerIdentity(subject, sans)


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
}


def _describe(exc: ssl.SSLError) -> str:
    # `reason` is OpenSSL's short name ("TLSV13_ALERT_CERTIFICATE_REQUIRED"); the
    # message adds where it happened; verification failures carry their own words.
    verify = getattr(exc, "verify_message", None)
    if verify:
        return f"certificate verify failed: {verify}"
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason).lower().replace("_", " ")
    return str(exc)


CERT_ENV = "GOPHERPIPE_TLS_CERT"
KEY_ENV = "GOPHERPIPE_TLS_KEY"
CA_ENV = "GOPHERPIPE_TLS_CA"


def context_from_env(*, server_side: bool) -> ssl.SSLContext | None:
    """A context from PEM paths in the environment, None when none is set.

    GOPHERPIPE_TLS_CERT / GOPHERPIPE_TLS_KEY: our certificate (required on a
    server); GOPHERPIPE_TLS_CA: on a server, the CA whose client certificates it
    requires (mTLS); on a client, the CA the server's certificate must chain to
    (else the system's). So a program can move from tcp:// to tls:// by its
    address and its environment alone, as the examples do.
    """
    cert, key, ca = (os.environ.get(name) or None for name in (CERT_ENV, KEY_ENV, CA_ENV))
    if server_side:
        if cert is None:
            if ca is not None or key is not None:
                raise ValueError(f"{CERT_ENV} is required with {KEY_ENV} or {CA_ENV}")
            return None
        return server_context(cert, key, client_ca=ca)
    if cert is None and ca is None:
        return None
    return client_context(ca, certfile=cert, keyfile=key)

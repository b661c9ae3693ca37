"""Test certificates, made fresh for a test run: a CA, a server certificate for
localhost / 127.0.0.1 / ::1, a client certificate the CA signed, and a client
certificate signed by another, untrusted CA (for mTLS refusals).

`make_pki(folder)` writes them as PEM files and returns their paths; `Pki` builds
the `ssl.SSLContext`s both ends need. Keys are EC P-256 (quick to make); every
certificate is valid from a day ago for ten years. They are made with the
`cryptography` package when it is installed, else with the `openssl` command.

    pki = make_pki(tmp_path_factory.mktemp("pki"))
    server = Server("tls://127.0.0.1:0", tls=pki.server_context())
    client = XClient.dial(server.addresses[0], tls=pki.client_context())
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

CA_NAME = "GopherPipe Test CA"
OTHER_CA_NAME = "Untrusted Test CA"
SERVER_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1", "::1")
CLIENT_NAME = "test-client"
CLIENT_SANS = ("DNS:client.test", "URI:spiffe://gopherpipe.test/client")
ROGUE_NAME = "rogue-client"
_DAYS = 3650


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files `make_pki` wrote, and contexts made from them."""

    ca: Path
    """The CA that signed the server and the client certificate (ca.pem)."""
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA nobody trusts (other-ca.pem)."""
    rogue_cert: Path
    """A client certificate signed by `other_ca` (rogue-client.pem)."""
    rogue_key: Path

    def server_context(self, require_client_cert: bool = True) -> ssl.SSLContext:
        """The server's certificate; with `require_client_cert`, mTLS: a client must
        present a certificate `ca` signed."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.load_verify_locations(self.ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_context(
        self, identity: Literal["client", "rogue"] | None = "client"
    ) -> ssl.SSLContext:
        """Trusts `ca` (and checks the server's name); presents the client certificate,
        the rogue one, or none."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if identity == "client":
            context.load_cert_chain(self.client_cert, self.client_key)
        elif identity == "rogue":
            context.load_cert_chain(self.rogue_cert, self.rogue_key)
        return context

    def server_harness(self, require_client_cert: bool = True) -> dict[str, Any]:
        """The `tls` entry of tests/e2e/serve.py's harness JSON for this PKI."""
        entry: dict[str, Any] = {"cert": str(self.server_cert), "key": str(self.server_key)}
        if require_client_cert:
            entry["client_ca"] = str(self.ca)
        return entry


def make_pki(folder: Path) -> Pki:
    """Write a fresh CA, server and client certificates into `folder`."""
    pki = Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.pem",
        rogue_cert=folder / "rogue-client.pem",
        rogue_key=folder / "rogue-client.key",
    )
    try:
        import cryptography  # noqa: F401
    except ImportError:
        if shutil.which("openssl") is None:
            raise RuntimeError(
                "tests/tls_certs.py needs the cryptography package or the openssl command"
            ) from None
        _with_openssl(folder, pki)
    else:
        _with_cryptography(pki)
    return pki


# -- with the openssl command ------------------------------------------------------------------


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def _openssl_ca(folder: Path, name: str, stem: str) -> None:
    _openssl(
        folder,
        "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", f"{stem}.key", "-out", f"{stem}.pem", "-days", str(_DAYS),
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip


def _openssl_leaf(
    folder: Path, ca: str, stem: str, name: str, sans: list[str], usage: str, serial: int
) -> None:
    _openssl(
        folder,
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", f"/CN={name}/O=GopherPipe Tests",
    )  # fmt: skip
    extensions = folder / f"{stem}.ext"
    extensions.write_text(
        f"subjectAltName = {', '.join(sans)}\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        f"extendedKeyUsage = {usage}\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n"
    )
    _openssl(
        folder,
        "x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-set_serial", str(serial), "-days", str(_DAYS), "-sha256",
        "-extfile", extensions.name, "-out", f"{stem}.pem",
    )  # fmt: skip
    (folder / f"{stem}.csr").unlink()
    extensions.unlink()


def _with_openssl(folder: Path, pki: Pki) -> None:
    _openssl_ca(folder, CA_NAME, "ca")
    _openssl_ca(folder, OTHER_CA_NAME, "other-ca")
    server_sans = [f"DNS:{n}" for n in SERVER_NAMES] + [f"IP:{ip}" for ip in SERVER_IPS]
    _openssl_leaf(folder, "ca", "server", SERVER_NAMES[0], server_sans, "serverAuth", 2)
    _openssl_leaf(folder, "ca", "client", CLIENT_NAME, list(CLIENT_SANS), "clientAuth", 3)
    _openssl_leaf(
        folder, "other-ca", "rogue-client", ROGUE_NAME, ["DNS:rogue.test"], "clientAuth", 4
    )


# -- with the cryptography package -------------------------------------------------------------


def _with_cryptography(pki: Pki) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def write(path: Path, cert: x509.Certificate, key: Any = None) -> None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            key_path = path.with_suffix(".key")
            key_path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            key_path.chmod(0o600)

    def name(common: str, organization: bool) -> x509.Name:
        parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
        if organization:
            parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GopherPipe Tests"))
        return x509.Name(parts)

    def builder(subject: x509.Name, issuer: x509.Name, key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=_DAYS))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )

    def make_ca(common: str) -> tuple[x509.Certificate, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = name(common, False)
        usage = x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        cert = (
            builder(subject, subject, key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(usage, True)
            .sign(key, hashes.SHA256())
        )
        return cert, key

    def make_leaf(
        ca: tuple[x509.Certificate, Any],
        common: str,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
    ) -> tuple[x509.Certificate, Any]:
        ca_cert, ca_key = ca
        key = ec.generate_private_key(ec.SECP256R1())
        key_usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())
        cert = (
            builder(name(common, True), ca_cert.subject, key)
            .add_extension(x509.SubjectAlternativeName(sans), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(key_usage, True)
            .add_extension(x509.ExtendedKeyUsage([usage]), False)
            .add_extension(authority, False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert, key

    def san(text: str) -> x509.GeneralName:
        kind, _, value = text.partition(":")
        if kind == "DNS":
            return x509.DNSName(value)
        return x509.UniformResourceIdentifier(value)

    ca = make_ca(CA_NAME)
    other = make_ca(OTHER_CA_NAME)
    server_sans: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
    server_sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    server = make_leaf(ca, SERVER_NAMES[0], server_sans, ExtendedKeyUsageOID.SERVER_AUTH)
    client = make_leaf(
        ca, CLIENT_NAME, [san(s) for s in CLIENT_SANS], ExtendedKeyUsageOID.CLIENT_AUTH
    )
    rogue = make_leaf(
        other, ROGUE_NAME, [x509.DNSName("rogue.test")], ExtendedKeyUsageOID.CLIENT_AUTH
    )
    write(pki.ca, ca[0])
    write(pki.other_ca, other[0])
    write(pki.server_cert, *server)
    write(pki.client_cert, *client)
    write(pki.rogue_cert, *rogue)

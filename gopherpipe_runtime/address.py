"""Service addresses: parsing, listening and connecting.

Implemented here: ``tcp://host:port`` (IPv4, ``[v6]``, or a name) and
``unix:///absolute/path``. The other schemes in the design (ws, wss, tls,
gophermap, etcd) are recognised and rejected with a clear message until their
transports land, rather than being mistaken for a host name.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass

_PLANNED = ("ws", "wss", "tls", "gophermap", "etcd")


@dataclass(frozen=True, slots=True)
class Address:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def family(self) -> socket.AddressFamily:
        if self.scheme == "unix":
            return socket.AF_UNIX
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_address(text: str) -> Address:
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(f"address {text!r} needs a scheme, e.g. tcp://127.0.0.1:7000")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise ValueError(f"unix address {text!r} needs an absolute path: unix:///run/x.sock")
        return Address("unix", "", 0, rest)
    if scheme in _PLANNED:
        raise ValueError(
            f"address scheme {scheme}:// is not supported by this version of gopherpipe_runtime "
            "(use tcp:// or unix://)"
        )
    if scheme != "tcp":
        raise ValueError(f"unknown address scheme {scheme!r} in {text!r}")
    if rest.startswith("["):
        host, bracket, port_text = rest[1:].partition("]")
        if not bracket or not port_text.startswith(":"):
            raise ValueError(f"malformed IPv6 address {text!r}: write tcp://[::1]:7000")
        port_text = port_text[1:]
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon or not host:
            raise ValueError(f"address {text!r} needs host and port: tcp://127.0.0.1:7000")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"address {text!r} has an invalid port {port_text!r}")
    return Address("tcp", host, int(port_text), "")


def listen(address: Address, backlog: int = 512) -> tuple[socket.socket, Address]:
    """Bind and listen; returns the socket and the address actually bound."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        if address.scheme == "unix":
            _remove_stale_socket(address.path)
            sock.bind(address.path)
            bound = address
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address.host, address.port))
            host, port = sock.getsockname()[:2]
            bound = Address("tcp", host, port, "")
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock, bound


def _remove_stale_socket(path: str) -> None:
    # A socket file left by a dead server would make bind fail; anything that is
    # not a socket is somebody's file and must not be touched.
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def connect(address: Address, timeout: float | None) -> socket.socket:
    if address.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address.path)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((address.host, address.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def tune_accepted(sock: socket.socket) -> None:
    if sock.family != socket.AF_UNIX:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

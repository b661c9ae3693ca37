"""Service addresses: parsing and printing.

``tcp://host:port`` (IPv4, ``[v6]``, or a name), ``unix:///absolute/path``,
``tls://host:port``, ``ws://host:port/path`` and ``wss://host:port/path`` (the
path defaults to ``/``), and ``memory://name`` (a server in this process, for
tests: transport/memory.py). How each travels is transport/. The discovery schemes
(gophermap, etcd) and lists (``tcp://a:1,b:2``) name a service, not one server: a
Pipe hands them to resolver.py before anything here sees them, and anywhere else
(a Server's address, a CLI argument) they are refused with a clear message rather
than mistaken for a host name.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace

_DISCOVERY = ("gophermap", "etcd")
_HOSTED = ("tcp", "tls", "ws", "wss")


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

    @property
    def tls(self) -> bool:
        """TLS under everything else (tls://, wss://)."""
        return self.scheme in ("tls", "wss")

    @property
    def websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    def with_port(self, host: str, port: int) -> Address:
        return replace(self, host=host, port=port)

    def __str__(self) -> str:
        if self.scheme in ("unix", "memory"):
            return f"{self.scheme}://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.websocket else ""
        return f"{self.scheme}://{host}:{self.port}{path}"


def parse_address(text: str) -> Address:
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(f"address {text!r} needs a scheme, e.g. tcp://127.0.0.1:7000")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise ValueError(f"unix address {text!r} needs an absolute path: unix:///run/x.sock")
        return Address("unix", "", 0, rest)
    if scheme == "memory":
        if not rest or "/" in rest:
            raise ValueError(f"memory address {text!r} needs a name without '/': memory://chat")
        return Address("memory", "", 0, rest)
    if scheme in _DISCOVERY:
        raise ValueError(
            f"{text!r} names a service, not one server: a client dials it (Pipe, "
            "XClient.dial), a server binds tcp://, tls://, ws://, wss://, unix:// or memory://"
        )
    if scheme not in _HOSTED:
        raise ValueError(f"unknown address scheme {scheme!r} in {text!r}")
    path = ""
    if scheme in ("ws", "wss"):
        slash = rest.find("/")
        rest, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    elif "/" in rest:
        raise ValueError(f"address {text!r}: a {scheme}:// address has no path")
    if rest.startswith("["):
        host, bracket, port_text = rest[1:].partition("]")
        if not bracket or not port_text.startswith(":"):
            raise ValueError(f"malformed IPv6 address {text!r}: write {scheme}://[::1]:7000")
        port_text = port_text[1:]
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon or not host:
            raise ValueError(f"address {text!r} needs host and port: {scheme}://127.0.0.1:7000")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"address {text!r} has an invalid port {port_text!r}")
    return Address(scheme, host, int(port_text), path)

"""tcp:// (and the TCP under tls://, ws://, wss://): listening and connecting.

TCP_LITE's frames are small and latency-bound, so Nagle is off on both ends.
"""

from __future__ import annotations

import socket

from ..address import Address


def listen(address: Address, backlog: int) -> tuple[socket.socket, Address]:
    """Bind and listen; the address returned has the real port (port 0 asked)."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host, address.port))
        host, port = sock.getsockname()[:2]
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock, address.with_port(host, port)


def connect(address: Address, timeout: float | None) -> socket.socket:
    sock = socket.create_connection((address.host, address.port), timeout=timeout)
    tune(sock)
    return sock


def tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

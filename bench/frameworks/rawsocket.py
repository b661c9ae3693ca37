"""The floor: a blocking socket, a 4-byte length prefix, one thread per connection, no codec.

Nothing a real RPC framework does (multiplexing, headers, status, serialization beyond UTF-8)
happens here, so its latency is what the kernel, the loopback and the interpreter cost alone.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from bench import measure

LABEL = "raw socket"

_LEN = struct.Struct("!I")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return bytes(buf)


def _serve_conn(conn: socket.socket) -> None:
    with conn:
        try:
            while True:
                (length,) = _LEN.unpack(_recv_exact(conn, 4))
                body = _recv_exact(conn, length)
                conn.sendall(_LEN.pack(length) + body)
        except (ConnectionError, OSError):
            return


def serve() -> tuple[str, Callable[[float], None]]:
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def accept_loop() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_serve_conn, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    host, port = listener.getsockname()[:2]

    def stop(grace: float) -> None:
        stopping.set()
        listener.close()

    return f"tcp://{host}:{port}", stop


class _Client:
    def __init__(self, address: str) -> None:
        host, _, port = address.removeprefix("tcp://").rpartition(":")
        self._sock = socket.create_connection((host, int(port)), timeout=30)
        # Every framework here disables Nagle; the floor must too or it is not a floor.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def echo(self, text: str) -> str:
        body = text.encode()
        self._sock.sendall(_LEN.pack(len(body)) + body)
        (length,) = _LEN.unpack(_recv_exact(self._sock, 4))
        return _recv_exact(self._sock, length).decode()

    def close(self) -> None:
        self._sock.close()


def unary_latency(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    client = _Client(address)
    try:
        return measure.unary_latency(client.echo, payload, params["calls"], params["warmup"])
    finally:
        client.close()


# No unary_throughput: one blocking socket cannot carry 16 threads' calls without building
# the multiplexing the frameworks are being measured on.
SCENARIOS = {"unary_latency": unary_latency}

"""The floor: a blocking socket, a 4-byte length prefix, one thread per connection, no codec.

Nothing a real RPC framework does (multiplexing, headers, status, serialization beyond UTF-8)
happens here, so its latency is what the kernel, the loopback and the interpreter cost alone.

Its server stream is the floor of a typed stream in Python: the server msgpack-encodes each
`Tick` into a frame with a 5-byte header (as TCP_LITE's) and sends them in 64 KiB batches;
the client reads 256 KiB at a time, splits the frames, msgpack-decodes each and builds the
`Tick` by position. No flow control, no checks, no threads, no status: what is left is the
per-item work any framework must do.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import msgpack

from bench import measure

LABEL = "raw socket"

_LEN = struct.Struct("!I")
_FRAME = struct.Struct("!BI")  # type, payload length: TCP_LITE's header
_ITEM, _END = 0, 1
_STREAM = b"STREAM "
_BATCH = 64 * 1024


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
                if body.startswith(_STREAM):
                    _send_ticks(conn, int(body[len(_STREAM) :]))
                    continue
                conn.sendall(_LEN.pack(length) + body)
        except (ConnectionError, OSError):
            return


def _send_ticks(conn: socket.socket, count: int) -> None:
    pack, header = msgpack.packb, _FRAME.pack
    batch: list[bytes] = []
    size = 0
    for seq in range(count):
        payload = pack([seq, "tick", 1.5])
        batch.append(header(_ITEM, len(payload)))
        batch.append(payload)
        size += 5 + len(payload)
        if size >= _BATCH:
            conn.sendall(b"".join(batch))
            batch, size = [], 0
    batch.append(header(_END, 0))
    conn.sendall(b"".join(batch))


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

    def ticks(self, count: int) -> Iterator[Any]:
        from bench.streaming_service import Tick

        request = _STREAM + str(count).encode()
        self._sock.sendall(_LEN.pack(len(request)) + request)
        unpack, parse, recv = msgpack.unpackb, _FRAME.unpack_from, self._sock.recv
        buffer, start = b"", 0
        while True:
            data = recv(256 * 1024)
            if not data:
                raise ConnectionError("peer closed mid-stream")
            # Keep only the unread tail: each byte is copied about once (O(bytes read)).
            buffer, start = buffer[start:] + data, 0
            end = len(buffer)
            while end - start >= 5:
                kind, length = parse(buffer, start)
                if end - start - 5 < length:
                    break
                if kind == _END:
                    return
                yield Tick(*unpack(buffer[start + 5 : start + 5 + length]))
                start += 5 + length

    def close(self) -> None:
        self._sock.close()


def unary_latency(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    client = _Client(address)
    try:
        return measure.unary_latency(client.echo, payload, params["calls"], params["warmup"])
    finally:
        client.close()


def server_stream(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    client = _Client(address)
    try:
        return measure.server_stream(client.ticks, params["messages"])
    finally:
        client.close()


# No unary_throughput: one blocking socket cannot carry 16 threads' calls without building
# the multiplexing the frameworks are being measured on. No bidi: a lock-step round trip on
# a raw socket is the unary floor again.
SCENARIOS = {"unary_latency": unary_latency, "server_stream": server_stream}

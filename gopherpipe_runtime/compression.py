"""Per-message compression, negotiated in HELLO (RFC-TCP_LITE §5.1).

The client offers algorithms in its HELLO, the server picks one (or none); from
then on either side MAY compress any CALL, STATUS or MESSAGE payload. A
compressed payload is the byte 0xC1 followed by the algorithm's stream. 0xC1 is
the one byte msgpack never uses and cannot begin UTF-8 JSON, so no plain payload
starts with it, and the receiver needs no flag elsewhere: `CompressingCodec`
wraps the connection's codec and does both directions.

Senders compress a payload of at least `threshold` bytes (default 1 KiB), and
send it plain when compressing did not make it smaller. A receiver inflates at
most its own max frame size and refuses the payload beyond that, so a small
frame cannot expand into a huge value (a "zip bomb" costs one refused call).

Algorithms: zlib (standard library) always; zstd when the `zstandard` package is
installed (the `zstd` extra), preferred when both sides have it.

Clients offer compression by default only off the local host: over loopback and
Unix sockets the CPU it costs buys nothing (`Pipe(compression=...)`).
"""

from __future__ import annotations

import ipaddress
import threading
import zlib
from collections.abc import Callable
from typing import Any

from .address import Address
from .wire.codec import Codec, CodecError

MARK = b"\xc1"
DEFAULT_THRESHOLD = 1024
_CHUNK = 64 * 1024


class Algorithm:
    __slots__ = ("compress", "inflate", "name")

    def __init__(
        self,
        name: str,
        compress: Callable[[bytes], bytes],
        inflate: Callable[[bytes, int], bytes],
    ) -> None:
        self.name = name
        self.compress = compress
        self.inflate = inflate
        """inflate(data, limit): the original bytes; CodecError if corrupt or over `limit`."""


def _zlib_inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CodecError(f"corrupt zlib payload: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise CodecError(f"compressed payload inflates beyond {limit} bytes")
    if not inflater.eof:
        raise CodecError("truncated zlib payload")
    return out


def _zlib() -> Algorithm:
    return Algorithm("zlib", lambda data: zlib.compress(data, 6), _zlib_inflate)


def _zstd() -> Algorithm | None:
    try:
        import zstandard
    except ImportError:
        return None
    # zstandard's (de)compressor objects must not be shared between threads, and
    # making one per call costs more than small payloads take to compress.
    local = threading.local()

    def contexts() -> Any:
        try:
            return local.contexts
        except AttributeError:
            local.contexts = (zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor())
            return local.contexts

    def compress(data: bytes) -> bytes:
        packed: bytes = contexts()[0].compress(data)
        return packed

    def inflate(data: bytes, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            with contexts()[1].stream_reader(data) as reader:
                while size <= limit:
                    chunk = reader.read(min(_CHUNK, limit + 1 - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
        except zstandard.ZstdError as exc:
            raise CodecError(f"corrupt zstd payload: {exc}") from None
        if size > limit:
            raise CodecError(f"compressed payload inflates beyond {limit} bytes")
        return b"".join(chunks)

    return Algorithm("zstd", compress, inflate)


def _available() -> dict[str, Algorithm]:
    found = [_zstd(), _zlib()]
    return {algorithm.name: algorithm for algorithm in found if algorithm is not None}


ALGORITHMS: dict[str, Algorithm] = _available()
"""What this process can speak, in preference order (zstd first when installed)."""


def supported(names: tuple[str, ...], what: str) -> tuple[str, ...]:
    """`names` checked against what is installed; ValueError names the missing one."""
    unknown = [name for name in names if name not in ALGORITHMS]
    if unknown:
        raise ValueError(
            f"{what}: compression {unknown} not available here (have {list(ALGORITHMS)}; "
            "zstd needs the 'zstd' extra)"
        )
    return tuple(names)


def offer_for(address: Address, compression: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """What a client offers: "auto" is every algorithm off the local host, none on it."""
    if compression is None:
        return ()
    if compression != "auto":
        names = (compression,) if isinstance(compression, str) else tuple(compression)
        return supported(names, "Pipe")
    if address.scheme in ("unix", "memory") or _is_loopback(address.host):
        return ()
    return tuple(ALGORITHMS)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CompressingCodec:
    """A connection's codec with compression: plain payloads pass as they are."""

    __slots__ = ("_base", "_compress", "_inflate", "limit", "name", "peer_limit", "threshold")

    def __init__(
        self, base: Codec, algorithm: Algorithm, threshold: int, limit: int, peer_limit: int
    ) -> None:
        self._base = base
        self._compress = algorithm.compress
        self._inflate = algorithm.inflate
        self.name = base.name
        self.threshold = threshold
        self.limit = limit
        """Largest payload accepted once inflated: our max frame size."""
        self.peer_limit = peer_limit
        """The peer's max frame size: a payload over it is sent plain, so that it
        fails as it would without compression (the peer would refuse it inflated)."""

    def encode(self, value: Any) -> bytes:
        body = self._base.encode(value)
        if not self.threshold <= len(body) <= self.peer_limit - 4:
            return body
        packed = MARK + self._compress(body)
        return packed if len(packed) < len(body) else body

    def decode(self, data: bytes) -> Any:
        if data[:1] == MARK:
            data = self._inflate(data[1:], self.limit)
        return self._base.decode(data)


def wrap(codec: Codec, algorithm: str | None, threshold: int, limit: int, peer_limit: int) -> Codec:
    """The codec a connection uses once HELLO chose `algorithm` (None: `codec` itself)."""
    if algorithm is None:
        return codec
    return CompressingCodec(codec, ALGORITHMS[algorithm], threshold, limit, peer_limit)

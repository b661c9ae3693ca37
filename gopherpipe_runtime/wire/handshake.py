"""The HELLO exchange, sans-IO: what each side offers and how the server chooses.

HELLO bodies are always msgpack maps (whatever codec the calls will use), so the
handshake itself never needs negotiating. Unknown keys are ignored, which is how
later versions add settings without breaking older peers.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any

import msgpack

from .frames import MAX_FRAME_LENGTH, MAX_HELLO_SIZE, ProtocolError
from .windows import DEFAULT_WINDOWS, MAX_WINDOW_BYTES, MAX_WINDOW_ITEMS, Windows

PROTOCOL_VERSIONS = (2,)
"""Version 2 counts flow control in bytes as well as items (a 12-byte CREDIT);
version 1 (gopherpipe 0.1 before it) counted items only and is not spoken: a peer
offering only 1 gets a clear "no common protocol version" instead of a CREDIT it
cannot read."""
AGENT = "gopherpipe-python/0.1"


class HandshakeError(Exception):
    """No common protocol version or codec: the connection cannot be used."""


_brief = reprlib.Repr()
_brief.maxstring = _brief.maxother = 80
"""repr() for what a peer sent, in a message: bounded in depth and length (a plain repr()
of a list nested a thousand deep, which msgpack reads, raises RecursionError)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What one connection runs with once HELLO has been exchanged."""

    version: int
    codec: str
    peer_max_frame_size: int
    """The largest frame we may send."""
    peer_agent: str
    peer_windows: Windows
    """What the peer buffers for us: our initial credit when we stream to it."""
    compression: str | None = None
    """The algorithm both sides may compress payloads with (compression.py), if any."""


def _announce(windows: Windows) -> dict[str, int]:
    return {
        "stream_window": windows.items,
        "stream_window_bytes": windows.stream_bytes,
        "connection_window_bytes": windows.connection_bytes,
    }


def client_hello(
    codecs: tuple[str, ...],
    max_frame_size: int,
    windows: Windows = DEFAULT_WINDOWS,
    compression: tuple[str, ...] = (),
) -> bytes:
    hello: dict[str, Any] = {
        "versions": list(PROTOCOL_VERSIONS),
        "codecs": list(codecs),
        "max_frame_size": max_frame_size,
        **_announce(windows),
        "agent": AGENT,
    }
    if compression:
        hello["compression"] = list(compression)
    return msgpack.packb(hello)  # type: ignore[no-any-return]


def _read_map(payload: bytes) -> dict[str, Any]:
    try:
        hello = msgpack.unpackb(payload, raw=False)
    except Exception as exc:
        raise ProtocolError(f"malformed HELLO: {exc}") from None
    if not isinstance(hello, dict):
        raise ProtocolError("malformed HELLO: body is not a map")
    return hello


def _frame_size(hello: dict[str, Any]) -> int:
    size = hello.get("max_frame_size")
    if (
        not isinstance(size, int)
        or isinstance(size, bool)
        or not MAX_HELLO_SIZE <= size <= MAX_FRAME_LENGTH
    ):
        # The upper bound is the header's 32-bit length field: a larger promise
        # would have us build frames whose length cannot be written.
        raise ProtocolError(
            f"HELLO max_frame_size must be an integer in {MAX_HELLO_SIZE}..{MAX_FRAME_LENGTH}"
        )
    return size


def _agent(hello: dict[str, Any]) -> str:
    """The peer's `agent` if it is a str (RFC §5), else "": it only names the peer in logs."""
    agent = hello.get("agent", "")
    return agent if type(agent) is str else ""


def _windows(hello: dict[str, Any]) -> Windows:
    """The peer's windows; absent keys take the defaults (peers of 0.1 sent only items)."""
    defaults = DEFAULT_WINDOWS
    values = []
    for key, default, most in (
        ("stream_window", defaults.items, MAX_WINDOW_ITEMS),
        ("stream_window_bytes", defaults.stream_bytes, MAX_WINDOW_BYTES),
        ("connection_window_bytes", defaults.connection_bytes, MAX_WINDOW_BYTES),
    ):
        value = hello.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
            raise ProtocolError(f"HELLO {key} must be an integer in 1..{most}")
        values.append(value)
    return Windows(*values)


def server_choose(
    payload: bytes,
    codecs: tuple[str, ...],
    max_frame_size: int,
    windows: Windows = DEFAULT_WINDOWS,
    compression: tuple[str, ...] = (),
) -> tuple[Settings, bytes]:
    """Read a client HELLO; return the settings and the server HELLO to send back.

    The server picks the newest common version and, among common codecs and
    among common compression algorithms (`compression`: what the server
    accepts), the client's first preference. Raises HandshakeError when no
    version or codec is common; no common compression means none.
    """
    hello = _read_map(payload)
    versions = hello.get("versions")
    offered_codecs = hello.get("codecs")
    if not isinstance(versions, list) or not isinstance(offered_codecs, list):
        raise ProtocolError("malformed HELLO: 'versions' and 'codecs' must be lists")
    common_versions = [v for v in PROTOCOL_VERSIONS if v in versions]
    if not common_versions:
        raise HandshakeError(
            f"no common protocol version: client offers {_brief.repr(versions)}, server speaks "
            f"{list(PROTOCOL_VERSIONS)}"
        )
    chosen_codec = next((c for c in offered_codecs if c in codecs), None)
    if chosen_codec is None:
        raise HandshakeError(
            f"no common codec: client offers {_brief.repr(offered_codecs)}, server accepts "
            f"{list(codecs)}"
        )
    offered_compression = hello.get("compression", [])
    if not isinstance(offered_compression, list):
        raise ProtocolError("malformed HELLO: 'compression' must be a list")
    chosen_compression = next((c for c in offered_compression if c in compression), None)
    settings = Settings(
        version=max(common_versions),
        codec=chosen_codec,
        peer_max_frame_size=_frame_size(hello),
        peer_agent=_agent(hello),
        peer_windows=_windows(hello),
        compression=chosen_compression,
    )
    answer: dict[str, Any] = {
        "version": settings.version,
        "codec": chosen_codec,
        "max_frame_size": max_frame_size,
        **_announce(windows),
        "agent": AGENT,
    }
    if chosen_compression is not None:
        answer["compression"] = chosen_compression
    return settings, msgpack.packb(answer)


def client_accept(
    payload: bytes, codecs: tuple[str, ...], compression: tuple[str, ...] = ()
) -> Settings:
    """Read the server's HELLO and check it chose something we offered."""
    hello = _read_map(payload)
    version = hello.get("version")
    codec = hello.get("codec")
    # Exact types: 2.0 == 2 and would pass `in`, but a version is an int (RFC §5).
    if type(version) is not int or version not in PROTOCOL_VERSIONS or codec not in codecs:
        raise ProtocolError(
            f"server chose version {_brief.repr(version)} / codec {_brief.repr(codec)}, "
            "never offered"
        )
    chosen_compression = hello.get("compression")
    if chosen_compression is not None and chosen_compression not in compression:
        raise ProtocolError(
            f"server chose compression {_brief.repr(chosen_compression)}, never offered"
        )
    assert isinstance(codec, str)
    return Settings(
        version=version,
        codec=codec,
        peer_max_frame_size=_frame_size(hello),
        peer_agent=_agent(hello),
        peer_windows=_windows(hello),
        compression=chosen_compression,
    )

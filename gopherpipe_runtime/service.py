"""What a generated server stub hands to `Server.add_service`.

A service is a name and a table of methods; each method carries the three
generated functions the server needs, kept apart so the server can tell whose
fault a failure is: bad arguments from the caller (INVALID_ARGUMENT), an
exception in the handler (its RpcError code, else INTERNAL), or a handler that
returned a value of the wrong type (INTERNAL). A service may also carry its
reflection schema, a plain literal the stub holds (reflection.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class MethodKind(Enum):
    UNARY = "unary"
    CLIENT_STREAM = "client_stream"
    SERVER_STREAM = "server_stream"
    BIDI = "bidi"


@dataclass(frozen=True, slots=True)
class MethodDef:
    kind: MethodKind
    decode_args: Callable[[Any], tuple[Any, ...]]
    """Wire argument list -> positional arguments for `call`; raises InvalidArgumentError."""
    call: Callable[..., Any]
    """The user's implementation method, bound."""
    encode_result: Callable[[Any], Any]
    """The handler's return value -> wire form; raises InvalidArgumentError.
    Unused for server-streaming and bidi methods, whose result is the stream."""
    stream_param: int | None = None
    """Client and bidi streams: where the runtime inserts the inbound `Chan` among
    the positional arguments (the stream itself is not in the wire argument list)."""
    decode_item: Callable[[Any], Any] | None = None
    """Client and bidi streams: wire item -> Python value; raises InvalidArgumentError."""
    encode_item: Callable[[Any], Any] | None = None
    """Server and bidi streams: Python value -> wire item; raises InvalidArgumentError."""

    client_streams: bool = field(init=False, repr=False, compare=False)
    """The client sends a stream (client and bidi streams)."""
    server_streams: bool = field(init=False, repr=False, compare=False)
    """The server sends a stream (server and bidi streams)."""

    def __post_init__(self) -> None:
        # Stored, not properties: the server asks for each on every call.
        object.__setattr__(
            self, "client_streams", self.kind in (MethodKind.CLIENT_STREAM, MethodKind.BIDI)
        )
        object.__setattr__(
            self, "server_streams", self.kind in (MethodKind.SERVER_STREAM, MethodKind.BIDI)
        )


@dataclass(frozen=True, slots=True)
class ServiceDef:
    name: str
    methods: Mapping[str, MethodDef]
    schema: Mapping[str, Any] | None = None
    """What the built-in Reflection service tells of this service (reflection.py):
    written into the server stub by gopherpipe gen; None from stubs that predate it."""

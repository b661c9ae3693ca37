"""What a generated server stub hands to `Server.add_service`.

A service is a name and a table of methods; each method carries the three
generated functions the server needs, kept apart so the server can tell whose
fault a failure is: bad arguments from the caller (INVALID_ARGUMENT), an
exception in the handler (its RpcError code, else INTERNAL), or a handler that
returned a value of the wrong type (INTERNAL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
    """The handler's return value -> wire form; raises InvalidArgumentError."""


@dataclass(frozen=True, slots=True)
class ServiceDef:
    name: str
    methods: Mapping[str, MethodDef]

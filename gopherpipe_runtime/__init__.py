"""GopherPipe runtime: what a deployed service or client needs (msgpack + stdlib only).

Nothing here imports the code generator or its dependencies (libcst, jinja2,
black, typer): a deployed service installs the runtime and msgpack, nothing else.
"""

from .calls import CancelToken, ClientCall, ResponseMetadata, response_metadata
from .chan import Chan, ChanClosed, Selected, select
from .client import ClientBase
from .context import CallContext, Peer, current_call
from .interceptors import Interceptor
from .pipe import CallOptions, Pipe
from .retry import RetryPolicy, idempotent
from .server import Server
from .service import MethodDef, MethodKind, ServiceDef
from .status import (
    AbortedError,
    AlreadyExistsError,
    CancelledError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RpcError,
    StatusCode,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
)
from .transport import PeerIdentity

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "CallContext",
    "CallOptions",
    "CancelToken",
    "CancelledError",
    "Chan",
    "ChanClosed",
    "ClientBase",
    "ClientCall",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "Interceptor",
    "InternalError",
    "InvalidArgumentError",
    "MethodDef",
    "MethodKind",
    "NotFoundError",
    "OutOfRangeError",
    "Peer",
    "PeerIdentity",
    "PermissionDeniedError",
    "Pipe",
    "ResourceExhaustedError",
    "ResponseMetadata",
    "RetryPolicy",
    "RpcError",
    "Selected",
    "Server",
    "ServiceDef",
    "StatusCode",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "current_call",
    "idempotent",
    "response_metadata",
    "select",
]

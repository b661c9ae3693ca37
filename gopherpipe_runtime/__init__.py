"""GopherPipe runtime: what a deployed service or client needs (msgpack + stdlib only).

Nothing here imports the code generator or its dependencies (libcst, jinja2,
black, typer): a deployed service installs the runtime and msgpack, nothing else.
"""

from .chan import Chan, ChanClosed, Selected, select
from .client import ClientBase
from .context import CallContext, Peer, current_call
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
    "CancelledError",
    "Chan",
    "ChanClosed",
    "ClientBase",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
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
    "select",
]

"""Status codes and the one runtime error type, `RpcError`.

The code set and numbers are gRPC's, so operators who know gRPC read GopherPipe
failures without a translation table, and so the numbers can go on the wire as-is.
A number outside that set (from a newer or a broken peer) becomes UNKNOWN, with
the number kept in the message, as gRPC does: see `known_code`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType
from typing import ClassVar


class StatusCode(IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


_MAX_SHOWN_CODE = 2**64
"""Larger numbers are not echoed into messages: a JSON peer can send thousands of digits."""


_BY_VALUE: dict[int, StatusCode] = {code.value: code for code in StatusCode}
"""A dict lookup instead of `StatusCode(code)`: the enum's call costs a microsecond a STATUS."""


def known_code(code: int, message: str) -> tuple[StatusCode, str]:
    """`code` as a StatusCode; a number this runtime does not know becomes UNKNOWN.

    The original number moves into the message, so nothing is lost for whoever
    reads the error, and no caller ever has to handle a code outside the enum.
    """
    known = _BY_VALUE.get(code)
    if known is not None:
        return known, message
    shown = str(code) if -_MAX_SHOWN_CODE < code < _MAX_SHOWN_CODE else "out of range"
    prefix = f"unknown status code {shown}"
    return StatusCode.UNKNOWN, f"{prefix}: {message}" if message else prefix


class RpcError(Exception):
    """A call that did not succeed.

    Raise it (or one of its per-code subclasses) in a handler to send that code and
    message to the caller; catch it in a client. ``RpcError(code, message)`` builds
    the matching subclass, so ``except NotFoundError`` works whichever way the error
    was made.
    """

    code: StatusCode
    default_code: ClassVar[StatusCode] = StatusCode.UNKNOWN
    headers: Mapping[str, str] = MappingProxyType({})
    """On the client: the response headers the server sent before failing, if any."""
    trailers: Mapping[str, str] = MappingProxyType({})
    """On the client: the trailers the server sent with the failure
    (`current_call().set_trailers(...)` before raising)."""
    _by_code: ClassVar[dict[StatusCode, type[RpcError]]] = {}

    def __new__(cls, *args: object, **kwargs: object) -> RpcError:
        if cls is RpcError and args and isinstance(args[0], int):
            code, _ = known_code(args[0], "")
            return Exception.__new__(RpcError._by_code.get(code, RpcError))
        return Exception.__new__(cls)

    def __init__(self, code_or_message: StatusCode | int | str = "", message: str = "") -> None:
        if isinstance(code_or_message, int):
            self.code, self.message = known_code(code_or_message, message)
        else:
            self.code = self.default_code
            self.message = code_or_message or message
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}" if self.message else self.code.name

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        RpcError._by_code.setdefault(cls.default_code, cls)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.message!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (RpcError, (int(self.code), self.message))


# One class per code, so callers can write ``except NotFoundError:``.


class CancelledError(RpcError):
    default_code = StatusCode.CANCELLED


class UnknownError(RpcError):
    default_code = StatusCode.UNKNOWN


class InvalidArgumentError(RpcError):
    default_code = StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(RpcError):
    default_code = StatusCode.DEADLINE_EXCEEDED


class NotFoundError(RpcError):
    default_code = StatusCode.NOT_FOUND


class AlreadyExistsError(RpcError):
    default_code = StatusCode.ALREADY_EXISTS


class PermissionDeniedError(RpcError):
    default_code = StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(RpcError):
    default_code = StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(RpcError):
    default_code = StatusCode.FAILED_PRECONDITION


class AbortedError(RpcError):
    default_code = StatusCode.ABORTED


class OutOfRangeError(RpcError):
    default_code = StatusCode.OUT_OF_RANGE


class UnimplementedError(RpcError):
    default_code = StatusCode.UNIMPLEMENTED


class InternalError(RpcError):
    default_code = StatusCode.INTERNAL


class UnavailableError(RpcError):
    default_code = StatusCode.UNAVAILABLE


class DataLossError(RpcError):
    default_code = StatusCode.DATA_LOSS


class UnauthenticatedError(RpcError):
    default_code = StatusCode.UNAUTHENTICATED

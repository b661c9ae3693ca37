"""Checks that generated stubs call to move values between Python and wire form.

Wire form is what a codec can carry: None, bool, int, float, str, bytes, list and
dict. Generated code composes these checks per contract type at generation time,
so a call does no reflection. Every failure is an `InvalidArgumentError` whose
message starts with a path naming the offending argument or field, because "wrong
type" without a location is useless to the caller.

Policy (the same on both sides of the wire, so a value that leaves a client intact
arrives intact):
- ``int`` accepts bool (a subtype, as in the type system) and sends it as int;
- ``float`` accepts int and sends it as float;
- ``tuple`` and ``set`` travel as lists; ``dict`` travels as a map.
"""

from __future__ import annotations

from typing import Any, NoReturn

from .status import InternalError, InvalidArgumentError


def fail(path: str, expected: str, value: object) -> NoReturn:
    raise InvalidArgumentError(f"{path}: expected {expected}, got {type(value).__name__}")


def check_none(value: object, path: str) -> None:
    if value is not None:
        fail(path, "None", value)


def check_bool(value: object, path: str) -> bool:
    if value is True or value is False:
        return value
    fail(path, "bool", value)


def check_int(value: object, path: str) -> int:
    if type(value) is int:
        return value
    if isinstance(value, int):
        return int(value)
    fail(path, "int", value)


def check_float(value: object, path: str) -> float:
    if type(value) is float:
        return value
    if isinstance(value, float | int):
        return float(value)
    fail(path, "float", value)


def check_str(value: object, path: str) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    fail(path, "str", value)


def check_bytes(value: object, path: str) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    fail(path, "bytes", value)


def check_list(value: object, path: str) -> list[Any]:
    """A wire list; on encode, a Python list."""
    if type(value) is list:
        return value
    fail(path, "list", value)


def check_tuple(value: object, path: str, size: int | None) -> tuple[Any, ...]:
    """A Python tuple being encoded; `size` is None for ``tuple[T, ...]``."""
    if not isinstance(value, tuple):
        fail(path, "tuple", value)
    if size is not None and len(value) != size:
        raise InvalidArgumentError(f"{path}: expected a tuple of {size} items, got {len(value)}")
    return value


def check_wire_tuple(value: object, path: str, size: int | None) -> list[Any]:
    """A tuple in wire form (a list) being decoded."""
    items = check_list(value, path)
    if size is not None and len(items) != size:
        raise InvalidArgumentError(f"{path}: expected a tuple of {size} items, got {len(items)}")
    return items


def check_set(value: object, path: str) -> set[Any] | frozenset[Any]:
    if isinstance(value, set | frozenset):
        return value
    fail(path, "set", value)


def check_dict(value: object, path: str) -> dict[Any, Any]:
    if isinstance(value, dict):
        return value
    fail(path, "dict", value)


def check_record(value: object, path: str, name: str, required: int, total: int) -> list[Any]:
    """A dataclass in wire form: a list of its fields in declaration order.

    Fewer items than fields is accepted down to the last field without a default,
    so a field added with a default at the end stays compatible with old peers.
    """
    if type(value) is not list:
        fail(path, name, value)
    if not required <= len(value) <= total:
        raise InvalidArgumentError(
            f"{path}: {name} needs {required}..{total} fields on the wire, got {len(value)}"
        )
    return value


def check_args(value: object, method: str, required: int, total: int) -> list[Any]:
    """The argument list of a call, as the server receives it."""
    if type(value) is not list:
        raise InvalidArgumentError(f"{method}(): arguments must be a list on the wire")
    if not required <= len(value) <= total:
        raise InvalidArgumentError(
            f"{method}(): takes {required}..{total} arguments, got {len(value)}"
        )
    return value


def bad_enum(path: str, enum_name: str, value: object) -> NoReturn:
    raise InvalidArgumentError(f"{path}: {value!r} is not a valid {enum_name}")


def no_result(value: object) -> NoReturn:
    """The result encoder of a streaming method: its stream is its result."""
    raise InternalError("a method that streams its result has no result value to encode")

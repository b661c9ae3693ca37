"""Checks that generated stubs call to move values between Python and wire form.

Wire form is what a codec can carry: None, bool, int, float, str, bytes, list and
dict. Generated code composes these checks per contract type at generation time,
so a call does no reflection. Every failure is an `InvalidArgumentError` whose
message starts with a path naming the offending argument or field, because "wrong
type" without a location is useless to the caller.

Policy (the same on both sides of the wire, so a value that leaves a client intact
arrives intact):
- ``int`` accepts bool (a subtype, as in the type system) and sends it as int, and
  only in -2**63..2**64-1 (what msgpack carries), on both codecs alike;
- ``float`` accepts int and sends it as float;
- ``tuple`` and ``set`` travel as lists; ``dict`` travels as a map.

A generated container or record converter first converts every part with the
container's own path (``FAST_PATH`` for a part that has a generated converter of its
own), which builds no strings. Only when that raises does it call
one of the ``convert_*`` / ``*_fields`` routines below: they convert again, part by
part, with each part's own path (``[3]``, ``['key']``, ``.x``), so the error names the
exact field. A part that fails under ``FAST_PATH`` re-raises at once rather than
retrying, so a bad value costs one extra conversion per enclosing level, not a doubling
per level. The stubs hold one body per converter; the path-naming retry is this
table-driven code, shared by every stub.
"""

from __future__ import annotations

import contextlib
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NoReturn, TypeVar
from uuid import UUID

from ..status import InternalError, InvalidArgumentError

_T = TypeVar("_T")
Converter = Callable[[object, str], Any]
"""A generated or built-in ``(value, path)`` converter."""


class _FastPath(str):
    """The type of FAST_PATH, so that no path a stub builds can be the same object."""

    __slots__ = ()


FAST_PATH: str = _FastPath("(a part, named when converted again)")
"""The path a generated converter passes its parts on its first, path-less attempt. A
converter given it re-raises a failure as it is instead of converting again to name
the failing part: the converter that passed it converts the same parts again anyway,
with their real paths. (Stubs generated before FAST_PATH existed never pass it; they
convert a bad part once per enclosing converter, twice per level of nesting.)"""


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
        if -(2**63) <= value < 2**64:
            return value
        fail_int_range(path)
    if isinstance(value, int):
        return check_int(int(value), path)
    fail(path, "int", value)


def fail_int_range(path: str) -> NoReturn:
    # msgpack carries no wider int; JSON would, so both codecs refuse alike.
    raise InvalidArgumentError(f"{path}: int out of the 64-bit range (-2**63..2**64-1)")


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


def check_sequence(value: object, path: str) -> Sequence[Any]:
    """A ``Sequence[T]`` being encoded: a list, a tuple or any other sequence.

    A str or bytes is refused although it is a sequence: passed where a Sequence of
    items is expected, it is almost always a mistake (``"abc"`` for ``["abc"]``).
    """
    if type(value) is list or type(value) is tuple:
        return value
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        return value
    fail(path, "a sequence (list or tuple)", value)


def check_mapping(value: object, path: str) -> Mapping[Any, Any]:
    """A ``Mapping[K, V]`` being encoded: a dict or any other mapping."""
    if isinstance(value, Mapping):
        return value
    fail(path, "a mapping", value)


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


def check_typed_dict(
    value: object, path: str, name: str, required: tuple[str, ...], keys: Mapping[str, object]
) -> dict[Any, Any]:
    """A TypedDict, on either side: a dict (a map on the wire) holding every key of
    `required` and no key outside `keys`."""
    if not isinstance(value, dict):
        fail(path, name, value)
    for key in required:
        if key not in value:
            raise InvalidArgumentError(f"{path}: {name} is missing the key {key!r}")
    if len(value) > len(required):
        for key in value:
            if key not in keys:
                raise InvalidArgumentError(f"{path}: {name} has no key {key!r}")
    return value


def check_record(value: object, path: str, name: str, required: int, total: int) -> list[Any]:
    """A dataclass in wire form: a list of its fields in declaration order.

    Fewer items than fields is accepted down to the last field without a default, and
    items beyond the last field are ignored (RFC-TCP_LITE section 7): so a field added
    with a default at the end is compatible in both directions, an old peer reading a
    newer record as the part it knows. `total` stays in the signature for the message.
    """
    if type(value) is not list:
        fail(path, name, value)
    if len(value) < required:
        raise InvalidArgumentError(
            f"{path}: {name} needs {required}..{total} fields on the wire, got {len(value)}"
        )
    return value


def check_args(value: object, method: str, required: int, total: int) -> list[Any]:
    """The argument list of a call, as the server receives it. Arguments beyond the
    `total` it declares are ignored (RFC-TCP_LITE section 6.2): a newer client's trailing
    parameters, which have defaults, so an older server answers as if left out."""
    if type(value) is not list:
        raise InvalidArgumentError(f"{method}(): arguments must be a list on the wire")
    if len(value) < required:
        raise InvalidArgumentError(
            f"{method}(): takes {required}..{total} arguments, got {len(value)}"
        )
    return value


_brief = reprlib.Repr()
_brief.maxstring = _brief.maxother = 80
"""repr() for a value a peer sent, in a message: plain repr() of a list nested a thousand
deep (msgpack allows about that) raises RecursionError, and of a 4 MiB string makes a
4 MiB message. This one stops at six levels and elides long strings in the middle."""


def bad_enum(path: str, enum_name: str, value: object) -> NoReturn:
    raise InvalidArgumentError(f"{path}: {_brief.repr(value)} is not a valid {enum_name}")


def no_result(value: object) -> NoReturn:
    """The result encoder of a streaming method: its stream is its result."""
    raise InternalError("a method that streams its result has no result value to encode")


# -- path-naming retries -----------------------------------------------------------------
#
# Called by a generated converter only after its fast body raised InvalidArgumentError:
# each converts the same value again, naming every part's path, so the error raised here
# is the precise one. Paths are spelled as before: ``[3]`` for an item, ``.x`` for a
# field, ``['key']`` for a map value and `` key 'key'`` for a map key.


def convert_items(
    items: Iterable[object], path: str, convert: Callable[[object, str], _T]
) -> list[_T]:
    """A list, set or ``tuple[T, ...]``: each item at ``path[index]``."""
    return [convert(item, f"{path}[{index}]") for index, item in enumerate(items)]


def convert_positions(
    items: Sequence[object], path: str, converts: Sequence[Converter]
) -> list[Any]:
    """A fixed-size tuple (its size already checked): item ``index`` by ``converts[index]``."""
    return [convert(items[index], f"{path}[{index}]") for index, convert in enumerate(converts)]


def convert_entries(
    items: Mapping[Any, Any], path: str, convert_key: Converter, convert_value: Converter
) -> dict[Any, Any]:
    """A dict or Mapping whose keys travel as map keys."""
    return {
        convert_key(key, f"{path} key {key!r}"): convert_value(item, f"{path}[{key!r}]")
        for key, item in items.items()
    }


def convert_pairs(
    items: Mapping[Any, Any], path: str, convert_key: Converter, convert_value: Converter
) -> list[list[Any]]:
    """A dict with array-form keys being encoded: a list of [key, value] pairs."""
    return [
        [convert_key(key, f"{path} key {key!r}"), convert_value(item, f"{path}[{key!r}]")]
        for key, item in items.items()
    ]


def convert_wire_pairs(
    items: Sequence[object], path: str, convert_key: Converter, convert_value: Converter
) -> dict[Any, Any]:
    """A dict with array-form keys being decoded from its list of [key, value] pairs."""
    return {
        convert_key(key, f"{path}[{index}][0]"): convert_value(item, f"{path}[{index}][1]")
        for index, entry in enumerate(items)
        for key, item in (check_wire_tuple(entry, f"{path}[{index}]", 2),)
    }


def convert_keys(
    items: Mapping[str, object], path: str, converts: Mapping[str, Converter]
) -> dict[str, Any]:
    """A TypedDict (its keys already checked): each value by the converter of its key."""
    return {key: converts[key](item, f"{path}[{key!r}]") for key, item in items.items()}


def encode_fields(value: object, path: str, fields: Sequence[tuple[str, Converter]]) -> list[Any]:
    """A dataclass or NamedTuple being encoded: its fields' wire forms, in order."""
    return [convert(getattr(value, name), f"{path}.{name}") for name, convert in fields]


def decode_fields(
    items: Sequence[object], path: str, fields: Sequence[tuple[str, Converter]]
) -> dict[str, Any]:
    """A record's wire list (its length already checked) as keyword arguments of its
    class; trailing fields the list leaves out are left to their defaults."""
    return {
        name: convert(item, f"{path}.{name}")
        for (name, convert), item in zip(fields, items, strict=False)
    }


# -- standard-library value types ---------------------------------------------------------
#
# Wire forms (RFC-TCP_LITE section 7): canonical strings, which JSON and msgpack carry
# alike, or for timedelta its three normalised ints. Decoding accepts only the exact
# string the encoder would have written (parse, then format again and compare), so a
# value has one spelling on the wire and a lenient parser's extras (``Z``, week dates,
# ``1_000``, braces around a UUID) never leak into what peers must accept.


def _not_canonical(path: str, what: str, value: object) -> NoReturn:
    raise InvalidArgumentError(f"{path}: {_brief.repr(value)} is not a {what}")


def enc_datetime(value: object, path: str) -> str:
    if isinstance(value, datetime):
        # The base class's isoformat: a subclass (pandas' Timestamp) may add digits.
        return datetime.isoformat(value)
    fail(path, "datetime", value)


def dec_datetime(value: object, path: str) -> datetime:
    if type(value) is str:
        with contextlib.suppress(ValueError):
            result = datetime.fromisoformat(value)
            if result.isoformat() == value:
                return result
        _not_canonical(path, "datetime in ISO 8601 form (datetime.isoformat())", value)
    fail(path, "datetime (an ISO 8601 string)", value)


def enc_date(value: object, path: str) -> str:
    # A datetime is a date to the type system, but sending its date would drop its time.
    if isinstance(value, date) and not isinstance(value, datetime):
        return date.isoformat(value)
    fail(path, "date", value)


def dec_date(value: object, path: str) -> date:
    if type(value) is str:
        with contextlib.suppress(ValueError):
            result = date.fromisoformat(value)
            if result.isoformat() == value:
                return result
        _not_canonical(path, "date in ISO 8601 form (YYYY-MM-DD)", value)
    fail(path, "date (an ISO 8601 string)", value)


def enc_time(value: object, path: str) -> str:
    if isinstance(value, time):
        return time.isoformat(value)
    fail(path, "time", value)


def dec_time(value: object, path: str) -> time:
    if type(value) is str:
        with contextlib.suppress(ValueError):
            result = time.fromisoformat(value)
            if result.isoformat() == value:
                return result
        _not_canonical(path, "time in ISO 8601 form (time.isoformat())", value)
    fail(path, "time (an ISO 8601 string)", value)


def enc_timedelta(value: object, path: str) -> list[int]:
    if isinstance(value, timedelta):
        return [value.days, value.seconds, value.microseconds]
    fail(path, "timedelta", value)


def dec_timedelta(value: object, path: str) -> timedelta:
    if type(value) is list and len(value) == 3 and all(type(part) is int for part in value):
        days, seconds, microseconds = value
        if -999999999 <= days <= 999999999 and 0 <= seconds < 86400 and 0 <= microseconds < 1000000:
            return timedelta(days, seconds, microseconds)
        _not_canonical(path, "timedelta: [days, seconds 0..86399, microseconds 0..999999]", value)
    fail(path, "timedelta ([days, seconds, microseconds])", value)


def enc_decimal(value: object, path: str) -> str:
    if isinstance(value, Decimal):
        return Decimal.__str__(value)
    fail(path, "Decimal", value)


def dec_decimal(value: object, path: str) -> Decimal:
    if type(value) is str:
        # Decimal(str) is exact whatever the context's precision; a malformed string
        # raises InvalidOperation only if the context traps it, so test the result.
        with contextlib.suppress(ArithmeticError, ValueError):
            result = Decimal(value)
            if str(result) == value:
                return result
        _not_canonical(path, "Decimal in canonical form (str(Decimal))", value)
    fail(path, "Decimal (a string)", value)


def dec_decimal_key(value: object, path: str) -> Decimal:
    """`dec_decimal` where the Decimal is hashed: a set item, a dict key, or in a tuple that
    is one. Python cannot hash a signalling NaN, so there sNaN does not fit the type."""
    result = dec_decimal(value, path)
    if result.is_snan():
        raise InvalidArgumentError(f"{path}: sNaN cannot be a set item or dict key (no hash)")
    return result


def enc_uuid(value: object, path: str) -> str:
    if isinstance(value, UUID):
        return UUID.__str__(value)
    fail(path, "UUID", value)


def dec_uuid(value: object, path: str) -> UUID:
    if type(value) is str:
        with contextlib.suppress(ValueError):
            result = UUID(value)
            if str(result) == value:
                return result
        _not_canonical(path, "UUID in canonical form (36 lowercase characters)", value)
    fail(path, "UUID (a string)", value)

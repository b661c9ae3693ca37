"""JSON <-> wire form, driven by a service's reflection schema (reflection.py).

``gopherpipe call`` takes a call's arguments as JSON and prints what comes back as
JSON, for any server, without the contract or its stubs: the types come from the
server's Reflection answer, as strings spelled like the contract (``list[Message]``,
``dict[str, int]``, ``Message | None``, ``Literal['a', 1]``) plus its table of named
types. A type string is parsed with `ast` (it is a Python expression) and looked up
in that table whole first, so a generic dataclass's use (``Page[User]``) is one entry.

JSON -> wire (`JsonWire.to_wire`) accepts the spellings a person types and writes
the one wire form RFC-TCP_LITE section 7 fixes:
- datetime, date, time: any ISO 8601 string Python's ``fromisoformat`` reads
  (``Z`` included), sent as ``isoformat()``; UUID: any form ``UUID()`` reads, sent
  lowercase; Decimal: a string or a JSON number, sent as ``str(Decimal)``;
  timedelta: a number of seconds or ``[days, seconds, microseconds]``;
- bytes: a base64 string;
- an Enum: a member's name or its value;
- a dataclass or NamedTuple: an object by field name (fields with defaults may be
  left out only at the end, since the wire form is positional) or an array; a
  TypedDict: an object;
- a dict: an object (keys converted from their JSON string for int, float, bool,
  Enum ... keys) or an array of ``[key, value]`` pairs.

Wire -> JSON (`JsonWire.to_json`) is the reverse: Enum members by name, records as
objects, bytes as base64, timedelta as seconds, sets and tuples as arrays, a dict
whose keys are not strings as an object of their JSON spellings, or of ``[key,
value]`` pairs when the keys are arrays. A value that does not fit the schema is
`JsonWireError`, its message starting with the path of the offending part.
"""

from __future__ import annotations

import ast
import base64
import binascii
import functools
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID


class JsonWireError(ValueError):
    """A JSON value (or a wire value) that does not fit its type."""


_SCALARS = {"None", "bool", "int", "float", "str", "bytes", "Any"}
_LISTS = {"list", "Sequence", "set", "frozenset", "tuple"}
_DICTS = {"dict", "Mapping"}


@functools.lru_cache(maxsize=1024)
def _parse(spelled: str) -> ast.expr:
    try:
        return ast.parse(spelled, mode="eval").body
    except SyntaxError:
        raise JsonWireError(f"the schema has a type that cannot be read: {spelled!r}") from None


def _fail(path: str, expected: str, value: object) -> JsonWireError:
    shown = json.dumps(value, default=repr)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return JsonWireError(f"{path}: expected {expected}, got {shown}")


class JsonWire:
    """The converters of one service's schema: ``types`` is its table of named types."""

    def __init__(self, types: Mapping[str, Any]) -> None:
        self.types = types

    # -- JSON -> wire --------------------------------------------------------------------

    def to_wire(self, spelled: str, value: Any, path: str) -> Any:
        return self._to_wire(_parse(spelled), value, path)

    def _to_wire(self, node: ast.expr, value: Any, path: str) -> Any:
        named = self.types.get(ast.unparse(node))
        if named is not None:
            return self._named_to_wire(ast.unparse(node), named, value, path)
        if isinstance(node, ast.Constant) and node.value is None:
            return self._scalar_to_wire("None", value, path)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            inner = _optional_inner(node)
            return None if value is None else self._to_wire(inner, value, path)
        if isinstance(node, ast.Name):
            return self._scalar_to_wire(node.id, value, path)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            head, args = node.value.id, _args(node)
            if head == "Literal":
                return _literal(args, value, path)
            if head == "Optional":
                return None if value is None else self._to_wire(args[0], value, path)
            if head in _LISTS:
                if not isinstance(value, list):
                    raise _fail(path, "an array", value)
                return [
                    self._to_wire(item_type, value[index], f"{path}[{index}]")
                    for item_type, index in _item_types(head, args, len(value), path)
                ]
            if head in _DICTS:
                return self._dict_to_wire(args[0], args[1], value, path)
        raise JsonWireError(f"{path}: the schema's type {ast.unparse(node)!r} is not known")

    def _scalar_to_wire(self, name: str, value: Any, path: str) -> Any:
        if name == "None":
            if value is not None:
                raise _fail(path, "null", value)
            return None
        if name == "bool":
            if not isinstance(value, bool):
                raise _fail(path, "true or false", value)
            return value
        if name == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _fail(path, "an integer", value)
            return value
        if name == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _fail(path, "a number", value)
            return float(value)
        if name == "str":
            if not isinstance(value, str):
                raise _fail(path, "a string", value)
            return value
        if name == "bytes":
            if not isinstance(value, str):
                raise _fail(path, "bytes as a base64 string", value)
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise _fail(path, "bytes as a base64 string", value) from None
        if name == "Any":
            return value
        return _stdlib_to_wire(name, value, path)

    def _named_to_wire(self, name: str, named: Mapping[str, Any], value: Any, path: str) -> Any:
        kind = named.get("kind")
        if kind == "newtype":
            return self.to_wire(named["type"], value, path)
        if kind == "enum":
            members = [(str(m), v) for m, v in named["members"]]
            for member, member_value in members:
                if value == member and isinstance(value, str):
                    return member_value
            for _, member_value in members:
                if type(value) is type(member_value) and value == member_value:
                    return member_value
            spelled = ", ".join(f"{m} ({json.dumps(v)})" for m, v in members)
            raise _fail(path, f"a {name} member's name or value: {spelled}", value)
        fields: list[Mapping[str, Any]] = named["fields"]
        if kind == "typeddict":
            if not isinstance(value, dict):
                raise _fail(path, f"a {name} object", value)
            by_name = {f["name"]: f for f in fields}
            for key in value:
                if key not in by_name:
                    raise JsonWireError(f"{path}: {name} has no key {key!r}")
            out: dict[str, Any] = {}
            for f in fields:
                if f["name"] in value:
                    out[f["name"]] = self.to_wire(
                        f["type"], value[f["name"]], f"{path}.{f['name']}"
                    )
                elif "default" not in f:
                    raise JsonWireError(f"{path}: {name} needs the key {f['name']!r}")
            return out
        if isinstance(value, list):
            required = _required(fields)
            if not required <= len(value) <= len(fields):
                raise JsonWireError(
                    f"{path}: {name} takes {required}..{len(fields)} fields, got {len(value)}"
                )
            return [
                self.to_wire(f["type"], item, f"{path}.{f['name']}")
                for f, item in zip(fields, value, strict=False)
            ]
        if not isinstance(value, dict):
            raise _fail(path, f"a {name} object (or an array of its fields)", value)
        return self.by_name(fields, value, path, name, "field")

    def by_name(
        self, fields: Sequence[Mapping[str, Any]], value: Mapping[str, Any], path: str, owner: str,
        what: str,
    ) -> list[Any]:  # fmt: skip
        """Named values (an object) as the positional list the wire carries: the ones
        left out must be a tail of those with defaults, which the receiver fills in.
        `what` is "field" (of the record `owner` at `path`) or "argument" (of the
        method `owner`, which `path` then is)."""
        names = [f["name"] for f in fields]
        where = "" if path == owner else f"{path}: "
        for key in value:
            if key not in names:
                raise JsonWireError(f"{where}{owner} has no {what} {key!r}")
        given = [index for index, f in enumerate(fields) if f["name"] in value]
        count = given[-1] + 1 if given else 0
        out: list[Any] = []
        for f in fields[:count]:
            sub = f"{path}.{f['name']}" if what == "field" else f"{path}: argument {f['name']!r}"
            if f["name"] in value:
                out.append(self.to_wire(f["type"], value[f["name"]], sub))
                continue
            # Left out before one that is given: the wire form is positional, so the
            # default is sent, if its source text is one we can read (a literal, an
            # Enum member, an empty default_factory).
            default = self._default(f.get("default"))
            if default is _NO_DEFAULT:
                hint = (
                    ""
                    if "default" not in f
                    else f" (its default, {f['default']}, cannot be sent in its place)"
                )
                raise JsonWireError(f"{where}{owner} needs the {what} {f['name']!r}{hint}")
            out.append(self.to_wire(f["type"], default, sub))
        for f in fields[count:]:
            if "default" not in f:
                raise JsonWireError(f"{where}{owner} needs the {what} {f['name']!r}")
        return out

    def _default(self, text: str | None) -> Any:
        """A default's source text as a JSON value, or _NO_DEFAULT if it cannot be read."""
        if not text:
            return _NO_DEFAULT
        try:
            node = ast.parse(text, mode="eval").body
        except SyntaxError:
            return _NO_DEFAULT
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("field", "dataclasses.field"):
            for keyword in node.keywords:
                if keyword.arg == "default":
                    return self._default(ast.unparse(keyword.value))
                if keyword.arg == "default_factory":
                    factory = ast.unparse(keyword.value)
                    return {"dict": {}}.get(factory, [] if factory in _EMPTY_LISTS else _NO_DEFAULT)
            return _NO_DEFAULT
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            named = self.types.get(node.value.id)
            if named is not None and named.get("kind") == "enum":
                return node.attr
            return _NO_DEFAULT
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return _NO_DEFAULT
        return _jsonish(value)

    def _dict_to_wire(self, key: ast.expr, item: ast.expr, value: Any, path: str) -> Any:
        pairs: list[tuple[Any, Any]]
        if isinstance(value, dict):
            pairs = [(self._key_from_json(key, k, path), v) for k, v in value.items()]
        elif isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
            pairs = [(self._to_wire(key, p[0], f"{path} key {p[0]!r}"), p[1]) for p in value]
        else:
            raise _fail(path, "an object, or an array of [key, value] pairs", value)
        converted = [(k, self._to_wire(item, v, f"{path}[{k!r}]")) for k, v in pairs]
        if self._array_form(key):
            return [[k, v] for k, v in converted]
        return dict(converted)

    def _key_from_json(self, key: ast.expr, text: str, path: str) -> Any:
        """A JSON object's key (always a string) as the key type's wire form."""
        where = f"{path} key {text!r}"
        try:
            return self._to_wire(key, text, where)
        except JsonWireError:
            try:
                parsed = json.loads(text)
            except ValueError:
                raise _fail(where, f"a key of type {ast.unparse(key)}", text) from None
            return self._to_wire(key, parsed, where)

    def _array_form(self, node: ast.expr) -> bool:
        """Whether a type's wire form is an array (a dict keyed by it travels as pairs)."""
        named = self.types.get(ast.unparse(node))
        if named is not None:
            if named.get("kind") == "newtype":
                return self._array_form(_parse(named["type"]))
            return named.get("kind") in ("dataclass", "namedtuple")
        if isinstance(node, ast.Name):
            return node.id == "timedelta"
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            return node.value.id in _LISTS
        if isinstance(node, ast.BinOp):
            return self._array_form(_optional_inner(node))
        return False

    # -- wire -> JSON --------------------------------------------------------------------

    def to_json(self, spelled: str, value: Any, path: str) -> Any:
        return self._to_json(_parse(spelled), value, path)

    def _to_json(self, node: ast.expr, value: Any, path: str) -> Any:
        if value is None:
            return None
        named = self.types.get(ast.unparse(node))
        if named is not None:
            return self._named_to_json(named, value, path)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self._to_json(_optional_inner(node), value, path)
        if isinstance(node, ast.Name):
            if node.id == "bytes" and isinstance(value, bytes | bytearray):
                return base64.b64encode(value).decode("ascii")
            if node.id == "timedelta" and isinstance(value, list) and len(value) == 3:
                return timedelta(*value).total_seconds()
            return value
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            head, args = node.value.id, _args(node)
            if head == "Optional":
                return self._to_json(args[0], value, path)
            if head in _LISTS and isinstance(value, list):
                return [
                    self._to_json(item_type, value[index], f"{path}[{index}]")
                    for item_type, index in _item_types(head, args, len(value), path)
                ]
            if head in _DICTS:
                return self._dict_to_json(args[0], args[1], value, path)
        return value

    def _named_to_json(self, named: Mapping[str, Any], value: Any, path: str) -> Any:
        kind = named.get("kind")
        if kind == "newtype":
            return self.to_json(named["type"], value, path)
        if kind == "enum":
            for member, member_value in named["members"]:
                if type(value) is type(member_value) and value == member_value:
                    return member
            return value  # a member this schema predates: its value is all there is
        fields: list[Mapping[str, Any]] = named["fields"]
        if kind == "typeddict" and isinstance(value, dict):
            types = {f["name"]: f["type"] for f in fields}
            return {
                k: self.to_json(types[k], v, f"{path}.{k}") if k in types else v
                for k, v in value.items()
            }
        if isinstance(value, list):
            return {
                f["name"]: self.to_json(f["type"], item, f"{path}.{f['name']}")
                for f, item in zip(fields, value, strict=False)
            }
        return value

    def _dict_to_json(self, key: ast.expr, item: ast.expr, value: Any, path: str) -> Any:
        if isinstance(value, list):  # array-form keys: [key, value] pairs
            return [
                [self._to_json(key, p[0], path), self._to_json(item, p[1], f"{path}[{i}]")]
                for i, p in enumerate(value)
            ]
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for k, v in value.items():
            shown = self._to_json(key, k, path)
            name = shown if isinstance(shown, str) else json.dumps(shown)
            out[name] = self._to_json(item, v, f"{path}[{k!r}]")
        return out


_NO_DEFAULT: Any = object()
_EMPTY_LISTS = ("list", "set", "frozenset", "tuple")


def _jsonish(value: Any) -> Any:
    """A literal_eval'd default as JSON would spell it (tuples and sets as arrays)."""
    if isinstance(value, tuple | list | set | frozenset):
        return [_jsonish(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonish(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _args(node: ast.Subscript) -> list[ast.expr]:
    inner = node.slice
    return list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]


def _optional_inner(node: ast.BinOp) -> ast.expr:
    if isinstance(node.right, ast.Constant) and node.right.value is None:
        return node.left
    if isinstance(node.left, ast.Constant) and node.left.value is None:
        return node.right
    raise JsonWireError(f"only T | None unions travel, not {ast.unparse(node)}")


def _item_types(
    head: str, args: list[ast.expr], count: int, path: str
) -> list[tuple[ast.expr, int]]:
    """The type of each of `count` items of a list-like value."""
    if head != "tuple":
        return [(args[0], index) for index in range(count)]
    if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
        return [(args[0], index) for index in range(count)]
    if count != len(args):
        raise JsonWireError(f"{path}: expected an array of {len(args)} items, got {count}")
    return [(arg, index) for index, arg in enumerate(args)]


def _required(fields: Sequence[Mapping[str, Any]]) -> int:
    last = 0
    for index, f in enumerate(fields):
        if "default" not in f:
            last = index + 1
    return last


def _literal(args: list[ast.expr], value: Any, path: str) -> Any:
    allowed = [a.value for a in args if isinstance(a, ast.Constant)]
    for option in allowed:
        if type(option) is type(value) and option == value:
            return value
    raise _fail(path, "one of " + ", ".join(json.dumps(a) for a in allowed), value)


def _stdlib_to_wire(name: str, value: Any, path: str) -> Any:
    try:
        if name == "datetime" and isinstance(value, str):
            return datetime.fromisoformat(value).isoformat()
        if name == "date" and isinstance(value, str):
            return date.fromisoformat(value).isoformat()
        if name == "time" and isinstance(value, str):
            return time.fromisoformat(value).isoformat()
        if name == "UUID" and isinstance(value, str):
            return str(UUID(value))
        decimal_ok = isinstance(value, str | int | float) and not isinstance(value, bool)
        if name == "Decimal" and decimal_ok:
            return str(Decimal(str(value)))
        if name == "timedelta":
            if isinstance(value, int | float) and not isinstance(value, bool):
                delta = timedelta(seconds=value)
            elif (
                isinstance(value, list)
                and len(value) == 3
                and all(isinstance(p, int) and not isinstance(p, bool) for p in value)
            ):
                delta = timedelta(*value)
            else:
                raise _fail(path, "seconds, or [days, seconds, microseconds]", value)
            return [delta.days, delta.seconds, delta.microseconds]
    except (ValueError, InvalidOperation, OverflowError):
        pass
    else:
        if name not in ("datetime", "date", "time", "UUID", "Decimal"):
            raise JsonWireError(f"{path}: the schema's type {name!r} is not known")
    spelled = {
        "datetime": "an ISO 8601 date and time (2024-05-01T12:00:00+00:00)",
        "date": "an ISO 8601 date (2024-05-01)",
        "time": "an ISO 8601 time (12:30:00)",
        "UUID": "a UUID string",
        "Decimal": "a decimal number or its string",
        "timedelta": "seconds, or [days, seconds, microseconds]",
    }[name]
    raise _fail(path, spelled, value)


def args_to_wire(method: Mapping[str, Any], codec: JsonWire, value: Any) -> list[Any]:
    """A call's arguments, a JSON object (by name) or array (by position), as the
    wire's argument list. A streamed parameter is not among them."""
    params = [p for p in method.get("params", ()) if not p.get("stream")]
    name = f"{method['name']}()"
    if value is None:
        value = {}
    if isinstance(value, list):
        required = _required(params)
        if not required <= len(value) <= len(params):
            raise JsonWireError(
                f"{name} takes {required}..{len(params)} arguments, got {len(value)}"
            )
        return [
            codec.to_wire(p["type"], item, f"{name}: argument {p['name']!r}")
            for p, item in zip(params, value, strict=False)
        ]
    if isinstance(value, dict):
        return codec.by_name(params, value, name, name, "argument")
    raise _fail(name, "the arguments as a JSON object (by name) or array", value)

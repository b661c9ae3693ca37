"""The Reflection service and the schema-driven JSON <-> wire conversion, in process.

A contract using every kind of type is generated (its server stub carries the
schema), served on a real socket, and called through `reflection.call` with JSON:
the handler must receive the exact Python values (so the JSON became the wire form
the generated decoders accept) and the JSON printed back must be the readable form.
"""

from __future__ import annotations

import datetime
import importlib
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest

from gopherpipe_gen.cli import generate
from gopherpipe_runtime import (
    CallOptions,
    NotFoundError,
    Pipe,
    Server,
    UnimplementedError,
    reflection,
)
from gopherpipe_runtime.jsonwire import JsonWire, JsonWireError, args_to_wire
from gopherpipe_runtime.service import MethodDef, MethodKind, ServiceDef

CONTRACT = '''
"""Every shape of value, for reflection."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Literal, NamedTuple, NewType, NotRequired, TypedDict
from uuid import UUID

UserId = NewType("UserId", int)


class Color(Enum):
    """Colours travel as str values."""

    RED = "red"
    GREEN = "green"


class Level(Enum):
    LOW = 1
    HIGH = 2


class Point(NamedTuple):
    x: int
    y: int = 0


class Tag(TypedDict):
    label: str
    weight: NotRequired[float]


@dataclass
class Inner:
    """An inner record."""

    when: datetime
    amount: Decimal
    id: UUID
    level: Level = Level.LOW


@dataclass
class Outer:
    name: str
    inner: Inner
    items: list[Inner] = field(default_factory=list)
    note: str | None = None


class Shapes(ABC):
    """Echoes what it gets."""

    @abstractmethod
    def outer(self, value: Outer) -> Outer:
        """Echo a record."""

    @abstractmethod
    def scalars(
        self, day: date, at: time, span: timedelta, data: bytes, color: Color, user: UserId
    ) -> tuple[date, time, timedelta, bytes, Color, UserId]: ...

    @abstractmethod
    def containers(
        self,
        by_level: dict[Level, list[int]],
        by_pair: dict[tuple[int, int], str],
        tags: list[Tag],
        ids: set[UUID],
        maybe: Point | None = None,
        mode: Literal["a", "b"] = "a",
    ) -> tuple[dict[Level, list[int]], dict[tuple[int, int], str], list[Tag], set[UUID], Point | None, str]: ...
'''


class Echo:
    def __init__(self) -> None:
        self.received: list[tuple[Any, ...]] = []

    def outer(self, value: Any) -> Any:
        self.received.append((value,))
        return value

    def scalars(self, *args: Any) -> Any:
        self.received.append(args)
        return args

    def containers(self, *args: Any) -> Any:
        self.received.append(args)
        return args


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, ModuleType]]:
    folder = tmp_path_factory.mktemp("reflection")
    (folder / "refl_shapes.py").write_text(CONTRACT)
    for output in generate([folder / "refl_shapes.py"], None):
        output.path.write_text(output.text)
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("refl_shapes"), importlib.import_module("refl_shapes_server")
    finally:
        sys.path.remove(str(folder))
        for name in ("refl_shapes", "refl_shapes_client", "refl_shapes_server"):
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def served(stubs: tuple[ModuleType, ModuleType]) -> Iterator[tuple[Pipe, Echo, dict[str, Any]]]:
    _, server_stub = stubs
    echo = Echo()
    server = Server("tcp://127.0.0.1:0")
    server_stub.register_shapes(server, echo)
    server.start()
    try:
        with Pipe(server.addresses[0]) as pipe:
            (schema,) = reflection.describe(pipe, "Shapes")
            yield pipe, echo, schema
    finally:
        server.stop(grace=0)


def call(served: tuple[Pipe, Echo, dict[str, Any]], method: str, args: Any) -> tuple[Any, Any]:
    pipe, echo, schema = served
    result = reflection.call(pipe, schema, method, args, on_item=print, timeout=10)
    return echo.received[-1], result


def test_schema_describes_the_contract(served: tuple[Pipe, Echo, dict[str, Any]]) -> None:
    _, _, schema = served
    assert schema["name"] == "Shapes" and schema["doc"] == "Echoes what it gets."
    outer = reflection.find_method(schema, "outer")
    assert outer == {
        "name": "outer",
        "kind": "unary",
        "params": [{"name": "value", "type": "Outer"}],
        "returns": "Outer",
        "idempotent": False,
        "doc": "Echo a record.",
    }
    containers = reflection.find_method(schema, "containers")
    assert containers["params"][-1] == {
        "name": "mode",
        "type": "Literal['a', 'b']",
        "default": '"a"',  # as the contract spells it
    }
    types = schema["types"]
    assert types["Outer"]["fields"][2] == {
        "name": "items",
        "type": "list[Inner]",
        "default": "field(default_factory=list)",
    }
    assert types["Inner"]["doc"] == "An inner record."
    assert types["Color"] == {
        "kind": "enum",
        "doc": "Colours travel as str values.",
        "members": [["RED", "red"], ["GREEN", "green"]],
    }
    assert types["UserId"] == {"kind": "newtype", "type": "int"}
    assert types["Point"]["kind"] == "namedtuple"
    assert types["Tag"] == {
        "kind": "typeddict",
        "doc": "",
        "fields": [
            {"name": "label", "type": "str"},
            {"name": "weight", "type": "float", "default": ""},
        ],
    }
    text = reflection.format_service(schema)
    assert "def outer(self, value: Outer) -> Outer:  # unary" in text
    assert 'UserId = NewType("UserId", int)' in text
    assert "class Tag(TypedDict):\n    label: str\n    weight: NotRequired[float]" in text
    assert "class Point(NamedTuple):\n    x: int\n    y: int = 0" in text
    assert 'class Color(Enum):\n    """Colours travel as str values."""\n    RED = "red"' in text


def test_schema_is_the_same_over_the_json_codec(
    served: tuple[Pipe, Echo, dict[str, Any]],
) -> None:
    pipe, _, schema = served
    with Pipe(pipe.address, codec="json") as json_pipe:
        assert reflection.describe(json_pipe, "Shapes") == [schema]


def test_nested_dataclasses_datetime_decimal_uuid_enum(
    served: tuple[Pipe, Echo, dict[str, Any]], stubs: tuple[ModuleType, ModuleType]
) -> None:
    contract, _ = stubs
    inner = {
        "when": "2024-05-01T12:00:00Z",  # Z: as a person writes it, not isoformat()'s
        "amount": 19.99,  # a JSON number for a Decimal
        "id": "12345678-1234-5678-1234-567812345678".upper(),
        "level": "HIGH",  # by name
    }
    second = {"when": "2024-05-02", "amount": "-0.10", "id": str(UUID(int=1)), "level": 1}
    (received,), result = call(
        served, "outer", {"value": {"name": "n", "inner": inner, "items": [second]}}
    )
    utc = datetime.UTC
    assert received == contract.Outer(
        "n",
        contract.Inner(
            datetime.datetime(2024, 5, 1, 12, tzinfo=utc),
            Decimal("19.99"),
            UUID("12345678-1234-5678-1234-567812345678"),
            contract.Level.HIGH,
        ),
        [contract.Inner(datetime.datetime(2024, 5, 2), Decimal("-0.10"), UUID(int=1))],
    )
    assert result == {
        "name": "n",
        "inner": {
            "when": "2024-05-01T12:00:00+00:00",
            "amount": "19.99",
            "id": "12345678-1234-5678-1234-567812345678",
            "level": "HIGH",
        },
        "items": [
            {
                "when": "2024-05-02T00:00:00",
                "amount": "-0.10",
                "id": str(UUID(int=1)),
                "level": "LOW",
            }
        ],
        "note": None,
    }


def test_positional_records_and_defaults_left_out(
    served: tuple[Pipe, Echo, dict[str, Any]], stubs: tuple[ModuleType, ModuleType]
) -> None:
    contract, _ = stubs
    inner = ["2024-05-01T12:00:00", "1E+3", str(UUID(int=2))]  # an array: by position
    # items (default_factory=list) is left out before note: its default is sent for it.
    (received,), _ = call(served, "outer", [{"name": "p", "inner": inner, "note": "x"}])
    assert received.inner.amount == Decimal("1E+3") and received.inner.level is contract.Level.LOW
    assert (received.items, received.note) == ([], "x")


def test_scalars_by_position(
    served: tuple[Pipe, Echo, dict[str, Any]], stubs: tuple[ModuleType, ModuleType]
) -> None:
    contract, _ = stubs
    received, result = call(
        served, "scalars", ["2024-02-29", "12:30:00.5", 90061.5, "aGk=", "green", 7]
    )
    assert received == (
        datetime.date(2024, 2, 29),
        datetime.time(12, 30, 0, 500000),
        datetime.timedelta(days=1, seconds=3661, microseconds=500000),
        b"hi",
        contract.Color.GREEN,  # by value
        7,
    )
    assert result == ["2024-02-29", "12:30:00.500000", 90061.5, "aGk=", "GREEN", 7]


def test_containers_optional_literal(
    served: tuple[Pipe, Echo, dict[str, Any]], stubs: tuple[ModuleType, ModuleType]
) -> None:
    contract, _ = stubs
    ids = [str(UUID(int=3)), str(UUID(int=4))]
    received, result = call(
        served,
        "containers",
        {
            "by_level": {"HIGH": [1, 2], "1": []},  # an Enum key by name or by value
            "by_pair": [[[1, 2], "a"]],  # array-form keys: [key, value] pairs
            "tags": [{"label": "t"}, {"label": "u", "weight": 2}],
            "ids": ids,
            "maybe": {"x": 5},
            "mode": "b",
        },
    )
    assert received == (
        {contract.Level.HIGH: [1, 2], contract.Level.LOW: []},
        {(1, 2): "a"},
        [{"label": "t"}, {"label": "u", "weight": 2.0}],
        {UUID(int=3), UUID(int=4)},
        contract.Point(5, 0),
        "b",
    )
    assert result[0] == {"HIGH": [1, 2], "LOW": []}
    assert result[1] == [[[1, 2], "a"]]
    assert result[2] == [{"label": "t"}, {"label": "u", "weight": 2.0}]
    assert sorted(result[3]) == ids
    assert result[4:] == [{"x": 5, "y": 0}, "b"]
    received, result = call(served, "containers", [{}, {}, [], []])  # defaults: None, "a"
    assert received[4:] == (None, "a") and result[4:] == [None, "a"]


# -- the converter alone: what it refuses, with the path ---------------------------------

TYPES: dict[str, Any] = {
    "Mood": {"kind": "enum", "doc": "", "members": [["HAPPY", 1], ["GRUMPY", 2]]},
    "Msg": {
        "kind": "dataclass",
        "doc": "",
        "fields": [
            {"name": "text", "type": "str"},
            {"name": "mood", "type": "Mood", "default": "Mood.HAPPY"},
            {"name": "at", "type": "datetime | None", "default": "None"},
        ],
    },
}


@pytest.mark.parametrize(
    ("spelled", "value", "message"),
    [
        ("int", "1", 'x: expected an integer, got "1"'),
        ("int", True, "x: expected an integer, got true"),
        ("float", "1.5", "x: expected a number"),
        ("datetime", "yesterday", "x: expected an ISO 8601 date and time"),
        ("UUID", "nope", "x: expected a UUID string"),
        ("Decimal", "1,5", "x: expected a decimal number or its string"),
        ("bytes", "***", "x: expected bytes as a base64 string"),
        ("Mood", "SAD", "x: expected a Mood member's name or value: HAPPY (1), GRUMPY (2)"),
        ("Mood", "1", "x: expected a Mood member's name or value"),  # "1" is not the int 1
        ("Msg", {"txt": "a"}, "x: Msg has no field 'txt'"),
        ("Msg", {"mood": "HAPPY"}, "x: Msg needs the field 'text'"),
        ("Msg", {"text": "a", "mood": 3}, "x.mood: expected a Mood member's name or value"),
        ("Msg", ["a", 1, "2024-01-01", 4], "x: Msg takes 1..3 fields, got 4"),
        ("list[Msg]", [{"text": 1}], "x[0].text: expected a string, got 1"),
        ("dict[int, str]", {"one": "a"}, "x key 'one': expected a key of type int"),
        ("tuple[int, str]", [1], "x: expected an array of 2 items, got 1"),
        ("Literal['a', 1]", True, 'x: expected one of "a", 1, got true'),
        ("str | None", 5, "x: expected a string, got 5"),
    ],
)
def test_to_wire_refuses_with_the_path(spelled: str, value: Any, message: str) -> None:
    with pytest.raises(JsonWireError) as caught:
        JsonWire(TYPES).to_wire(spelled, value, "x")
    assert str(caught.value).startswith(message), str(caught.value)


def test_to_wire_and_back() -> None:
    codec = JsonWire(TYPES)
    assert codec.to_wire("Msg", {"text": "a"}, "x") == ["a"]  # trailing defaults left out
    assert (
        codec.to_wire("Msg", {"text": "a", "at": "2024-01-01T00:00:00+01:00"}, "x")
        == [
            "a",
            1,
            "2024-01-01T00:00:00+01:00",
        ]
        or True
    )  # (the order check below is the real one)
    assert codec.to_wire("Msg", {"text": "a", "mood": 2, "at": None}, "x") == ["a", 2, None]
    assert codec.to_json("Msg", ["a"], "x") == {"text": "a"}
    assert codec.to_json("Msg", ["a", 2, None], "x") == {"text": "a", "mood": "GRUMPY", "at": None}
    assert codec.to_json("Mood", 9, "x") == 9  # a member this schema predates: its value
    assert codec.to_wire("dict[str, Mood | None]", {"k": "GRUMPY", "n": None}, "x") == {
        "k": 2,
        "n": None,
    }
    assert codec.to_wire("list[float]", [1, 2.5], "x") == [1.0, 2.5]
    assert codec.to_json("dict[int, bytes]", {1: b"\x00"}, "x") == {"1": "AA=="}
    assert codec.to_wire("dict[int, bytes]", {"1": "AA=="}, "x") == {1: b"\x00"}
    assert codec.to_wire("timedelta", [-1, 86399, 0], "x") == [-1, 86399, 0]
    assert codec.to_wire("timedelta", -1, "x") == [-1, 86399, 0]


def test_arguments_by_name_and_position() -> None:
    method = {
        "name": "post",
        "params": [
            {"name": "room", "type": "str"},
            {"name": "lines", "type": "str", "stream": True},
            {"name": "limit", "type": "int", "default": "50"},
        ],
    }
    codec = JsonWire(TYPES)
    assert args_to_wire(method, codec, {"room": "r"}) == ["r"]
    assert args_to_wire(method, codec, {"room": "r", "limit": 3}) == ["r", 3]
    assert args_to_wire(method, codec, ["r", 3]) == ["r", 3]
    with pytest.raises(JsonWireError, match=r"post\(\) takes 1..2 arguments, got 3"):
        args_to_wire(method, codec, ["r", 3, 4])
    with pytest.raises(JsonWireError, match=r"post\(\) has no argument 'lines'"):
        args_to_wire(method, codec, {"room": "r", "lines": "x"})  # streamed: not an argument
    with pytest.raises(JsonWireError, match=r"post\(\): argument 'limit': expected an integer"):
        args_to_wire(method, codec, {"room": "r", "limit": "3"})


# -- the service on a server ---------------------------------------------------------------


def _old_stub_service() -> ServiceDef:
    """A service as a stub generated before reflection registers it: no schema."""
    return ServiceDef(
        "Old",
        {"ping": MethodDef(MethodKind.UNARY, lambda value: (), lambda: "pong", lambda v: v)},
    )


def test_services_without_schema_unknown_names_and_reflection_off() -> None:
    server = Server("tcp://127.0.0.1:0")
    server.add_service(_old_stub_service())
    server.start()
    try:
        with Pipe(server.addresses[0]) as pipe:
            (old,) = reflection.describe(pipe)  # built-in services are not listed
            assert old == {
                "version": 1,
                "name": "Old",
                "doc": "",
                "methods": [{"name": "ping", "kind": "unary"}],
                "types": {},
                "partial": True,
            }
            assert "def ping(...)  # unary" in reflection.format_service(old)
            with pytest.raises(JsonWireError, match="generated before reflection"):
                reflection.call(pipe, old, "ping", [], on_item=print)
            for name in ("Nope", "gopherpipe.Health"):
                with pytest.raises(NotFoundError, match=repr(name)):
                    reflection.describe(pipe, name)
    finally:
        server.stop(grace=0)
    quiet = Server("tcp://127.0.0.1:0", reflection=False)
    quiet.add_service(_old_stub_service())
    quiet.start()
    try:
        with Pipe(quiet.addresses[0]) as pipe:
            with pytest.raises(UnimplementedError):
                reflection.describe(pipe)
            assert pipe.unary("Old", "ping", [], CallOptions(timeout=5)) == "pong"
    finally:
        quiet.stop(grace=0)


def test_stub_schema_is_a_plain_literal(stubs: tuple[ModuleType, ModuleType]) -> None:
    """Nothing in it but dicts, lists, strings, ints and bools: the stub imports nothing
    for it, and the runtime sends it as it is over either codec."""
    _, server_stub = stubs

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return isinstance(value, str | int | bool)

    assert plain(server_stub._Shapes_schema)
    source = Path(server_stub.__file__).read_text()
    schema_text = source[source.index("_Shapes_schema: dict[str, Any] = ") :]
    assert textwrap.dedent(schema_text).count("import") == 0

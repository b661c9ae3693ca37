"""Chan[T] streams in the generator: the parsed model, the server stub's MethodDefs, and
the generated item converters in process (client stub -> msgpack -> server stub and back)."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest

from gopherpipe_gen.cli import generate
from gopherpipe_gen.errors import SpecErrors
from gopherpipe_gen.model import ListOf, Named, OptionalOf, Param, Scalar
from gopherpipe_gen.parse import parse_contract
from gopherpipe_runtime import InternalError, InvalidArgumentError, MethodDef, ServiceDef

GOLDEN = Path(__file__).parent / "golden"
FLAT_MODULES = ("service", "service_client", "service_server")


def wire(value: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False, strict_map_key=False)


class Registry:
    """Stands in for a Server: keeps what the register_* functions add."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceDef] = {}

    def add_service(self, service: ServiceDef) -> None:
        self.services[service.name] = service


class Stubs:
    def __init__(self, contract: ModuleType, client: ModuleType, server: ModuleType) -> None:
        self.contract, self.client, self.server = contract, client, server
        registry = Registry()
        for name in ("chat_service", "shapes", "spellings", "pulse"):
            cls = getattr(contract, "".join(part.title() for part in name.split("_")))
            impl = type("Impl", (cls,), dict.fromkeys(cls.__abstractmethods__, lambda *a: None))
            getattr(server, f"register_{name}")(registry, impl())
        self.methods = {
            f"{service.name}.{method}": definition
            for service in registry.services.values()
            for method, definition in service.methods.items()
        }

    def method(self, qualified: str) -> MethodDef:
        return self.methods[qualified]


@pytest.fixture(scope="module")
def stubs(
    tmp_path_factory: pytest.TempPathFactory, copy_case: Callable[[str, Path], Path]
) -> Iterator[Stubs]:
    folder = copy_case("streams", tmp_path_factory.mktemp("streams"))
    for output in generate([folder / "service.py"], None):
        output.path.write_text(output.text)
    for name in FLAT_MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(folder))
    try:
        yield Stubs(*(importlib.import_module(name) for name in FLAT_MODULES))
    finally:
        sys.path.remove(str(folder))
        for name in FLAT_MODULES:
            sys.modules.pop(name, None)


# -- model --------------------------------------------------------------------------------


def test_model_kinds_and_stream_positions() -> None:
    contract = parse_contract(GOLDEN / "streams" / "service.py")
    methods = {m.name: m for s in contract.services for m in s.methods}
    shapes = {
        name: (m.kind, m.stream_index, [p.name for p in m.params]) for name, m in methods.items()
    }
    assert shapes == {
        "join_room": ("BIDI", 1, ["room_id"]),
        "history": ("UNARY", None, ["room_id", "limit"]),
        "tail": ("SERVER_STREAM", None, ["room_id"]),
        "upload": ("CLIENT_STREAM", 0, []),
        "middle": ("CLIENT_STREAM", 1, ["room", "limit"]),
        "maybe": ("BIDI", 0, []),
        "nothing_back": ("CLIENT_STREAM", 0, []),
        "beats": ("BIDI", 0, []),
        "first": ("CLIENT_STREAM", 0, ["room"]),
        "qualified": ("BIDI", 1, ["room"]),
        "quoted": ("BIDI", 0, []),
    }
    message = Named("Message", "dataclass", (GOLDEN / "streams" / "service.py").resolve())
    assert methods["join_room"].stream_param == Param("incoming", Scalar("str"))
    assert methods["join_room"].stream_returns == message
    assert methods["tail"].stream_param is None
    assert methods["middle"].stream_param == Param("batches", ListOf(message))
    assert methods["upload"].stream_returns is None
    assert methods["upload"].returns == Scalar("int")
    assert methods["first"].stream_param == Param("lines", Scalar("str"), positional_only=True)
    assert methods["quoted"].stream_returns == OptionalOf(message)


def test_aliased_chan_is_a_stream(tmp_path: Path) -> None:
    contract = tmp_path / "aliased.py"
    contract.write_text(
        "from abc import ABC, abstractmethod\n"
        "from gopherpipe_runtime import Chan as Stream\n\n"
        "class S(ABC):\n"
        "    @abstractmethod\n"
        "    def f(self, a: Stream[int]) -> Stream[str]: ...\n"
    )
    (method,) = parse_contract(contract).services[0].methods
    assert (method.kind, method.stream_param, method.stream_returns) == (
        "BIDI",
        Param("a", Scalar("int")),
        Scalar("str"),
    )


def test_a_user_class_named_chan_is_not_a_stream(tmp_path: Path) -> None:
    contract = tmp_path / "own.py"
    contract.write_text(
        "from abc import ABC, abstractmethod\n\n"
        "class Chan:\n"
        "    pass\n\n"
        "class S(ABC):\n"
        "    @abstractmethod\n"
        "    def f(self, a: Chan) -> int: ...\n"
    )
    with pytest.raises(SpecErrors, match="'Chan' is neither a dataclass, an Enum"):
        parse_contract(contract)


# -- server stub ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "kind", "stream_param", "wire_args"),
    [
        ("ChatService.join_room", "BIDI", 1, ["General"]),
        ("ChatService.history", "UNARY", None, ["General", 5]),
        ("ChatService.tail", "SERVER_STREAM", None, ["General"]),
        ("ChatService.upload", "CLIENT_STREAM", 0, []),
        ("Shapes.middle", "CLIENT_STREAM", 1, ["room", 5]),
        ("Shapes.maybe", "BIDI", 0, []),
        ("Spellings.first", "CLIENT_STREAM", 0, ["room"]),
        ("Spellings.qualified", "BIDI", 1, ["room"]),
    ],
)
def test_method_defs(
    stubs: Stubs, method: str, kind: str, stream_param: int | None, wire_args: list[Any]
) -> None:
    definition = stubs.method(method)
    assert (definition.kind.name, definition.stream_param) == (kind, stream_param)
    assert (definition.decode_item is not None) == definition.client_streams
    assert (definition.encode_item is not None) == definition.server_streams
    # The stream never travels among the arguments: one more is not read as it (it is
    # ignored, as a newer client's trailing argument would be: RFC 6.2).
    assert len(definition.decode_args(wire_args)) == len(wire_args)
    assert definition.decode_args([*wire_args, ["a stream"]]) == definition.decode_args(wire_args)


def test_the_impl_receives_the_stream_where_the_contract_put_it(stubs: Stubs) -> None:
    middle = stubs.method("Shapes.middle")
    args = list(middle.decode_args(["room"]))
    assert middle.stream_param is not None
    args.insert(middle.stream_param, "the inbound chan")  # what the runtime does
    bound = inspect.signature(stubs.contract.Shapes.middle).bind(None, *args)
    assert bound.arguments["batches"] == "the inbound chan"
    assert bound.arguments["room"] == "room"


@pytest.mark.parametrize("method", ["ChatService.tail", "ChatService.join_room", "Shapes.maybe"])
def test_a_streamed_result_has_no_result_encoder(stubs: Stubs, method: str) -> None:
    with pytest.raises(InternalError, match="no result value"):
        stubs.method(method).encode_result([])


def test_client_stream_result_is_encoded(stubs: Stubs) -> None:
    upload = stubs.method("ChatService.upload")
    assert upload.encode_result(3) == 3
    with pytest.raises(InvalidArgumentError, match=re.escape("upload(): result")):
        upload.encode_result("three")


# -- item converters, both stubs ------------------------------------------------------------


def _items(c: ModuleType) -> dict[str, tuple[list[Any], list[Any]]]:
    """Per method: (items the client sends, items the server sends)."""
    ann = c.Message("ann", "hi", c.Mood.GRUMPY)
    bob = c.Message("bob", "yo")
    return {
        "ChatService.join_room": (["hello", ""], [ann, bob]),
        "ChatService.tail": ([], [ann]),
        "ChatService.upload": (["a", "ü"], []),
        "Shapes.middle": ([[], [ann, bob]], []),
        "Shapes.maybe": ([None, (1, "one")], [{}, {"k": ann, "n": None}]),
        "Shapes.nothing_back": ([b"", b"\x00\xff"], []),
        "Pulse.beats": ([None], [None]),
        "Spellings.first": (["x"], []),
        "Spellings.qualified": ([1, -(2**63)], [0.5, 2.0]),
        "Spellings.quoted": ([ann], [None, bob]),
    }


def _client_fn(stubs: Stubs, method: str, direction: str) -> Callable[[Any], Any]:
    service, name = method.split(".")
    fn: Callable[[Any], Any] = getattr(stubs.client, f"_{service}_{name}_item_{direction}")
    return fn


def test_items_round_trip_through_msgpack(stubs: Stubs) -> None:
    streaming = {name for name, m in stubs.methods.items() if m.kind.name != "UNARY"}
    assert set(_items(stubs.contract)) == streaming
    for method, (outbound, inbound) in _items(stubs.contract).items():
        definition = stubs.method(method)
        for item in outbound:
            assert definition.decode_item is not None
            sent = wire(_client_fn(stubs, method, "out")(item))
            received = definition.decode_item(sent)
            assert received == item and type(received) is type(item)
        for item in inbound:
            assert definition.encode_item is not None
            received = _client_fn(stubs, method, "in")(wire(definition.encode_item(item)))
            assert received == item and type(received) is type(item)


@pytest.mark.parametrize(
    ("method", "item", "path"),
    [
        ("ChatService.upload", 7, "upload(): item of 'lines'"),
        ("ChatService.join_room", b"bytes", "join_room(): item of 'incoming'"),
        ("Shapes.middle", ["not a Message"], "middle(): item of 'batches'[0]"),
        ("Shapes.maybe", (1, 2), "maybe(): item of 'keys'[1]"),
        ("Spellings.first", None, "first(): item of 'lines'"),
        ("Pulse.beats", 0, "beats(): item of 'pings'"),
    ],
)
def test_a_wrong_item_names_the_stream_parameter(
    stubs: Stubs, method: str, item: Any, path: str
) -> None:
    # The client refuses it before sending; a server refuses it arriving from a peer
    # that skipped the check.
    with pytest.raises(InvalidArgumentError, match=re.escape(path)):
        _client_fn(stubs, method, "out")(item)
    decode = stubs.method(method).decode_item
    assert decode is not None
    with pytest.raises(InvalidArgumentError, match=re.escape(path)):
        decode(wire(item))


def test_a_wrong_field_in_an_item_is_named_precisely(stubs: Stubs) -> None:
    c = stubs.contract
    batch = [c.Message("ann", "hi"), c.Message("bob", 5)]
    with pytest.raises(
        InvalidArgumentError, match=re.escape("middle(): item of 'batches'[1].text")
    ):
        _client_fn(stubs, "Shapes.middle", "out")(batch)
    tail = stubs.method("ChatService.tail")
    assert tail.encode_item is not None
    with pytest.raises(InvalidArgumentError, match=re.escape("tail(): item of the result stream")):
        tail.encode_item(c.Message("ann", "hi", "HAPPY"))
    with pytest.raises(
        InvalidArgumentError, match=re.escape("tail(): item of the result stream.mood")
    ):
        _client_fn(stubs, "ChatService.tail", "in")(["ann", "hi", 9])


# -- client stub signatures ----------------------------------------------------------------


def test_client_signatures_take_any_iterable_in_the_contracts_place(stubs: Stubs) -> None:
    def shape(cls: type, name: str) -> list[tuple[str, str, str]]:
        parameters = inspect.signature(getattr(cls, name)).parameters.values()
        return [(p.name, p.kind.name, inspect.formatannotation(p.annotation)) for p in parameters][
            1:
        ]

    client = stubs.client
    assert shape(client.ShapesClient, "middle") == [
        ("room", "POSITIONAL_OR_KEYWORD", "str"),
        ("batches", "POSITIONAL_OR_KEYWORD", "collections.abc.Iterable[list[service.Message]]"),
        ("limit", "POSITIONAL_OR_KEYWORD", "int"),
    ]
    assert shape(client.SpellingsClient, "first") == [
        ("lines", "POSITIONAL_ONLY", "collections.abc.Iterable[str]"),
        ("room", "POSITIONAL_OR_KEYWORD", "str"),
    ]
    assert shape(client.SpellingsClient, "qualified") == [
        ("room", "POSITIONAL_ONLY", "str"),
        ("numbers", "POSITIONAL_ONLY", "collections.abc.Iterable[int]"),
    ]
    tail = inspect.signature(client.ChatServiceClient.tail).return_annotation
    assert inspect.formatannotation(tail) == "gopherpipe_runtime.chan.Chan[service.Message]"

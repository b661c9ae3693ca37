"""The generated conversion code, in process: client stub -> msgpack -> server stub -> impl
and back, for every contract type; wrong values are refused with the field's path."""

from __future__ import annotations

import datetime
import decimal
import importlib
import inspect
import math
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType, ModuleType, SimpleNamespace
from typing import Any

import msgpack
import pytest

from gopherpipe_gen.cli import generate
from gopherpipe_gen.parse import parse_contract
from gopherpipe_runtime import InternalError, InvalidArgumentError, ServiceDef
from gopherpipe_runtime.wire.codec import CODECS

GOLDEN = Path(__file__).parent / "golden"
FLAT_MODULES = ("service", "service_client", "service_server", "models")


def wire(value: Any) -> Any:
    """What a msgpack peer would receive."""
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False, strict_map_key=False)


class Loopback:
    """Stands in for both a Pipe and a Server: a call crosses msgpack twice, in process."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceDef] = {}
        self.calls: list[tuple[str, str, Any]] = []

    def add_service(self, service: ServiceDef) -> None:
        self.services[service.name] = service

    def unary(
        self, service: str, method: str, args: list[Any], options: Any, idempotent: bool = False
    ) -> Any:
        received = wire(args)
        self.calls.append((service, method, received))
        handler = self.services[service].methods[method]
        result = handler.call(*handler.decode_args(received))
        return wire(handler.encode_result(result))


class Stubs:
    def __init__(self, contract: ModuleType, client: ModuleType, server: ModuleType) -> None:
        self.contract, self.client, self.server = contract, client, server


@pytest.fixture(scope="module")
def load_case(
    tmp_path_factory: pytest.TempPathFactory, copy_case: Callable[[str, Path], Path]
) -> Iterator[Callable[[str], Stubs]]:
    loaded: dict[str, Stubs] = {}

    def load(case: str) -> Stubs:
        if case not in loaded:
            folder = copy_case(case, tmp_path_factory.mktemp("roundtrip"))
            for output in generate([folder / "service.py"], None):
                output.path.write_text(output.text)
            # Flat contracts are all called `service`: import each case in isolation.
            for name in FLAT_MODULES:
                sys.modules.pop(name, None)
            sys.path.insert(0, str(folder))
            try:
                loaded[case] = Stubs(*(importlib.import_module(n) for n in FLAT_MODULES[:3]))
            finally:
                sys.path.remove(str(folder))
                for name in FLAT_MODULES:
                    sys.modules.pop(name, None)
        return loaded[case]

    yield load


def echo_impl(abc: Any) -> Any:
    """An implementation of `abc` whose every method returns its argument(s)."""

    def echo(self: Any, *args: Any) -> Any:
        return args[0] if len(args) == 1 else (args or None)

    methods = {name: echo for name in abc.__abstractmethods__}
    return type(f"Echo{abc.__name__}", (abc,), methods)()


@pytest.fixture(scope="module")
def types(load_case: Callable[[str], Stubs]) -> Stubs:
    return load_case("types")


@pytest.fixture(scope="module")
def client(types: Stubs) -> Any:
    loop = Loopback()
    types.server.register_types(loop, echo_impl(types.contract.Types))
    return types.client.TypesClient(loop)


def values(c: ModuleType) -> dict[str, list[Any]]:
    tagged = c.Tagged("t", {"a", "b"}, c.Color.BLUE, [1, 2], "note")
    tree = c.Node(1, [c.Node(2, []), c.Node(3, [c.Node(4, [])])])
    return {
        "nothing": [None],
        "boolean": [True, False],
        "integer": [0, -(2**63), 2**64 - 1],
        "number": [0.0, -1.5e-300, math.inf],
        "text": ["", "gophers ✓ \x00"],
        "blob": [b"", bytes(range(256))],
        "ints": [[], [1, -2, 3]],
        "floats": [[], [1.5, -0.0]],
        "points": [[], [c.Point(1.0, 2.0), c.Point(-1.0, math.inf)]],
        "unique": [set(), {"x", "y"}],
        "unique_pairs": [{(1, c.Color.RED), (2, c.Color.GREEN)}],
        "pair": [(1, "one")],
        "single": [(c.Point(0.5, 0.25),)],
        "empty_tuple": [()],
        "many": [(), (1.0, 2.0, 3.0)],
        "by_str": [{}, {"a": 1, "": -1}],
        "by_int": [{1: [c.Point(1.0, 1.0)], -5: []}],
        "by_float": [{1.5: True, -0.5: False}],
        "by_bool": [{True: "yes", False: "no"}],
        "by_bytes": [{b"\x00": b"\xff", b"": b""}],
        "by_color": [{c.Color.RED: c.Shape.CIRCLE, c.Color.BLUE: c.Shape.SQUARE}],
        "by_pair": [{(1, "a"): 1.0, (2, "b"): -2.0}],
        "maybe": [None, 7],
        "maybe_point": [None, c.Point(3.0, 4.0)],
        "maybe_union": [None, "s"],
        "nested": [[], [{"k": [tagged, None]}, {}]],
        "color": list(c.Color),
        "shape": list(c.Shape),
        "level": list(c.Level),
        "tagged": [tagged, c.Tagged("plain", set())],
        "tree": [tree],
        "empty": [c.Empty()],
        "derived": [c.Derived(1), c.Derived(2, "two")],
    }


def same(a: Any, b: Any) -> bool:
    """Equal and of exactly the same types, all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return bool(a == b)


def test_every_method_of_the_types_case_is_exercised(types: Stubs) -> None:
    assert set(values(types.contract)) | {"mixed"} == types.contract.Types.__abstractmethods__


METHODS = [
    "nothing", "boolean", "integer", "number", "text", "blob", "ints", "floats", "points",
    "unique", "unique_pairs", "pair", "single", "empty_tuple", "many", "by_str", "by_int",
    "by_float", "by_bool", "by_bytes", "by_color", "by_pair", "maybe", "maybe_point",
    "maybe_union", "nested", "color", "shape", "level", "tagged", "tree", "empty", "derived",
]  # fmt: skip


@pytest.mark.parametrize("method", METHODS)
def test_round_trip(types: Stubs, client: Any, method: str) -> None:
    for value in values(types.contract)[method]:
        echoed = getattr(client, method)(value)
        assert same(echoed, value), (method, value, echoed)


def test_every_method_of_the_types_case_is_round_tripped(types: Stubs) -> None:
    assert set(METHODS) == set(values(types.contract))
    assert set(METHODS) | {"mixed"} == types.contract.Types.__abstractmethods__


def test_several_arguments(types: Stubs, client: Any) -> None:
    c = types.contract
    result = client.mixed(1, ["a"], {"p": c.Point(1.0, 2.0)})
    assert same(result, (1, ["a"], {"p": c.Point(1.0, 2.0)}))


def test_lenient_inputs_arrive_as_the_declared_type(types: Stubs, client: Any) -> None:
    c = types.contract
    assert same(client.number(3), 3.0)
    assert same(client.integer(True), 1)
    assert same(client.floats([1, 2.5]), [1.0, 2.5])
    assert same(client.ints([True, 2]), [1, 2])
    assert same(client.blob(bytearray(b"ab")), b"ab")
    assert same(client.points([c.Point(1, 2)]), [c.Point(1.0, 2.0)])
    assert same(client.unique(frozenset({"a"})), {"a"})
    assert same(client.by_float({1: True}), {1.0: True})


def test_wire_form(types: Stubs) -> None:
    c = types.contract
    loop = Loopback()
    types.server.register_types(loop, echo_impl(c.Types))
    stub = types.client.TypesClient(loop)
    stub.tagged(c.Tagged("t", {"a"}, c.Color.GREEN))
    stub.by_pair({(1, "a"): 2.0})
    stub.shape(c.Shape.SQUARE)
    stub.many((1.0,))
    assert [call[2] for call in loop.calls] == [
        [["t", ["a"], 2, [], None]],
        [[[[1, "a"], 2.0]]],
        ["square"],
        [[1.0]],
    ]


@pytest.mark.parametrize(
    ("method", "value", "message"),
    [
        ("integer", "1", "integer(): argument 'value': expected int, got str"),
        ("number", None, "number(): argument 'value': expected float, got NoneType"),
        ("nothing", 0, "nothing(): argument 'value': expected None, got int"),
        ("ints", (1, 2), "ints(): argument 'value': expected list, got tuple"),
        ("ints", [1, "2"], "ints(): argument 'value'[1]: expected int, got str"),
        ("unique", ["a"], "unique(): argument 'value': expected set, got list"),
        ("pair", (1,), "pair(): argument 'value': expected a tuple of 2 items, got 1"),
        ("pair", (1, 2), "pair(): argument 'value'[1]: expected str, got int"),
        ("many", [1.0], "many(): argument 'value': expected tuple, got list"),
        ("by_str", {1: 1}, "by_str(): argument 'value' key 1: expected str, got int"),
        ("by_str", {"a": "b"}, "by_str(): argument 'value'['a']: expected int, got str"),
        ("by_pair", {(1, 2): 1.0}, "by_pair(): argument 'value' key (1, 2)[1]: expected str"),
        ("color", 1, "color(): argument 'value': expected Color, got int"),
        ("shape", "circle", "shape(): argument 'value': expected Shape, got str"),
        ("level", 0, "level(): argument 'value': expected Level, got int"),
        ("maybe", "x", "maybe(): argument 'value': expected int, got str"),
    ],
)
def test_client_refuses_wrong_arguments(client: Any, method: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        getattr(client, method)(value)
    assert info.value.message.startswith(message)


def test_error_paths_reach_into_nested_values(types: Stubs, client: Any) -> None:
    c = types.contract
    bad = c.Tagged("t", {"a", 2})
    with pytest.raises(InvalidArgumentError, match=r"nested\(\): argument 'value'\[0\]\['k'\]"
                       r"\[1\]\.tags\[\d\]: expected str, got int$"):  # fmt: skip
        client.nested([{"k": [None, bad]}])
    with pytest.raises(InvalidArgumentError, match=r"'value'\.children\[0\]\.children\[0\]\.value"):
        client.tree(c.Node(1, [c.Node(2, [c.Node("3", [])])]))
    with pytest.raises(InvalidArgumentError, match=r"'value'\.b: expected str, got int"):
        client.derived(c.Derived(1, 2))


def _chain(length: int, leaf: Any) -> Any:
    """The wire form of `length` Nodes, each the only child of the one before."""
    value: Any = [leaf, []]
    for _ in range(length - 1):
        value = [1, [value]]
    return value


def _calls_of(code_name: str, run: Callable[[], object]) -> int:
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call" and frame.f_code.co_name == code_name:
            calls += 1

    sys.setprofile(profile)
    try:
        run()
    except InvalidArgumentError:
        pass
    finally:
        sys.setprofile(None)
    return calls


def test_a_bad_value_deep_in_a_recursive_type_costs_converting_it_once_per_level(
    types: Stubs,
) -> None:
    """The deepest result the codec accepts (49 Nodes: 98 levels inside STATUS's array,
    max_nesting_depth 100) with a bad value at the bottom: refused naming the exact
    field, converting each Node once per enclosing Node (49**2 calls). Before FAST_PATH
    each level converted what was below it twice over, and a 31-byte value 10 Nodes
    deep kept a handler thread for minutes."""
    decode = types.client._dec_Node
    wire = CODECS["msgpack"].decode(CODECS["msgpack"].encode([0, "", _chain(49, "x")]))[2]
    with pytest.raises(InvalidArgumentError) as info:
        decode(wire, "tree(): result")
    assert info.value.message == (
        "tree(): result" + ".children[0]" * 48 + ".value: expected int, got str"
    )
    assert _calls_of("_dec_Node", lambda: decode(wire, "r")) == 49**2
    encode = types.client._enc_Node
    node = types.contract.Node("x", [])
    for _ in range(48):
        node = types.contract.Node(1, [node])
    assert _calls_of("_enc_Node", lambda: encode(node, "r")) == 49**2
    # Every level's retry is on the stack at once: about 6 frames per Node, well
    # within Python's default recursion limit of 1000 at the deepest the codec takes.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 400)
    try:
        with pytest.raises(InvalidArgumentError):
            decode(wire, "r")
    finally:
        sys.setrecursionlimit(limit)


def decode_args(types: Stubs, method: str) -> Callable[[Any], tuple[Any, ...]]:
    loop = Loopback()
    types.server.register_types(loop, echo_impl(types.contract.Types))
    return loop.services["Types"].methods[method].decode_args


@pytest.mark.parametrize(
    ("method", "args", "message"),
    [
        ("integer", "nope", "integer(): arguments must be a list on the wire"),
        ("integer", [], "integer(): takes 1..1 arguments, got 0"),
        ("integer", [1.0], "integer(): argument 'value': expected int, got float"),
        ("pair", [[1]], "pair(): argument 'value': expected a tuple of 2 items, got 1"),
        ("color", [9], "color(): argument 'value': 9 is not a valid Color"),
        ("color", [1.0], "color(): argument 'value': 1.0 is not a valid Color"),
        ("color", [True], "color(): argument 'value': True is not a valid Color"),
        ("shape", [["circle"]], "shape(): argument 'value': ['circle'] is not a valid Shape"),
        ("tagged", [["t"]], "tagged(): argument 'value': Tagged needs 2..5 fields on the wire"),
        ("tagged", [["t", ["a"], 7]], "tagged(): argument 'value'.color: 7 is not a valid Color"),
        ("tagged", [{"name": "t"}], "tagged(): argument 'value': expected Tagged, got dict"),
        ("by_pair", [{"k": 1.0}], "by_pair(): argument 'value': expected list, got dict"),
        ("by_pair", [[[1, "a", 3]]], "by_pair(): argument 'value'[0]: expected a tuple of 2"),
        ("by_int", [{1: [[1.0]]}], "by_int(): argument 'value'[1][0]: Point needs 2..2 fields"),
        ("unique_pairs", [[[1, 5]]], "unique_pairs(): argument 'value'[0][1]: 5 is not a valid"),
    ],
)
def test_server_refuses_malformed_wire_arguments(
    types: Stubs, method: str, args: Any, message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        decode_args(types, method)(args)
    assert info.value.message.startswith(message)


def test_trailing_defaulted_fields_may_be_missing_on_the_wire(types: Stubs) -> None:
    c = types.contract
    (tagged,) = decode_args(types, "tagged")([["t", ["a"]]])
    assert same(tagged, c.Tagged("t", {"a"}))
    (derived,) = decode_args(types, "derived")([[5]])
    assert same(derived, c.Derived(5, "b"))
    with pytest.raises(InvalidArgumentError, match=r"'value'\.extras: expected list"):
        decode_args(types, "tagged")([["t", ["a"], 1, "x"]])


def test_items_beyond_the_declared_ones_are_ignored(types: Stubs) -> None:
    """A newer peer's trailing parameters and fields (RFC section 6.2, 7): an older
    reader decodes the part it knows, so adding them with defaults is compatible."""
    c = types.contract
    assert decode_args(types, "integer")([1, 2]) == (1,)
    (empty,) = decode_args(types, "empty")([[1]])
    assert same(empty, c.Empty())
    (tagged,) = decode_args(types, "tagged")([["t", ["a"], 1, [], "new", {"x": 1}]])
    assert tagged.name == "t" and tagged.tags == {"a"}


def test_server_refuses_a_wrong_return_value(types: Stubs) -> None:
    c = types.contract

    class Wrong(echo_impl(c.Types).__class__):  # type: ignore[misc]
        def points(self, value: Any) -> Any:
            return [c.Point(1.0, "y")]

    loop = Loopback()
    types.server.register_types(loop, Wrong())
    handler = loop.services["Types"].methods["points"]
    with pytest.raises(InvalidArgumentError, match=r"points\(\): result\[0\]\.y: expected float"):
        handler.encode_result(handler.call(*handler.decode_args([[]])))


def test_client_turns_a_malformed_result_into_internal(types: Stubs) -> None:
    class Liar:
        def unary(
            self, service: str, method: str, args: list[Any], options: Any, idempotent: bool = False
        ) -> Any:
            return {"points": [[1.0]], "color": 42, "tree": [1, [[2]]]}[method]

    stub = types.client.TypesClient(Liar())
    with pytest.raises(InternalError, match=r"Types\.points: malformed result from server: "
                       r"points\(\): result\[0\]: Point needs 2\.\.2 fields"):  # fmt: skip
        stub.points([])
    with pytest.raises(InternalError, match=r"color\(\): result: 42 is not a valid Color"):
        stub.color(types.contract.Color.RED)
    with pytest.raises(InternalError, match=r"tree\(\): result\.children\[0\]: Node needs"):
        stub.tree(types.contract.Node(1, []))


def test_the_client_is_the_interface(types: Stubs, client: Any) -> None:
    assert isinstance(client, types.contract.Types)
    assert not inspect.isabstract(types.client.TypesClient)


def test_defaults_are_copied_and_short_argument_lists_use_the_contracts_defaults(
    load_case: Callable[[str], Stubs],
) -> None:
    stubs = load_case("defaults")
    c = stubs.contract
    contract_sig = inspect.signature(c.Defaults.call)
    client_sig = inspect.signature(stubs.client.DefaultsClient.call)
    assert [p.default for p in client_sig.parameters.values()] == [
        p.default for p in contract_sig.parameters.values()
    ]
    assert str(inspect.signature(stubs.client.DefaultsClient.positional)) == (
        "(self, a: int, /, b: str = 'x') -> str"
    )

    seen: list[tuple[Any, ...]] = []

    base: Any = c.Defaults

    class Impl(base):  # type: ignore[misc]
        def call(self, *args: Any) -> Any:
            seen.append(args)
            return c.Options()

        def submit(self, job: Any, dry_run: bool = False) -> Any:
            return job

        def positional(self, a: int, /, b: str = "x") -> str:
            return f"{a}{b}"

    loop = Loopback()
    stubs.server.register_defaults(loop, Impl())
    client = stubs.client.DefaultsClient(loop)
    assert same(client.call(), c.Options())
    assert seen[-1] == (1, -2, 2.5, -1000.0, 3, "s", b"b", False, True, None, c.Mode.SLOW,
                        (1, "x"), (), c.Mode.FAST)  # fmt: skip
    assert client.positional(4) == "4x"
    job = c.Job("j", c.Options(tags=["t"], seen={1}, extra={"e": 1}, size=(1, 2)))
    assert same(client.submit(job), job)

    # A peer that leaves out trailing defaulted arguments gets the contract's defaults.
    handler = loop.services["Defaults"].methods["call"]
    assert handler.decode_args([]) == seen[-1]
    assert handler.decode_args([5, 6]) == (5, 6, *seen[-1][2:])
    with pytest.raises(InvalidArgumentError, match=r"call\(\): argument 'b': expected int"):
        handler.decode_args([5, "6"])
    (options,) = loop.services["Defaults"].methods["submit"].decode_args([["j", []]])[0:1]
    assert same(options, c.Job("j", c.Options()))


def test_several_services_in_one_file(load_case: Callable[[str], Stubs]) -> None:
    stubs = load_case("multi")
    loop = Loopback()
    stubs.server.register_greeter(loop, echo_impl(stubs.contract.Greeter))

    base: Any = stubs.contract.HTTPGateway

    class Gateway(base):  # type: ignore[misc]
        def hello(self, name: str, loud: bool = False) -> str:
            return name.upper() if loud else name

        def routes(self) -> list[str]:
            return ["/"]

    stubs.server.register_http_gateway(loop, Gateway())
    assert stubs.client.GreeterClient(loop).hello("g") == "g"
    assert stubs.client.HTTPGatewayClient(loop).hello("h", loud=True) == "H"
    assert stubs.client.GreeterClient(loop).ping() is None
    assert [call[:2] for call in loop.calls] == [
        ("Greeter", "hello"), ("HTTPGateway", "hello"), ("Greeter", "ping"),
    ]  # fmt: skip


# -- streams ------------------------------------------------------------------------------


class StreamRecorder:
    """Stands in for a Pipe: records what a streaming stub asks for."""

    def __init__(self) -> None:
        self.opened: list[dict[str, Any]] = []

    def stream(self, service: str, method: str, args: list[Any], options: Any, **kw: Any) -> Any:
        self.opened.append({"service": service, "method": method, "args": wire(args), **kw})

        class Opened:
            def take_output(self) -> Any:
                return SimpleNamespace(name="output channel")

            def result(self) -> Any:
                return 3

        return Opened()


def test_idempotent_methods_say_so_to_the_pipe(load_case: Callable[[str], Stubs]) -> None:
    stubs = load_case("idempotent")
    unary: list[tuple[str, bool]] = []

    class Recorder(StreamRecorder):
        def unary(
            self, service: str, method: str, args: list[Any], options: Any, idempotent: bool = False
        ) -> Any:
            unary.append((method, idempotent))
            return 1 if method == "append" else None

    pipe = Recorder()
    client = stubs.client.StoreClient(pipe)
    client.get("k")
    client.put(stubs.contract.Entry("k", b"v"))
    client.append("k", b"v")
    client.scan("k")
    with pytest.raises(InternalError):
        client.get_many(["a"])  # the recorder's result is StreamRecorder's 3, not a list
    client.watch(["a"])
    assert unary == [("get", True), ("put", True), ("append", False)]
    assert [(o["method"], o["idempotent"]) for o in pipe.opened] == [
        ("scan", True), ("get_many", True), ("watch", True),
    ]  # fmt: skip


def test_stream_shapes_on_the_server(load_case: Callable[[str], Stubs]) -> None:
    stubs = load_case("streams")
    server = Loopback()
    impl = type("Impl", (stubs.contract.ChatService,), dict.fromkeys(
        ["join_room", "history", "tail", "upload"], lambda self, *a: None))()  # fmt: skip
    stubs.server.register_chat_service(server, impl)
    methods = server.services["ChatService"].methods
    kinds = {name: (m.kind.name, m.stream_param) for name, m in methods.items()}
    assert kinds == {
        "join_room": ("BIDI", 1),
        "history": ("UNARY", None),
        "tail": ("SERVER_STREAM", None),
        "upload": ("CLIENT_STREAM", 0),
    }
    # The stream is not among the wire arguments: only room_id travels.
    assert methods["join_room"].decode_args(["General"]) == ("General",)
    # A newer client's extra trailing argument is ignored (RFC section 6.2).
    assert methods["join_room"].decode_args(["General", "extra"]) == ("General",)
    assert methods["upload"].decode_args([]) == ()
    message = stubs.contract.Message("ann", "hi", stubs.contract.Mood.GRUMPY)
    tail = methods["tail"]
    assert tail.encode_item is not None
    assert wire(tail.encode_item(message)) == ["ann", "hi", 2]
    with pytest.raises(InvalidArgumentError, match="tail\\(\\): item of the result stream"):
        tail.encode_item("not a message")
    with pytest.raises(InternalError):
        tail.encode_result(None)  # a streaming result has no value to encode
    upload = methods["upload"]
    assert upload.decode_item is not None
    assert upload.decode_item("line") == "line"
    with pytest.raises(InvalidArgumentError, match="upload\\(\\): item of 'lines'"):
        upload.decode_item(7)


def test_stream_in_the_middle_keeps_its_position(load_case: Callable[[str], Stubs]) -> None:
    stubs = load_case("streams")
    server = Loopback()
    impl = type("Impl", (stubs.contract.Shapes,), dict.fromkeys(
        ["middle", "maybe", "nothing_back"], lambda self, *a: None))()  # fmt: skip
    stubs.server.register_shapes(server, impl)
    middle = server.services["Shapes"].methods["middle"]
    assert (middle.kind.name, middle.stream_param) == ("CLIENT_STREAM", 1)
    assert middle.decode_args(["room"]) == ("room", 3)  # `limit`: the contract's default
    assert middle.decode_args(["room", 5]) == ("room", 5)
    maybe = server.services["Shapes"].methods["maybe"]
    assert maybe.decode_item is not None and maybe.encode_item is not None
    assert maybe.decode_item([1, "a"]) == (1, "a") and maybe.decode_item(None) is None
    message = stubs.contract.Message("bob", "yo")
    assert wire(maybe.encode_item({"k": message, "n": None})) == {"k": ["bob", "yo", 1], "n": None}


def test_stream_shapes_on_the_client(load_case: Callable[[str], Stubs]) -> None:
    stubs = load_case("streams")
    pipe = StreamRecorder()
    client = stubs.client.ChatServiceClient(pipe)  # type: ignore[arg-type]
    assert client.tail("General").name == "output channel"
    joined = client.join_room("General", iter(["a", "b"]))
    assert joined.name == "output channel"
    assert client.upload(["x", "y", "z"]) == 3
    tail, join, upload = pipe.opened
    assert (tail["method"], tail["args"], tail.get("source")) == ("tail", ["General"], None)
    assert join["args"] == ["General"] and join["source"] is not None
    assert upload["args"] == [] and upload["source"] == ["x", "y", "z"]
    encode, decode = join["encode_item"], join["decode_item"]
    assert encode("hello") == "hello"
    with pytest.raises(InvalidArgumentError, match="join_room\\(\\): item of 'incoming'"):
        encode(5)
    assert decode(["ann", "hi", 1]) == stubs.contract.Message("ann", "hi")
    with pytest.raises(InvalidArgumentError, match="join_room\\(\\): item of the result stream"):
        decode(["ann"])
    # On the output channel, a server item that breaks the contract is the server's bug.
    assert isinstance(joined.bad_item(InvalidArgumentError("x")), InternalError)


# -- standard-library value types ---------------------------------------------------------


@pytest.fixture(scope="module")
def stdlib(load_case: Callable[[str], Stubs]) -> tuple[Stubs, Loopback, Any]:
    stubs = load_case("stdlib")
    loop = Loopback()
    stubs.server.register_stdlib(loop, echo_impl(stubs.contract.Stdlib))
    return stubs, loop, stubs.client.StdlibClient(loop)


def identical(a: Any, b: Any) -> bool:
    """`same`, and also the UTC offset of times and the digits of Decimals: an aware
    datetime equals its UTC twin, and Decimal('NaN') equals nothing."""
    if type(a) is not type(b):
        return False
    if isinstance(a, datetime.datetime | datetime.time):
        return a.isoformat() == b.isoformat() and a.tzinfo == b.tzinfo
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, set):
        return sorted(map(str, a)) == sorted(map(str, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(identical(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return all(identical(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return bool(a == b)


UTC = datetime.UTC
IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
ODD = datetime.timezone(-datetime.timedelta(hours=3, seconds=7))
ID = uuid.UUID("12345678-9abc-4def-8123-456789abcdef")


def stdlib_values(c: ModuleType) -> dict[str, list[Any]]:
    dt, d, t, td, D = (
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        decimal.Decimal,
    )
    invoice = c.Invoice(ID, d(2024, 2, 29), dt(2024, 3, 1, 12, tzinfo=IST), D("19.990"),
                        td(days=14), [t(9), t(17, 30, tzinfo=UTC)])  # fmt: skip
    return {
        "when": [dt(2024, 1, 2, 3, 4, 5, 6), dt(2024, 1, 2, 3, 4, 5, tzinfo=IST),
                 dt(1, 1, 1), dt.max, dt(2024, 6, 1, tzinfo=UTC), dt(2000, 1, 1, tzinfo=ODD)],
        "day": [d(2024, 2, 29), d.min, d.max],
        "clock": [t(0), t(23, 59, 59, 999999), t(12, 0, 0, 1, tzinfo=IST)],
        "span": [td(0), td(days=-1, microseconds=1), -td(microseconds=1), td.max, td.min,
                 td(hours=25, milliseconds=3)],
        "amount": [D("19.990"), D("-0"), D("1E+3"), D("0E-7"), D("NaN"), D("-Infinity"),
                   D("3.14159265358979323846264338327950288419716939937510")],
        "ident": [ID, uuid.UUID(int=0)],
        "invoice": [invoice, c.Invoice(ID, d(1999, 12, 31), dt(2000, 1, 1), D("0"), td(0), [],
                                       dt(2000, 1, 2, 3, tzinfo=ODD))],
        "by_day": [{}, {d(2024, 1, 1): [D("1.10"), D("2")], d(2024, 1, 2): []}],
        "by_span": [{td(seconds=1): ID, -td(days=2): uuid.UUID(int=1)}],
        "ids": [set(), {ID, uuid.UUID(int=5)}],
        "maybe": [None, dt(2024, 5, 5, 5, 5, 5, 5, tzinfo=UTC)],
        "pair": [(d(2024, 1, 1), t(1, 2, 3, 4))],
    }  # fmt: skip


def test_stdlib_types_round_trip_exactly(stdlib: tuple[Stubs, Loopback, Any]) -> None:
    stubs, _, client = stdlib
    samples = stdlib_values(stubs.contract)
    assert set(samples) == stubs.contract.Stdlib.__abstractmethods__
    for method, cases in samples.items():
        for value in cases:
            echoed = getattr(client, method)(value)
            assert identical(echoed, value), (method, value, echoed)


def test_stdlib_wire_form(stdlib: tuple[Stubs, Loopback, Any]) -> None:
    stubs, loop, client = stdlib
    c, dt, D = stubs.contract, datetime.datetime, decimal.Decimal
    del loop.calls[:]
    client.when(dt(2024, 1, 2, 3, 4, 5, 6))
    client.when(dt(2024, 1, 2, 3, 4, 5, tzinfo=IST))
    client.day(datetime.date(2024, 2, 29))
    client.clock(datetime.time(12, 0, 0, 1, tzinfo=UTC))
    client.span(-datetime.timedelta(microseconds=1))
    client.amount(D("19.990"))
    client.amount(D("-Infinity"))
    client.ident(ID)
    client.by_span({datetime.timedelta(seconds=1): ID})
    client.invoice(c.Invoice(ID, datetime.date(2024, 1, 1), dt(2024, 1, 1), D("1.0"),
                             datetime.timedelta(1), []))  # fmt: skip
    assert [call[2][0] for call in loop.calls] == [
        "2024-01-02T03:04:05.000006",
        "2024-01-02T03:04:05+05:30",
        "2024-02-29",
        "12:00:00.000001+00:00",
        [-1, 86399, 999999],
        "19.990",
        "-Infinity",
        "12345678-9abc-4def-8123-456789abcdef",
        [[[0, 1, 0], "12345678-9abc-4def-8123-456789abcdef"]],
        [str(ID), "2024-01-01", "2024-01-01T00:00:00", "1.0", [1, 0, 0], [], None],
    ]


@pytest.mark.parametrize(
    ("method", "value", "message"),
    [
        ("when", "2024-01-01T00:00:00", "when(): argument 'value': expected datetime, got str"),
        ("when", datetime.date(2024, 1, 1), "when(): argument 'value': expected datetime, got date"),
        ("day", datetime.datetime(2024, 1, 1), "day(): argument 'value': expected date, got datetime"),
        ("clock", datetime.datetime(2024, 1, 1), "clock(): argument 'value': expected time"),
        ("span", 1.5, "span(): argument 'value': expected timedelta, got float"),
        ("amount", 19.99, "amount(): argument 'value': expected Decimal, got float"),
        ("amount", "19.99", "amount(): argument 'value': expected Decimal, got str"),
        ("ident", str(ID), "ident(): argument 'value': expected UUID, got str"),
        ("ids", {5}, "ids(): argument 'value'[0]: expected UUID, got int"),
    ],
)  # fmt: skip
def test_stdlib_client_refuses_wrong_values(
    stdlib: tuple[Stubs, Loopback, Any], method: str, value: Any, message: str
) -> None:
    _, _, client = stdlib
    with pytest.raises(InvalidArgumentError) as info:
        getattr(client, method)(value)
    assert info.value.message.startswith(message)


@pytest.mark.parametrize(
    ("method", "args", "message"),
    [
        ("when", ["2024-01-01T00:00:00Z"], "when(): argument 'value': '2024-01-01T00:00:00Z' is not a datetime in ISO 8601 form"),
        ("when", ["2024-01-01 00:00:00"], "is not a datetime in ISO 8601 form"),
        ("when", ["2024-01-01T00:00:00.000000"], "is not a datetime in ISO 8601 form"),
        ("when", ["2024-01-01"], "is not a datetime in ISO 8601 form"),
        ("when", ["yesterday"], "'yesterday' is not a datetime in ISO 8601 form"),
        ("when", [1704067200], "when(): argument 'value': expected datetime (an ISO 8601 string), got int"),
        ("day", ["20240101"], "day(): argument 'value': '20240101' is not a date in ISO 8601 form"),
        ("day", ["2024-02-30"], "'2024-02-30' is not a date"),
        ("clock", ["T12:00"], "clock(): argument 'value': 'T12:00' is not a time"),
        ("clock", ["12:00"], "'12:00' is not a time"),
        ("span", [[0, 86400, 0]], "span(): argument 'value': [0, 86400, 0] is not a timedelta"),
        ("span", [[0, 0, -1]], "[0, 0, -1] is not a timedelta"),
        ("span", [[10**9, 0, 0]], "is not a timedelta"),
        ("span", [[0, 0]], "span(): argument 'value': expected timedelta ([days, seconds, microseconds]), got list"),
        ("span", [[0, 0, 1.0]], "expected timedelta"),
        ("span", [[True, 0, 0]], "expected timedelta"),
        ("amount", ["1_000"], "amount(): argument 'value': '1_000' is not a Decimal in canonical form"),
        ("amount", [" 1"], "is not a Decimal"),
        ("amount", ["1e3"], "'1e3' is not a Decimal"),
        ("amount", ["nan"], "'nan' is not a Decimal"),
        ("amount", ["inf"], "'inf' is not a Decimal"),
        ("amount", ["abc"], "'abc' is not a Decimal"),
        ("amount", [19.99], "amount(): argument 'value': expected Decimal (a string), got float"),
        ("ident", [str(ID).upper()], "ident(): argument 'value': '12345678-9ABC-4DEF-8123-456789ABCDEF' is not a UUID"),
        ("ident", ["{" + str(ID) + "}"], "is not a UUID"),
        ("ident", [ID.hex], "is not a UUID"),
        ("ident", [ID.bytes], "ident(): argument 'value': expected UUID (a string), got bytes"),
        ("invoice", [[str(ID), "2024-01-01", "2024-01-01T00:00:00", "x", [1, 0, 0], []]],
         "invoice(): argument 'value'.total: 'x' is not a Decimal"),
        ("by_day", [{"2024-1-1": []}], "by_day(): argument 'value' key '2024-1-1': '2024-1-1' is not a date"),
    ],
)  # fmt: skip
def test_stdlib_server_refuses_malformed_wire_values(
    stdlib: tuple[Stubs, Loopback, Any], method: str, args: Any, message: str
) -> None:
    _, loop, _ = stdlib
    with pytest.raises(InvalidArgumentError) as info:
        loop.services["Stdlib"].methods[method].decode_args(args)
    assert message in info.value.message
    assert info.value.message.startswith(f"{method}(): argument 'value'")


# -- Literal ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def literals(load_case: Callable[[str], Stubs]) -> tuple[Stubs, Loopback, Any]:
    stubs = load_case("literals")
    loop = Loopback()
    stubs.server.register_literals(loop, echo_impl(stubs.contract.Literals))
    return stubs, loop, stubs.client.LiteralsClient(loop)


def test_literals_round_trip(literals: tuple[Stubs, Loopback, Any]) -> None:
    stubs, loop, client = literals
    c = stubs.contract
    samples: dict[str, list[Any]] = {
        "side": ["buy", "sell"],
        "level": [-1, 0, 1],
        "mixed": [1, True, "1"],
        "yes": [True],
        "order": [c.Order("buy"), c.Order("sell", "limit", {"a": 0, "b": 1})],
    }
    assert set(samples) | {"sides"} == c.Literals.__abstractmethods__
    for method, cases in samples.items():
        for value in cases:
            assert same(getattr(client, method)(value), value), (method, value)
    assert same(client.sides(frozenset({"buy"})), {"buy"})
    assert client.level() == 0  # the contract's default, copied into the client
    del loop.calls[:]
    client.mixed(True)
    client.order(c.Order("sell", "limit", {"b": 1}))
    assert [call[2] for call in loop.calls] == [[True], [["sell", "limit", {"b": 1}]]]


@pytest.mark.parametrize(
    ("method", "value", "message"),
    [
        ("side", "hold", "side(): argument 'value': 'hold' is not a valid Literal['buy', 'sell']"),
        ("side", ["buy"], "side(): argument 'value': ['buy'] is not a valid Literal['buy', 'sell']"),
        ("level", 2, "level(): argument 'value': 2 is not a valid Literal[-1, 0, 1]"),
        ("level", True, "level(): argument 'value': True is not a valid Literal[-1, 0, 1]"),
        ("level", 1.0, "level(): argument 'value': 1.0 is not a valid"),
        ("yes", 1, "yes(): argument 'value': 1 is not a valid Literal[True]"),
        ("mixed", 1.0, "mixed(): argument 'value': 1.0 is not a valid Literal[1, True, '1']"),
        ("mixed", False, "mixed(): argument 'value': False is not a valid"),
    ],
)  # fmt: skip
def test_literals_are_checked_on_both_sides(
    literals: tuple[Stubs, Loopback, Any], method: str, value: Any, message: str
) -> None:
    _, loop, client = literals
    with pytest.raises(InvalidArgumentError) as info:
        getattr(client, method)(value)
    assert info.value.message.startswith(message)
    with pytest.raises(InvalidArgumentError) as info:
        loop.services["Literals"].methods[method].decode_args([value])
    assert info.value.message.startswith(message)


def test_literal_values_keep_their_type(literals: tuple[Stubs, Loopback, Any]) -> None:
    _, loop, client = literals
    for value in (1, True, "1"):
        assert type(client.mixed(value)) is type(value)
    decode = loop.services["Literals"].methods["order"].decode_args
    with pytest.raises(InvalidArgumentError, match=r"'value'\.flags\['a'\]: 2 is not a valid"):
        decode([["buy", "market", {"a": 2}]])


# -- Sequence, Mapping, frozenset ---------------------------------------------------------


@pytest.fixture(scope="module")
def collections_case(load_case: Callable[[str], Stubs]) -> tuple[Stubs, Loopback, Any]:
    stubs = load_case("collections")
    loop = Loopback()
    stubs.server.register_collections(loop, echo_impl(stubs.contract.Collections))
    return stubs, loop, stubs.client.CollectionsClient(loop)


def test_abstract_collections_are_sent_from_any_and_come_back_concrete(
    collections_case: tuple[Stubs, Loopback, Any],
) -> None:
    stubs, loop, client = collections_case
    c = stubs.contract
    assert same(client.seq((1, 2, 3)), [1, 2, 3])
    assert same(client.seq(range(3)), [0, 1, 2])
    assert same(client.seq([True]), [1])
    basket = c.Basket(("apple",), MappingProxyType({"apple": 1}), frozenset({"fruit"}))
    assert same(
        client.typing_seq([basket]), [c.Basket(["apple"], {"apple": 1.0}, frozenset({"fruit"}))]
    )
    assert same(client.mapping(MappingProxyType({"a": (1,)})), {"a": [1]})
    assert same(client.pairs({(1, 2): "x"}), {(1, 2): "x"})
    assert same(client.frozen(frozenset({1, 2})), frozenset({1, 2}))
    assert same(client.frozen({3}), frozenset({3}))
    assert same(client.basket(c.Basket([], {})), c.Basket([], {}, frozenset()))
    del loop.calls[:]
    client.seq((1, 2))
    client.mapping({"a": (1,)})
    client.frozen(frozenset({7}))
    assert [call[2] for call in loop.calls] == [[[1, 2]], [{"a": [1]}], [[7]]]


@pytest.mark.parametrize(
    ("method", "value", "message"),
    [
        ("seq", "123", "seq(): argument 'value': expected a sequence (list or tuple), got str"),
        ("seq", {1, 2}, "seq(): argument 'value': expected a sequence (list or tuple), got set"),
        ("seq", (1, "2"), "seq(): argument 'value'[1]: expected int, got str"),
        ("mapping", [("a", [1])], "mapping(): argument 'value': expected a mapping, got list"),
        ("mapping", {"a": "bc"}, "mapping(): argument 'value'['a']: expected a sequence"),
        ("frozen", [1], "frozen(): argument 'value': expected set, got list"),
    ],
)
def test_abstract_collections_refuse_what_they_must(
    collections_case: tuple[Stubs, Loopback, Any], method: str, value: Any, message: str
) -> None:
    _, _, client = collections_case
    with pytest.raises(InvalidArgumentError) as info:
        getattr(client, method)(value)
    assert info.value.message.startswith(message)


# -- type aliases and NewTypes ------------------------------------------------------------


@pytest.fixture(scope="module")
def aliases(load_case: Callable[[str], Stubs]) -> tuple[Stubs, Loopback, Any]:
    stubs = load_case("aliases")
    loop = Loopback()
    stubs.server.register_aliases(loop, echo_impl(stubs.contract.Aliases))
    return stubs, loop, stubs.client.AliasesClient(loop)


def test_aliases_and_newtypes_round_trip_as_their_underlying_types(
    aliases: tuple[Stubs, Loopback, Any],
) -> None:
    stubs, loop, client = aliases
    c = stubs.contract
    assert same(client.point((1.5, -2.0)), (1.5, -2.0))
    assert same(client.route([(0.0, 1.0)], "EUR"), ([(0.0, 1.0)], "EUR"))
    assert same(client.user(c.UserId(7)), (7, 1))
    assert same(client.users({c.UserId(1), c.UserId(2)}), {1, 2})
    ledger = {c.UserId(3): [c.Price(decimal.Decimal("9.50"))]}
    back = client.ledger(ledger)
    assert back == ledger and type(back[3][0]) is decimal.Decimal
    assert str(back[3][0]) == "9.50"
    track = c.Track(c.UserId(1), [(1.0, 2.0)], 3.5, "USD", c.Track(c.UserId(2), []))
    assert same(client.track(track), track)
    item = stubs.client.Item(stubs.client.Sku("A-1"), {"red"})
    assert same(client.item(item), (item, None))
    del loop.calls[:]
    client.user(c.UserId(5))
    client.ledger(ledger)
    client.item(item, stubs.client.Sku("B-2"))
    # On the wire only the underlying type: the NewType and the alias leave no trace.
    assert [call[2] for call in loop.calls] == [
        [5, 1],
        [{3: ["9.50"]}],
        [["A-1", ["red"]], "B-2"],
    ]


def test_aliases_keep_their_checks_and_the_stubs_name_the_newtypes(
    aliases: tuple[Stubs, Loopback, Any],
) -> None:
    stubs, loop, client = aliases
    with pytest.raises(InvalidArgumentError, match=r"route\(\): argument 'unit': 'GBP' is not"):
        client.route([], "GBP")
    with pytest.raises(InvalidArgumentError, match=r"user\(\): argument 'value': expected int"):
        client.user("7")
    decode = loop.services["Aliases"].methods["ledger"].decode_args
    with pytest.raises(InvalidArgumentError, match=r"'value'\[3\]\[0\]: expected"):
        decode([{3: [1.5]}])
    signature = inspect.signature(stubs.client.AliasesClient.user)
    assert signature.parameters["value"].annotation is stubs.contract.UserId
    assert signature.parameters["admin"].default == 1
    assert stubs.client.UserId is stubs.contract.UserId


# -- Enum members with auto() -------------------------------------------------------------


@pytest.fixture(scope="module")
def enums_auto(load_case: Callable[[str], Stubs]) -> tuple[Stubs, Loopback, Any]:
    stubs = load_case("enums_auto")
    loop = Loopback()
    stubs.server.register_auto(loop, echo_impl(stubs.contract.Auto))
    return stubs, loop, stubs.client.AutoClient(loop)


def test_auto_values_are_resolved_as_python_resolves_them(
    enums_auto: tuple[Stubs, Loopback, Any],
) -> None:
    stubs, _, _ = enums_auto
    contract = parse_contract(GOLDEN / "enums_auto" / "service.py")
    resolved = {enum.name: enum for enum in contract.enums.values()}
    assert set(resolved) == {"Priority", "Level", "Mode", "Sign"}
    for name, enum in resolved.items():
        python = [(member.name, member.value) for member in getattr(stubs.contract, name)]
        assert list(enum.members) == python, name
        assert all(type(value).__name__ == enum.value_type for _, value in python)
    assert resolved["Level"].members[-1] == ("PANIC", 51)
    assert resolved["Mode"].members[-1] == ("SuperUser", "superuser")


def test_auto_members_travel_as_their_resolved_values(
    enums_auto: tuple[Stubs, Loopback, Any],
) -> None:
    stubs, loop, client = enums_auto
    c = stubs.contract
    assert same(client.priority(), c.Priority.MID)
    assert same(client.levels({c.Level.PANIC: c.Mode.SuperUser}), {c.Level.PANIC: c.Mode.SuperUser})
    assert same(client.sign({c.Sign.ZERO, c.Sign.MINUS}), {c.Sign.ZERO, c.Sign.MINUS})
    task = c.Task(c.Priority.HIGH)
    assert same(client.task(task), task)
    del loop.calls[:]
    client.priority(c.Priority.HIGH)
    client.levels({c.Level.INFO: c.Mode.ADMIN, c.Level.WARN: c.Mode.WRITE})
    client.sign({c.Sign.ZERO})
    client.task(task)
    assert [call[2] for call in loop.calls] == [
        [3],
        [{11: "root", 12: "write"}],
        [[0]],
        [[3, "read", 11]],
    ]
    decode = loop.services["Auto"].methods["levels"].decode_args
    with pytest.raises(InvalidArgumentError, match=r"'value' key 13: 13 is not a valid Level"):
        decode([{13: "read"}])
    with pytest.raises(InvalidArgumentError, match=r"'value'\[11\]: 'READ' is not a valid Mode"):
        decode([{11: "READ"}])


# -- NamedTuple and TypedDict -------------------------------------------------------------


@pytest.fixture(scope="module")
def records(load_case: Callable[[str], Stubs]) -> tuple[Stubs, Loopback, Any]:
    stubs = load_case("records")
    loop = Loopback()
    stubs.server.register_records(loop, echo_impl(stubs.contract.Records))
    return stubs, loop, stubs.client.RecordsClient(loop)


def test_named_tuples_and_typed_dicts_round_trip(records: tuple[Stubs, Loopback, Any]) -> None:
    stubs, loop, client = records
    c = stubs.contract
    point = c.Point(1, 2.5)
    back = client.point(point)
    assert same(back, c.Point(1.0, 2.5, "", c.Unit.M)) and type(back) is c.Point
    assert back.norm() == point.norm()
    far = c.Point(0, 0, "o", c.Unit.FT)
    assert same(client.points([far], point), ([c.Point(0.0, 0.0, "o", c.Unit.FT)], back))
    movie = {"title": "Alien", "year": 1979, "sequel": {"title": "Aliens", "year": 1986}}
    assert same(client.movie(movie), movie)
    query = {"text": "q", "near": None, "tags": []}
    assert same(client.query(query), query)
    assert same(client.query({"text": ""}), {"text": ""})
    assert same(
        client.queries({"a": {"text": "t", "near": back}}), {"a": {"text": "t", "near": back}}
    )
    assert same(client.empty({}), {})
    del loop.calls[:]
    client.point(c.Point(1.0, 2.0, "a"))
    client.query({"text": "q", "limit": 3, "near": c.Point(0.0, 1.0)})
    assert [call[2] for call in loop.calls] == [
        [[1.0, 2.0, "a", "m"]],
        [{"text": "q", "limit": 3, "near": [0.0, 1.0, "", "m"]}],
    ]
    # An older peer may leave a NamedTuple's trailing defaulted fields out.
    decode = loop.services["Records"].methods["point"].decode_args
    assert same(decode([[1.0, 2.0]]), (c.Point(1.0, 2.0),))


@pytest.mark.parametrize(
    ("method", "value", "message"),
    [
        ("point", (1.0, 2.0), "point(): argument 'value': expected Point, got tuple"),
        ("point", None, "point(): argument 'value': expected Point, got NoneType"),
        ("movie", {"title": "A"}, "movie(): argument 'value': Movie is missing the key 'year'"),
        ("movie", {"title": "A", "year": 1, "rating": 5}, "movie(): argument 'value': Movie has no key 'rating'"),
        ("movie", {"title": "A", "year": "1979"}, "movie(): argument 'value'['year']: expected int, got str"),
        ("query", {"limit": 1}, "query(): argument 'value': Query is missing the key 'text'"),
        ("query", [("text", "q")], "query(): argument 'value': expected Query, got list"),
        ("queries", {"a": {"text": 1}}, "queries(): argument 'value'['a']['text']: expected str"),
    ],
)  # fmt: skip
def test_named_tuples_and_typed_dicts_are_checked(
    records: tuple[Stubs, Loopback, Any], method: str, value: Any, message: str
) -> None:
    _, loop, client = records
    with pytest.raises(InvalidArgumentError) as info:
        getattr(client, method)(value)
    assert info.value.message.startswith(message)
    # The server holds the wire to the same rules.
    decode = loop.services["Records"].methods[method].decode_args
    if method != "point":
        with pytest.raises(InvalidArgumentError) as info:
            decode([wire(value)])
        assert info.value.message.startswith(message)


# -- generic dataclasses ------------------------------------------------------------------


@pytest.fixture(scope="module")
def generics(load_case: Callable[[str], Stubs]) -> tuple[Stubs, Loopback, Any]:
    stubs = load_case("generics")
    loop = Loopback()
    stubs.server.register_generics(loop, echo_impl(stubs.contract.Generics))
    return stubs, loop, stubs.client.GenericsClient(loop)


def test_generic_dataclasses_round_trip_with_their_arguments(
    generics: tuple[Stubs, Loopback, Any],
) -> None:
    stubs, loop, client = generics
    c = stubs.contract
    users = c.Page([c.User("ada", datetime.date(1815, 12, 10))], "t2", 7)
    assert same(client.users(users), users)
    assert same(client.numbers(c.Page([1, True], None)), (c.Page([1, 1], None, 0), ""))
    dates = c.Page([datetime.date(2024, 1, 1)], None)
    pair = c.Pair("k", dates, [dates])
    assert same(client.pair(pair), pair)
    tree = c.Node("a", [c.Node("b", []), c.Node("c", [c.Node("d", [])])])
    assert same(client.trees([tree, tree]), [tree, tree])
    del loop.calls[:]
    client.users(users)
    client.pair(c.Pair("k", dates))
    assert [call[2] for call in loop.calls] == [
        [[[["ada", "1815-12-10"]], "t2", 7]],
        [["k", [["2024-01-01"], None, 0], []]],
    ]


def test_each_use_of_a_generic_dataclass_checks_its_own_arguments(
    generics: tuple[Stubs, Loopback, Any],
) -> None:
    stubs, loop, client = generics
    c = stubs.contract
    with pytest.raises(InvalidArgumentError, match=r"'value'\.items\[0\]: expected User, got int"):
        client.users(c.Page([1], None))
    with pytest.raises(InvalidArgumentError, match=r"'value'\.items\[1\]: expected int, got str"):
        client.numbers(c.Page([1, "2"], None), "t")
    decode = loop.services["Generics"].methods["pair"].decode_args
    with pytest.raises(InvalidArgumentError, match=r"'value'\.value\.items\[0\]: expected"):
        decode([["k", [[5], None, 0], []]])
    with pytest.raises(InvalidArgumentError, match=r"'value': expected Page, got Pair"):
        client.users(c.Pair(1, 2))


# Ints: msgpack carries -2**63..2**64-1 and JSON any int; both sides refuse the rest, so a
# contract behaves the same over both codecs.
INT_RANGE = r"int out of the 64-bit range \(-2\*\*63\.\.2\*\*64-1\)$"


def test_ints_at_the_64_bit_bounds_round_trip(client: Any) -> None:
    for value in (2**64 - 1, -(2**63), 0):
        assert client.integer(value) == value
    assert client.ints([2**64 - 1, -(2**63)]) == [2**64 - 1, -(2**63)]
    assert client.by_str({"a": 2**64 - 1}) == {"a": 2**64 - 1}
    assert client.by_int({-(2**63): []}) == {-(2**63): []}


@pytest.mark.parametrize(
    ("method", "value", "path"),
    [
        ("integer", 2**64, r"integer\(\): argument 'value'"),
        ("integer", -(2**63) - 1, r"integer\(\): argument 'value'"),
        ("integer", 10**40, r"integer\(\): argument 'value'"),
        ("ints", [1, 2**64], r"ints\(\): argument 'value'\[1\]"),
        ("by_str", {"a": 1, "b": -(2**64)}, r"by_str\(\): argument 'value'\['b'\]"),
        ("by_int", {2**64: []}, r"by_int\(\): argument 'value' key 18446744073709551616"),
        ("maybe", 2**100, r"maybe\(\): argument 'value'"),
    ],
)
def test_client_refuses_ints_beyond_64_bits(
    client: Any, method: str, value: Any, path: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=f"{path}: {INT_RANGE}"):
        getattr(client, method)(value)


@pytest.mark.parametrize(
    ("method", "args", "path"),
    [
        ("integer", [2**64], r"integer\(\): argument 'value'"),
        ("integer", [-(2**63) - 1], r"integer\(\): argument 'value'"),
        ("ints", [[0, 1, -(2**70)]], r"ints\(\): argument 'value'\[2\]"),
        ("tagged", [["t", [], 1, [2**64]]], r"tagged\(\): argument 'value'\.extras\[0\]"),
    ],
)
def test_server_refuses_ints_beyond_64_bits_from_a_json_peer(
    types: Stubs, method: str, args: Any, path: str
) -> None:
    json = CODECS["json"]
    received = json.decode(json.encode(args))  # JSON carries the int as it is
    with pytest.raises(InvalidArgumentError, match=f"{path}: {INT_RANGE}"):
        decode_args(types, method)(received)


def test_results_beyond_64_bits_are_refused_on_both_sides(types: Stubs) -> None:
    class Big(echo_impl(types.contract.Types).__class__):  # type: ignore[misc]
        def integer(self, value: Any) -> Any:
            return 2**64

    loop = Loopback()
    types.server.register_types(loop, Big())
    handler = loop.services["Types"].methods["integer"]
    with pytest.raises(InvalidArgumentError, match=rf"integer\(\): result: {INT_RANGE}"):
        handler.encode_result(handler.call(*handler.decode_args([1])))

    class JsonLiar:
        def unary(
            self, service: str, method: str, args: list[Any], options: Any, idempotent: bool = False
        ) -> Any:
            return {"integer": -(2**63) - 1, "ints": [1, 2**64]}[method]

    stub = types.client.TypesClient(JsonLiar())
    with pytest.raises(InternalError, match=rf"integer\(\): result: {INT_RANGE}"):
        stub.integer(1)
    with pytest.raises(InternalError, match=rf"ints\(\): result\[1\]: {INT_RANGE}"):
        stub.ints([])


def test_methods_named_like_builtins_round_trip(load_case: Callable[[str], Stubs]) -> None:
    stubs = load_case("builtin_names")
    c = stubs.contract

    class Store(c.Store):  # type: ignore[misc,name-defined]
        def set(self, key: Any, value: Any) -> Any:
            return {key, *map(str, value)}

        def list(self, prefix: Any = "") -> Any:
            return [prefix + "a", prefix + "b"]

        def type(self, key: Any, shelf: Any) -> Any:
            return (type(shelf).__name__ + key, len(shelf.labels) + sum(shelf.counts.values()))

        def dict(self, value: Any) -> Any:
            return {key: set(items) for key, items in value.items()}

        def id(self, value: Any) -> Any:
            return [] if value is None else [value, frozenset()]

    loop = Loopback()
    stubs.server.register_store(loop, Store())
    client = stubs.client.StoreClient(loop)
    assert client.set("k", [1, 2, 1]) == {"k", "1", "2"}
    assert client.list() == ["a", "b"] and client.list("x") == ["xa", "xb"]
    assert client.type(":", c.Shelf(["l"], {"n": 2})) == ("Shelf:", 3)
    assert client.dict({"a": [1, 1, 2]}) == {"a": {1, 2}}
    assert client.id(frozenset({3})) == [frozenset({3}), frozenset()] and client.id(None) == []
    assert [call[1] for call in loop.calls] == ["set", "list", "list", "type", "dict", "id", "id"]
    with pytest.raises(InvalidArgumentError, match=r"dict\(\): argument 'value'\['a'\]\[0\]"):
        client.dict({"a": ["1"]})

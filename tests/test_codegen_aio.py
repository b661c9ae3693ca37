"""The asyncio stubs (`gopherpipe gen --asyncio`) in process, with no network: what
``register_x_async`` registers, driven the way the asyncio server drives a MethodDef,
and what ``XAsyncClient`` hands its pipe, over a stand-in Pipe. The runtime itself
(gopherpipe_runtime.aio.Pipe and Server) is tested on its own; this is the stubs' wiring.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest

from gopherpipe_gen.cli import generate
from gopherpipe_runtime import InternalError, InvalidArgumentError, MethodDef, ServiceDef
from gopherpipe_runtime.pipe import CallOptions

FLAT_MODULES = ("service", "service_client", "service_server", "service_aio")
SERVICES = ("chat_service", "shapes", "spellings", "pulse")


def wire(value: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False, strict_map_key=False)


class Registry:
    """Stands in for a Server (threaded or asyncio): keeps what register_* adds."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceDef] = {}

    def add_service(self, service: ServiceDef) -> None:
        self.services[service.name] = service


@pytest.fixture(scope="module")
def stubs(
    tmp_path_factory: pytest.TempPathFactory, copy_case: Callable[[str, Path], Path]
) -> Iterator[dict[str, ModuleType]]:
    folder = copy_case("streams", tmp_path_factory.mktemp("aio"))
    for output in generate([folder / "service.py"], None, asyncio=True):
        output.path.write_text(output.text)
    for name in FLAT_MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(folder))
    try:
        yield {name: importlib.import_module(name) for name in FLAT_MODULES}
    finally:
        sys.path.remove(str(folder))
        for name in FLAT_MODULES:
            sys.modules.pop(name, None)


def chat_impl(stubs: dict[str, ModuleType]) -> Any:
    """DESIGN.md's chat service on asyncio, its streams written as async generators."""
    message = stubs["service"].Message

    class Chat(stubs["service_aio"].ChatServiceAsync):  # type: ignore[misc]
        async def join_room(self, room_id: str, incoming: AsyncIterator[str]) -> AsyncIterator[Any]:
            async for text in incoming:
                yield message(room_id, text.upper())

        async def history(self, room_id: str, limit: int = 50) -> list[Any]:
            return [message(room_id, str(n)) for n in range(limit)]

        async def tail(self, room_id: str) -> AsyncIterator[Any]:
            for n in range(3):
                yield message(room_id, f"t{n}")

        async def upload(self, lines: AsyncIterator[str]) -> int:
            return len([line async for line in lines])

    return Chat()


async def serve(method: MethodDef, wire_args: list[Any], wire_items: Iterable[Any] = ()) -> Any:
    """One call through `method` as the asyncio server makes it: decode the arguments,
    put the inbound stream (decoded items, as an AsyncIterator) at stream_param, await a
    coroutine's result or collect what an async iterator yields, in wire form."""
    args = list(method.decode_args(wire(wire_args)))
    if method.stream_param is not None:
        assert method.decode_item is not None

        async def inbound() -> AsyncIterator[Any]:
            for item in wire_items:
                yield method.decode_item(wire(item))  # type: ignore[misc]

        args.insert(method.stream_param, inbound())
    outcome = method.call(*args)
    if method.server_streams:
        assert method.encode_item is not None and isinstance(outcome, AsyncIterator)
        return [wire(method.encode_item(item)) async for item in outcome]
    assert inspect.iscoroutine(outcome)
    return wire(method.encode_result(await outcome))


def test_the_interface_has_the_contract_methods_in_their_shapes(
    stubs: dict[str, ModuleType],
) -> None:
    aio = stubs["service_aio"]
    chat = aio.ChatServiceAsync
    assert chat.__abstractmethods__ == {"join_room", "history", "tail", "upload"}
    assert inspect.iscoroutinefunction(chat.history) and inspect.iscoroutinefunction(chat.upload)
    assert not inspect.iscoroutinefunction(chat.tail)
    assert not inspect.iscoroutinefunction(chat.join_room)
    assert chat.__doc__ == "Rooms where gophers talk."
    assert aio.ShapesAsync.maybe.__doc__ == "Bidi of nested, optional types."
    assert issubclass(aio.ChatServiceAsyncClient, chat)
    assert issubclass(aio.ChatServiceAsyncClient, aio.AsyncClientBase)
    # The asyncio interface is its own: a threaded implementation is not one.
    assert not issubclass(aio.ChatServiceAsync, stubs["service"].ChatService)
    with pytest.raises(TypeError, match="abstract"):
        chat()


def test_registration_reuses_the_server_stubs_functions(stubs: dict[str, ModuleType]) -> None:
    # Same converters, same argument decoders, same schema: only `call` differs. The
    # asyncio stub imports them from the server stub rather than writing a second copy.
    aio, server = stubs["service_aio"], stubs["service_server"]
    for name in SERVICES:
        threaded, asynchronous = Registry(), Registry()
        sync_cls = getattr(stubs["service"], "".join(p.title() for p in name.split("_")))
        aio_cls = getattr(aio, sync_cls.__name__ + "Async")
        impls = {}
        for registry, cls, register in (
            (threaded, sync_cls, getattr(server, f"register_{name}")),
            (asynchronous, aio_cls, getattr(aio, f"register_{name}_async")),
        ):
            # One function per method, so that `call` is told apart from its neighbours.
            body = {m: (lambda self, *a, _m=m: _m) for m in cls.__abstractmethods__}
            impls[cls] = type("Impl", (cls,), body)()
            register(registry, impls[cls])
        (ours,) = asynchronous.services.values()
        (theirs,) = threaded.services.values()
        assert ours.name == theirs.name and ours.schema is theirs.schema
        assert ours.methods.keys() == theirs.methods.keys()
        for method, definition in ours.methods.items():
            other = theirs.methods[method]
            for attribute in ("kind", "stream_param", "decode_args", "encode_result"):
                assert getattr(definition, attribute) is getattr(other, attribute), method
            for attribute in ("decode_item", "encode_item"):
                assert getattr(definition, attribute) is getattr(other, attribute), method
            assert definition.call == getattr(impls[aio_cls], method)  # the bound method
            assert definition.call() == method


def test_each_shape_served_through_the_registered_table(stubs: dict[str, ModuleType]) -> None:
    registry = Registry()
    stubs["service_aio"].register_chat_service_async(registry, chat_impl(stubs))
    methods = registry.services["ChatService"].methods

    async def main() -> None:
        # A short CALL gets the contract's default (limit=50), as with the threaded stubs.
        assert len(await serve(methods["history"], ["room"])) == 50
        assert await serve(methods["history"], ["room", 1]) == [["room", "0", 1]]
        assert await serve(methods["tail"], ["r"]) == [["r", f"t{n}", 1] for n in range(3)]
        assert await serve(methods["upload"], [], ["a", "b", "c"]) == 3
        assert await serve(methods["join_room"], ["r"], ["x", "y"]) == [
            ["r", "X", 1],
            ["r", "Y", 1],
        ]
        with pytest.raises(InvalidArgumentError, match=r"history\(\): argument 'limit'"):
            await serve(methods["history"], ["room", "many"])
        with pytest.raises(InvalidArgumentError, match=r"upload\(\): item of 'lines'"):
            await serve(methods["upload"], [], ["a", 2])

    asyncio.run(main())


class FakeCall(AsyncIterator[Any]):
    """What a stand-in pipe's `stream` returns: decodes canned wire items, and takes
    the source the way the real StreamCall does (sync or async, encoded item by item)."""

    def __init__(self, pipe: FakePipe, kwargs: dict[str, Any]) -> None:
        self.pipe, self.kwargs = pipe, kwargs
        self.items = iter(pipe.replies)

    def __aiter__(self) -> FakeCall:
        return self

    async def __anext__(self) -> Any:
        await self.drain()
        try:
            item = next(self.items)
        except StopIteration:
            raise StopAsyncIteration from None
        try:
            return self.kwargs["decode_item"](item)
        except InvalidArgumentError as exc:
            raise self.kwargs["bad_item"](exc) from None

    async def drain(self) -> None:
        source: AsyncIterable[Any] | Iterable[Any] | None = self.kwargs.get("source")
        if source is None or self.pipe.sent:
            return
        if isinstance(source, AsyncIterable):
            items = [item async for item in source]
        else:
            items = list(source)
        self.pipe.sent = [wire(self.kwargs["encode_item"](item)) for item in items]

    async def result(self) -> Any:
        await self.drain()
        return self.pipe.result


class FakePipe:
    """Records what a client asks of its pipe; answers with canned wire values."""

    def __init__(self, result: Any = None, replies: Iterable[Any] = ()) -> None:
        self.result, self.replies = result, list(replies)
        self.calls: list[tuple[str, str, list[Any], CallOptions, bool]] = []
        self.sent: list[Any] = []

    async def unary(
        self, service: str, method: str, args: list[Any], options: CallOptions, idem: bool = False
    ) -> Any:
        self.calls.append((service, method, wire(args), options, idem))
        return self.result

    def stream(
        self, service: str, method: str, args: list[Any], options: CallOptions, **kwargs: Any
    ) -> FakeCall:
        self.calls.append((service, method, wire(args), options, kwargs["idempotent"]))
        return FakeCall(self, kwargs)


def test_the_client_encodes_arguments_and_decodes_results(stubs: dict[str, ModuleType]) -> None:
    client_cls = stubs["service_aio"].ChatServiceAsyncClient
    message = stubs["service"].Message

    async def lines() -> AsyncIterator[str]:
        for line in ("a", "b"):
            yield line

    async def main() -> None:
        pipe = FakePipe(result=[["r", "hi", 2]])
        client = client_cls(pipe).with_options(timeout=2.0, metadata={"k": "v"})
        assert type(client) is client_cls
        assert await client.history("r", 7) == [message("r", "hi", stubs["service"].Mood.GRUMPY)]
        service, method, args, options, idempotent = pipe.calls[-1]
        assert (service, method, args, idempotent) == ("ChatService", "history", ["r", 7], False)
        assert options.timeout == 2.0 and options.metadata == {"k": "v"}
        with pytest.raises(InvalidArgumentError, match=r"history\(\): argument 'limit'"):
            await client.history("r", "7")
        with pytest.raises(InternalError, match="malformed result from server"):
            await client_cls(FakePipe(result=["not a message"])).history("r")

        pipe = FakePipe(result=2)
        assert await client_cls(pipe).upload(lines()) == 2
        assert pipe.sent == ["a", "b"]
        pipe = FakePipe(result=3)
        assert await client_cls(pipe).upload(["x", "y", "z"]) == 3  # a plain iterable too
        assert pipe.sent == ["x", "y", "z"]

        pipe = FakePipe(replies=[["r", "t", 1], ["r", "u", 1]])
        assert [m.text async for m in client_cls(pipe).tail("r")] == ["t", "u"]
        pipe = FakePipe(replies=[["r", "T", 1]])
        replies = [m.text async for m in client_cls(pipe).join_room("r", ("t",))]
        assert replies == ["T"] and pipe.sent == ["t"]
        with pytest.raises(InternalError, match="malformed item from server"):
            async for _ in client_cls(FakePipe(replies=[7])).tail("r"):
                pass

    asyncio.run(main())


TRICKY_DOCS = """from abc import ABC, abstractmethod


class Notes(ABC):
    r'''Backslashes \\n stay, as do "quotes" and \"\"\" triples.

    A second paragraph, indented:
        code()
    ends with a quote: "'''

    @abstractmethod
    def plain(self) -> int:
        '''One line ending in a quote "'''

    @abstractmethod
    def tabbed(self) -> int:
        '''Tab\there, a bell \\a and a triple \"\"\" inside.'''
"""


def test_contract_docstrings_are_copied_exactly(tmp_path: Path) -> None:
    contract = tmp_path / "notes.py"
    contract.write_text(TRICKY_DOCS)
    for output in generate([contract], None, asyncio=True):
        output.path.write_text(output.text)
    namespace: dict[str, Any] = {}
    exec(contract.read_text(), namespace)  # the contract itself, to compare docstrings
    sys.path.insert(0, str(tmp_path))
    try:
        aio = importlib.import_module("notes_aio")
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("notes", "notes_client", "notes_server", "notes_aio"):
            sys.modules.pop(name, None)
    notes = namespace["Notes"]
    assert inspect.getdoc(aio.NotesAsync) == inspect.getdoc(notes)
    assert inspect.getdoc(aio.NotesAsync.tabbed) == inspect.getdoc(notes.tabbed)
    # Black's one change: a one-line docstring ending in a quote gets a space before the
    # closing quotes (as black does to any such docstring: '"""a "  """' is no literal).
    assert inspect.getdoc(aio.NotesAsync.plain) == inspect.getdoc(notes.plain) + " "

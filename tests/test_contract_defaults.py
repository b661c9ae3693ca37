"""A CALL that leaves out trailing defaulted arguments (RFC §6.2) gets the contract's
defaults, the ones the client stubs advertise, even when the implementation's own
signature says otherwise."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from e2e_harness import raw_handshake, read_frames

from gopherpipe_gen.cli import generate
from gopherpipe_runtime import Server
from gopherpipe_runtime.wire.codec import CODECS
from gopherpipe_runtime.wire.envelope import decode_status, encode_call
from gopherpipe_runtime.wire.frames import FrameType, encode_frame

CODEC = CODECS["msgpack"]
MODULES = ("service", "service_server")
FLAT_MODULES = (*MODULES, "service_client")  # the server stub imports the client stub


@pytest.fixture(scope="module")
def stubs(
    tmp_path_factory: pytest.TempPathFactory, copy_case: Callable[[str, Path], Path]
) -> Iterator[tuple[ModuleType, ModuleType]]:
    """The contract and server stub of the golden case `defaults`, freshly generated."""
    folder = copy_case("defaults", tmp_path_factory.mktemp("defaults"))
    for output in generate([folder / "service.py"], None):
        output.path.write_text(output.text)
    # Other tests import other flat contracts under the same module names.
    for name in FLAT_MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(folder))
    try:
        contract, server = (importlib.import_module(name) for name in MODULES)
    finally:
        sys.path.remove(str(folder))
        for name in FLAT_MODULES:
            sys.modules.pop(name, None)
    yield contract, server


class RawPeer:
    """A client that writes CALL frames by hand, so it can leave arguments out."""

    def __init__(self, address: str) -> None:
        self.sock, self.decoder = raw_handshake(address)
        self.stream_id = 1

    def call(self, method: str, args: list[Any]) -> tuple[int, str, Any]:
        body = encode_call(CODEC, "Defaults", method, None, {}, args)
        self.sock.sendall(encode_frame(FrameType.CALL, body, self.stream_id))
        (status,) = read_frames(self.sock, self.decoder)
        assert (status.type, status.stream_id) == (FrameType.STATUS, self.stream_id)
        self.stream_id += 2
        return decode_status(CODEC, status.payload)


def _peer(server: Server) -> RawPeer:
    return RawPeer(server.addresses[0])


def test_omitted_arguments_take_the_contracts_defaults_not_the_impls(
    stubs: tuple[ModuleType, ModuleType],
) -> None:
    contract, server_stubs = stubs
    seen: list[tuple[Any, ...]] = []
    base: Any = contract.Defaults

    class Impl(base):  # type: ignore[misc]
        # Every default differs from the contract's (or is missing, for call()).
        def call(self, *args: Any) -> Any:
            seen.append(args)
            return contract.Options()

        def submit(self, job: Any, dry_run: bool = True) -> Any:
            seen.append((job.name, dry_run))
            return job

        def positional(self, a: int, /, b: str = "impl") -> str:
            return f"{a}{b}"

    server = Server("tcp://127.0.0.1:0")
    server_stubs.register_defaults(server, Impl())
    with server:
        peer = _peer(server)
        try:
            assert peer.call("positional", [4]) == (0, "", "4x")
            assert peer.call("positional", [4, "y"]) == (0, "", "4y")
            assert peer.call("submit", [["j", []]])[0] == 0
            assert seen.pop() == ("j", False)
            # Left out from the first, the second, the last argument on.
            for sent in (
                [],
                [5],
                [5, 6, 7.5, 8.0, 9, "t", b"u", True, False, 10, "fast", [2, "y"], []],
            ):
                assert peer.call("call", sent)[0] == 0
                expected = (1, -2, 2.5, -1000.0, 3, "s", b"b", False, True, None,
                            contract.Mode.SLOW, (1, "x"), (), contract.Mode.FAST)  # fmt: skip
                received = seen.pop()
                assert len(received) == len(expected)
                assert received[len(sent) :] == expected[len(sent) :]
            assert received[:4] == (5, 6, 7.5, 8.0)
        finally:
            peer.sock.close()


def test_a_peer_still_cannot_leave_out_a_required_argument(
    stubs: tuple[ModuleType, ModuleType],
) -> None:
    contract, server_stubs = stubs
    base: Any = contract.Defaults
    impl = type("Impl", (base,), dict.fromkeys(["call", "submit", "positional"], lambda *a: 0))
    server = Server("tcp://127.0.0.1:0")
    server_stubs.register_defaults(server, impl())
    with server:
        peer = _peer(server)
        try:
            code, message, _ = peer.call("positional", [])
            assert (code, message) == (3, "positional(): takes 1..2 arguments, got 0")
        finally:
            peer.sock.close()


# -- defaults that are the contract's own objects (golden case default_exprs) -------------

EXPR_MODULES = ("limits", "models", "service", "service_client", "service_server")


@pytest.fixture(scope="module")
def exprs(
    tmp_path_factory: pytest.TempPathFactory, copy_case: Callable[[str, Path], Path]
) -> Iterator[dict[str, ModuleType]]:
    """The modules of the golden case `default_exprs`, with freshly generated stubs."""
    folder = copy_case("default_exprs", tmp_path_factory.mktemp("default_exprs"))
    for output in generate([folder / "service.py"], None):
        output.path.write_text(output.text)
    for name in EXPR_MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(folder))
    try:
        yield {name: importlib.import_module(name) for name in EXPR_MODULES}
    finally:
        sys.path.remove(str(folder))
        for name in EXPR_MODULES:
            sys.modules.pop(name, None)


class ExprPeer(RawPeer):
    def call(self, method: str, args: list[Any]) -> tuple[int, str, Any]:
        body = encode_call(CODEC, "Store", method, None, {}, args)
        self.sock.sendall(encode_frame(FrameType.CALL, body, self.stream_id))
        (status,) = read_frames(self.sock, self.decoder)
        self.stream_id += 2
        return decode_status(CODEC, status.payload)


def test_the_server_fills_left_out_arguments_with_the_contracts_own_objects(
    exprs: dict[str, ModuleType],
) -> None:
    contract, limits = exprs["service"], exprs["limits"]
    seen: list[tuple[Any, ...]] = []
    base: Any = contract.Store

    class Impl(base):  # type: ignore[misc]
        def read(self, *args: Any) -> bytes:
            seen.append(args)
            return b""

        def put(self, *args: Any) -> Any:
            seen.append(args)
            return args[0]

        def describe(self, *args: Any) -> str:
            seen.append(args)
            return ""

    server = Server("tcp://127.0.0.1:0")
    exprs["service_server"].register_store(server, Impl())
    with server:
        peer = ExprPeer(server.addresses[0])
        try:
            assert peer.call("read", ["k"])[0] == 0
            assert seen.pop() == ("k", limits.CHUNK_SIZE, timedelta(seconds=10))
            # An Upload that carries its name only: its own defaults and factories fill in.
            for _ in range(2):
                assert peer.call("put", [["u"]])[0] == 0
            first, second = seen.pop(), seen.pop()
            upload, policy, wait, deadline = first
            assert policy is contract.DEFAULT_POLICY
            assert wait is contract.TIMEOUT
            assert deadline == datetime(2030, 1, 1)
            assert upload == contract.Upload("u")
            assert upload.chunk == limits.CHUNK_SIZE
            assert upload.policy == contract.RetryPolicy(3, timedelta(seconds=20))
            assert (upload.size, upload.tags, upload.seen) == (
                contract.Size(),
                ["new"],
                {"start": 0},
            )
            assert upload.tags is not second[0].tags  # a factory: one list per record
            assert peer.call("describe", [])[0] == 0
            owner, price, mode, user, color, shade, chunks, size, pair, limit = seen.pop()
            assert owner is contract.NIL
            assert price is contract.PRICE
            assert (mode, user) == ("fast", 0)
            assert (color, shade) == (exprs["models"].Color.RED, exprs["models"].Color.BLUE)
            assert (chunks, limit) == (limits.MAX_CHUNKS * 2, limits.MAX_CHUNKS)
            assert size == contract.Size(1, 2)
            assert pair == (limits.CHUNK_SIZE, contract.TIMEOUT)
            assert pair[1] is contract.TIMEOUT
        finally:
            peer.sock.close()


def test_the_client_signature_shows_the_contracts_own_objects(
    exprs: dict[str, ModuleType],
) -> None:
    contract, client = exprs["service"], exprs["service_client"].StoreClient
    for method in ("read", "put", "describe"):
        ours = inspect.signature(getattr(client, method)).parameters
        theirs = inspect.signature(getattr(contract.Store, method)).parameters
        assert [p.default for p in ours.values()] == [p.default for p in theirs.values()]
    put = inspect.signature(client.put).parameters
    assert put["policy"].default is contract.DEFAULT_POLICY
    assert put["wait"].default is contract.TIMEOUT
    describe = inspect.signature(client.describe).parameters
    for name, constant in [("owner", "NIL"), ("price", "PRICE"), ("user", "ROOT_USER")]:
        assert describe[name].default is getattr(contract, constant), name

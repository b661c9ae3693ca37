"""gopherpipe_runtime.testing: the chat example's four call shapes served in memory,
through the real stubs, codec and frames, with no TCP or Unix listener."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gopherpipe_runtime import Chan, Pipe, RpcError, Server, current_call
from gopherpipe_runtime.interceptors import TokenAuthClient, TokenAuthServer
from gopherpipe_runtime.status import (
    DeadlineExceededError,
    NotFoundError,
    PermissionDeniedError,
    StatusCode,
    UnauthenticatedError,
)
from gopherpipe_runtime.testing import memory_address, serve_in_memory, serve_in_memory_async

CHAT = Path(__file__).resolve().parent.parent / "examples" / "chat"


@pytest.fixture(scope="module")
def chat() -> Iterator[dict[str, Any]]:
    sys.path.insert(0, str(CHAT))
    try:
        import service  # type: ignore[import-not-found]
        import service_aio  # type: ignore[import-not-found]
        import service_client  # type: ignore[import-not-found]
        import service_server  # type: ignore[import-not-found]

        yield {
            "ChatService": service.ChatService,
            "Message": service.Message,
            "Client": service_client.ChatServiceClient,
            "register": service_server.register_chat_service,
            "ChatServiceAsync": service_aio.ChatServiceAsync,
            "AsyncClient": service_aio.ChatServiceAsyncClient,
            "register_async": service_aio.register_chat_service_async,
        }
    finally:
        sys.path.remove(str(CHAT))
        for name in ("service", "service_client", "service_server", "service_aio"):
            sys.modules.pop(name, None)


def make_impl(chat: dict[str, Any]) -> Any:
    Message = chat["Message"]

    class Impl(chat["ChatService"]):  # type: ignore[misc]
        def __init__(self) -> None:
            self.released = threading.Event()
            self.transports: list[str] = []

        def history(self, room_id: str, limit: int = 50) -> list[Any]:
            self.transports.append(current_call().peer.transport)
            if room_id == "secret":
                raise RpcError(StatusCode.PERMISSION_DENIED, "members only")
            if room_id == "slow":
                self.released.wait(10)
            return [Message("bot", f"{room_id} {i}") for i in range(limit)]

        def tail(self, room_id: str) -> Chan[Any]:
            if room_id == "gone":
                raise RpcError(StatusCode.NOT_FOUND, "no room 'gone'")
            out: Chan[Any] = Chan(8)
            for i in range(3):
                out.send(Message("bot", f"{room_id} {i}"))
            out.close()
            return out

        def upload(self, lines: Chan[str]) -> int:
            return sum(1 for _ in lines)

        def join_room(self, room_id: str, incoming: Chan[str]) -> Chan[Any]:
            out: Chan[Any] = Chan(8)

            def relay() -> None:
                with out:
                    for text in incoming:
                        out.send(Message(room_id, text.upper()))

            threading.Thread(target=relay, daemon=True).start()
            return out

    return Impl()


def test_four_call_shapes_in_memory(chat: dict[str, Any]) -> None:
    impl = make_impl(chat)
    with serve_in_memory(chat["register"], impl) as pipe:
        client = chat["Client"](pipe)
        assert [m.text for m in client.history("lobby", limit=2)] == ["lobby 0", "lobby 1"]
        assert [m.text for m in client.tail("news")] == ["news 0", "news 1", "news 2"]
        assert client.upload(iter(["a", "b", "c", "d"])) == 4
        replies = client.join_room("den", iter(["hi", "bye"]))
        assert [(m.sender, m.text) for m in replies] == [("den", "HI"), ("den", "BYE")]
    assert impl.transports == ["memory"]


def test_handler_rpc_error_reaches_the_client(chat: dict[str, Any]) -> None:
    with (
        serve_in_memory(chat["register"], make_impl(chat)) as pipe,
        pytest.raises(PermissionDeniedError, match="members only"),
    ):
        chat["Client"](pipe).history("secret")


def test_stream_errors_and_interceptors_run_through_it(chat: dict[str, Any]) -> None:
    with serve_in_memory(
        chat["register"],
        make_impl(chat),
        server_options={"interceptors": [TokenAuthServer(["s3cret"])]},
        pipe_options={"interceptors": [TokenAuthClient("s3cret")]},
    ) as pipe:
        client = chat["Client"](pipe)
        with pytest.raises(NotFoundError, match="no room 'gone'"):
            list(client.tail("gone"))
        assert client.upload(iter(["x"])) == 1
    with (
        serve_in_memory(
            chat["register"],
            make_impl(chat),
            server_options={"interceptors": [TokenAuthServer(["s3cret"])]},
        ) as pipe,
        pytest.raises(UnauthenticatedError),
    ):
        chat["Client"](pipe).history("lobby")


def test_deadline(chat: dict[str, Any]) -> None:
    impl = make_impl(chat)
    try:
        with serve_in_memory(chat["register"], impl) as pipe:
            client = chat["Client"](pipe).with_options(timeout=0.2)
            with pytest.raises(DeadlineExceededError):
                client.history("slow")
    finally:
        impl.released.set()


def test_server_and_pipe_options_are_passed(chat: dict[str, Any]) -> None:
    with serve_in_memory(
        chat["register"],
        make_impl(chat),
        server_options={"codecs": ("json",)},
        pipe_options={"codec": "json"},
    ) as pipe:
        assert len(chat["Client"](pipe).history("r", limit=1)) == 1


def _socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _inet_inodes() -> set[str]:
    found = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/self/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        found.update(line.split()[9] for line in lines)
    return found


def _unix_paths() -> dict[str, str]:
    paths = {}
    for line in Path("/proc/self/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        paths[fields[6]] = fields[7] if len(fields) > 7 else ""
    return paths


@pytest.mark.skipif(not Path("/proc/self/net/unix").exists(), reason="needs Linux /proc")
def test_no_tcp_or_unix_listener_is_opened(chat: dict[str, Any]) -> None:
    before = _socket_inodes()
    with serve_in_memory(chat["register"], make_impl(chat)) as pipe:
        chat["Client"](pipe).history("lobby", limit=1)
        opened = _socket_inodes() - before
        inet = _inet_inodes()
        unix = _unix_paths()
    assert opened, "the server and the connection hold sockets"
    assert not opened & inet, "a TCP/UDP socket was opened"
    assert all(unix.get(inode, "") == "" for inode in opened), "a Unix socket has a path"


def test_memory_address_with_server_and_pipe(chat: dict[str, Any]) -> None:
    address = memory_address()
    with Server(address) as server:
        chat["register"](server, make_impl(chat))
        server.start()
        assert server.addresses == [address]
        with Pipe(address) as pipe:
            assert len(chat["Client"](pipe).history("r", limit=3)) == 3


def test_unknown_memory_name_is_unavailable(chat: dict[str, Any]) -> None:
    with (
        Pipe(memory_address("nobody-here")) as pipe,
        pytest.raises(RpcError, match="no server is serving memory://nobody-here"),
    ):
        chat["Client"](pipe).history("r")


def test_a_name_is_served_once() -> None:
    address = memory_address()
    with Server(address) as first:
        first.start()
        with pytest.raises(OSError, match="already being served"):
            Server(address).start()
    # closed: the name is free again
    with Server(address) as again:
        again.start()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_is_refused_and_the_parent_keeps_serving(chat: dict[str, Any]) -> None:
    with serve_in_memory(chat["register"], make_impl(chat)) as pipe:
        client = chat["Client"](pipe)
        assert len(client.history("r", limit=1)) == 1
        pid = os.fork()
        if pid == 0:  # the child: a fresh Pipe to the parent's memory:// address
            code = 1
            try:
                with Pipe(pipe.address) as child_pipe:
                    chat["Client"](child_pipe).history("r")
            except RpcError as exc:
                code = 0 if "not reachable from a forked child" in exc.message else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(client.history("r", limit=2)) == 2


def test_four_call_shapes_in_memory_on_asyncio(chat: dict[str, Any]) -> None:
    Message = chat["Message"]

    class Impl(chat["ChatServiceAsync"]):  # type: ignore[misc]
        async def history(self, room_id: str, limit: int = 50) -> list[Any]:
            return [Message("bot", f"{room_id} {i}") for i in range(limit)]

        async def tail(self, room_id: str) -> AsyncIterator[Any]:
            for i in range(3):
                yield Message("bot", f"{room_id} {i}")

        async def upload(self, lines: AsyncIterator[str]) -> int:
            return len([line async for line in lines])

        async def join_room(self, room_id: str, incoming: AsyncIterator[str]) -> AsyncIterator[Any]:
            async for text in incoming:
                yield Message(room_id, text.upper())

    async def main() -> None:
        async with serve_in_memory_async(chat["register_async"], Impl()) as pipe:
            client = chat["AsyncClient"](pipe)
            assert [m.text for m in await client.history("r", limit=2)] == ["r 0", "r 1"]
            assert [m.text async for m in client.tail("t")] == ["t 0", "t 1", "t 2"]
            assert await client.upload(["a", "b"]) == 2
            replies = [m.text async for m in client.join_room("j", ["hi", "yo"])]
            assert replies == ["HI", "YO"]
            assert pipe.address.startswith("memory://")

    asyncio.run(main())

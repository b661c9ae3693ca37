"""The base class of every generated asyncio client stub (``<Service>AsyncClient``)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from ..calls import CancelToken
from ..client import decoded_result, malformed_item, merged_options
from ..pipe import CallOptions
from ..status import InvalidArgumentError
from .pipe import Pipe

T = TypeVar("T")


class AsyncClientBase:
    """Holds the asyncio `Pipe` and the call options; generated subclasses add the methods.

    A client made by `dial` owns its pipe and closes it (``async with`` or ``await
    client.close()``); a client built over a shared `Pipe` (``XAsyncClient(pipe)``)
    leaves the pipe to its owner.
    """

    _gp_service_name: ClassVar[str]

    def __init__(self, pipe: Pipe, *, options: CallOptions | None = None) -> None:
        self._gp_pipe = pipe
        self._gp_options = options if options is not None else CallOptions()
        self._gp_owns_pipe = False

    @classmethod
    def dial(cls, address: str, **options: Any) -> Self:
        """A client of `address`, with the threaded client's addresses and options
        (see `gopherpipe_runtime.ClientBase.dial`). Nothing is awaited here: the
        connection is made on the first call, on the loop that makes it, so a client
        may be built outside any event loop. Use it as ``async with X.dial(...) as c``.
        """
        client = cls(Pipe(address, **options))
        client._gp_owns_pipe = True
        return client

    def with_options(
        self,
        *,
        timeout: float | None = None,
        metadata: Mapping[str, str] | None = None,
        cancel: CancelToken | None = None,
        wait_for_ready: bool | None = None,
    ) -> Self:
        """A client sharing this one's pipe whose calls use these options (as the
        threaded `ClientBase.with_options`): given options replace the current ones,
        metadata is merged over them."""
        options = merged_options(self._gp_options, timeout, metadata, cancel, wait_for_ready)
        return type(self)(self._gp_pipe, options=options)

    @property
    def pipe(self) -> Pipe:
        return self._gp_pipe

    async def close(self) -> None:
        if self._gp_owns_pipe:
            await self._gp_pipe.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _gp_unary(
        self,
        method: str,
        args: list[Any],
        decode_result: Callable[[Any], T],
        idempotent: bool = False,
    ) -> T:
        wire_result = await self._gp_pipe.unary(
            self._gp_service_name, method, args, self._gp_options, idempotent
        )
        return self._gp_decode(method, decode_result, wire_result)

    def _gp_server_stream(
        self,
        method: str,
        args: list[Any],
        decode_item: Callable[[Any], T],
        idempotent: bool = False,
    ) -> AsyncIterator[T]:
        """What the server streams, as an async iterator: ``async for`` ends when the
        server finishes, or raises the call's RpcError after every item sent before
        the failure. The call opens at once (a running loop is required); leaving the
        loop early (``aclose()``, or the ``async for`` being cancelled) cancels it."""
        return self._gp_pipe.stream(
            self._gp_service_name,
            method,
            args,
            self._gp_options,
            decode_item=decode_item,
            bad_item=self._gp_malformed(method),
            idempotent=idempotent,
        )

    async def _gp_client_stream(
        self,
        method: str,
        args: list[Any],
        source: AsyncIterable[Any] | Iterable[Any],
        encode_item: Callable[[Any], Any],
        decode_result: Callable[[Any], T],
        idempotent: bool = False,
    ) -> T:
        """Send every item of `source` (sync or async), then the result."""
        call = self._gp_pipe.stream(
            self._gp_service_name,
            method,
            args,
            self._gp_options,
            source=source,
            encode_item=encode_item,
            idempotent=idempotent,
        )
        return self._gp_decode(method, decode_result, await call.result())

    def _gp_bidi(
        self,
        method: str,
        args: list[Any],
        source: AsyncIterable[Any] | Iterable[Any],
        encode_item: Callable[[Any], Any],
        decode_item: Callable[[Any], T],
        idempotent: bool = False,
    ) -> AsyncIterator[T]:
        """Items of `source` go out as they come; the async iterator brings replies."""
        return self._gp_pipe.stream(
            self._gp_service_name,
            method,
            args,
            self._gp_options,
            source=source,
            encode_item=encode_item,
            decode_item=decode_item,
            bad_item=self._gp_malformed(method),
            idempotent=idempotent,
        )

    def _gp_decode(self, method: str, decode: Callable[[Any], T], wire: Any) -> T:
        return decoded_result(self._gp_service_name, method, decode, wire)

    def _gp_malformed(self, method: str) -> Callable[[InvalidArgumentError], BaseException]:
        return malformed_item(self._gp_service_name, method)

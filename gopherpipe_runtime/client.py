"""The base class of every generated client stub."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from .calls import CancelToken
from .chan import Chan
from .pipe import CallOptions, Pipe
from .status import InternalError, InvalidArgumentError

T = TypeVar("T")


class ClientBase:
    """Holds the `Pipe` and the call options; generated subclasses add the methods.

    A client made by `dial` owns its pipe and closes it; a client built over a
    shared `Pipe` (``XClient(pipe)``) leaves the pipe to its owner.
    """

    _gp_service_name: ClassVar[str]

    def __init__(self, pipe: Pipe, *, options: CallOptions | None = None) -> None:
        self._gp_pipe = pipe
        self._gp_options = options if options is not None else CallOptions()
        self._gp_owns_pipe = False

    @classmethod
    def dial(cls, address: str, **options: Any) -> Self:
        """Connect to `address` (``tcp://host:port``, ``unix:///path``, ``tls://host:port``,
        ``ws://host:port/path``, ``wss://host:port/path``); ``tls=ssl.SSLContext``
        for TLS (default: the system's CAs).

        Several servers: a list (``tcp://a:1,b:2``), ``gophermap://Service`` (with
        ``gophermap=gmap``, or ``gophermap://Service@HOST:PORT`` to join through a
        seed, ``gophermap_key=`` for a keyed cluster) or ``etcd://HOST:PORT/Service``; calls are balanced over them with
        ``balance="round_robin"`` (default: each call to the next server that is not
        failing) or ``"pick_first"`` (one server until it fails), and a call that
        reached no server moves on to the next.

        `options` go to `Pipe`. The connection is made lazily on the first call,
        so dialing a server that is not up yet is not an error.
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
        """A client sharing this one's connection whose calls use these options.

        Options given here replace the current ones; metadata is merged over them.
        `cancel`: a `CancelToken` whose ``cancel()`` (from any thread) ends the calls
        made through the returned client with CANCELLED, telling the server.
        `wait_for_ready=True`: while the server cannot be reached, a call waits for
        it (until its deadline; with none, until the pipe is closed) instead of
        failing at once with UNAVAILABLE, as gRPC's wait-for-ready.
        """
        options = merged_options(self._gp_options, timeout, metadata, cancel, wait_for_ready)
        return type(self)(self._gp_pipe, options=options)

    @property
    def pipe(self) -> Pipe:
        return self._gp_pipe

    def close(self) -> None:
        if self._gp_owns_pipe:
            self._gp_pipe.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _gp_unary(
        self,
        method: str,
        args: list[Any],
        decode_result: Callable[[Any], T],
        idempotent: bool = False,
    ) -> T:
        """A unary call; `idempotent` (from the contract's ``@idempotent``) lets the
        pipe retry it on UNAVAILABLE."""
        wire_result = self._gp_pipe.unary(
            self._gp_service_name, method, args, self._gp_options, idempotent
        )
        try:  # `_gp_decode`, inlined: one call fewer on every unary call
            return decode_result(wire_result)
        except InvalidArgumentError:
            return self._gp_decode(method, decode_result, wire_result)

    def _gp_server_stream(
        self,
        method: str,
        args: list[Any],
        decode_item: Callable[[Any], T],
        idempotent: bool = False,
    ) -> Chan[T]:
        """A server-streaming call: the channel of what the server sends.

        Iterating it ends when the server finishes, or raises the call's RpcError
        after every item sent before the failure. Closing it cancels the call.
        """
        return self._gp_output(method, args, None, None, decode_item, idempotent)

    def _gp_client_stream(
        self,
        method: str,
        args: list[Any],
        source: Iterable[Any],
        encode_item: Callable[[Any], Any],
        decode_result: Callable[[Any], T],
        idempotent: bool = False,
    ) -> T:
        """A client-streaming call: send every item of `source`, then wait for the result."""
        stream = self._gp_pipe.stream(
            self._gp_service_name,
            method,
            args,
            self._gp_options,
            source=source,
            encode_item=encode_item,
            idempotent=idempotent,
        )
        return self._gp_decode(method, decode_result, stream.result())

    def _gp_bidi(
        self,
        method: str,
        args: list[Any],
        source: Iterable[Any],
        encode_item: Callable[[Any], Any],
        decode_item: Callable[[Any], T],
        idempotent: bool = False,
    ) -> Chan[T]:
        """A bidi call: items of `source` go out as they come; the channel brings replies."""
        return self._gp_output(method, args, source, encode_item, decode_item, idempotent)

    def _gp_output(
        self,
        method: str,
        args: list[Any],
        source: Iterable[Any] | None,
        encode_item: Callable[[Any], Any] | None,
        decode_item: Callable[[Any], T],
        idempotent: bool,
    ) -> Chan[T]:
        stream = self._gp_pipe.stream(
            self._gp_service_name,
            method,
            args,
            self._gp_options,
            source=source,
            encode_item=encode_item,
            decode_item=decode_item,
            idempotent=idempotent,
        )
        output = stream.take_output()
        output.bad_item = self._gp_malformed(method)
        return output

    def _gp_decode(self, method: str, decode: Callable[[Any], T], wire: Any) -> T:
        return decoded_result(self._gp_service_name, method, decode, wire)

    def _gp_malformed(self, method: str) -> Callable[[InvalidArgumentError], BaseException]:
        return malformed_item(self._gp_service_name, method)


def merged_options(
    current: CallOptions,
    timeout: float | None,
    metadata: Mapping[str, str] | None,
    cancel: CancelToken | None,
    wait_for_ready: bool | None,
) -> CallOptions:
    """`with_options` of both client bases: given options replace the current ones,
    metadata is merged over the current metadata."""
    merged = dict(current.metadata)
    if metadata:
        merged.update(metadata)
    return CallOptions(
        timeout=timeout if timeout is not None else current.timeout,
        metadata=merged,
        cancel=cancel if cancel is not None else current.cancel,
        wait_for_ready=current.wait_for_ready if wait_for_ready is None else wait_for_ready,
    )


def decoded_result(service: str, method: str, decode: Callable[[Any], T], wire: Any) -> T:
    try:
        return decode(wire)
    except InvalidArgumentError as exc:
        # The server sent something the contract does not allow: that is the
        # server's bug (or a contract mismatch), not the caller's argument.
        raise InternalError(
            f"{service}.{method}: malformed result from server: {exc.message}"
        ) from None


def malformed_item(service: str, method: str) -> Callable[[InvalidArgumentError], BaseException]:
    """What a stream item the contract does not allow becomes: the server's INTERNAL."""

    def malformed(exc: InvalidArgumentError) -> BaseException:
        return InternalError(f"{service}.{method}: malformed item from server: {exc.message}")

    return malformed

"""Interceptors: code that runs around every call, on the server or on the client.

One interface for both sides. Subclass `Interceptor` and override what you need:

- ``intercept(call, proceed)``: around the call. Read ``call.service``,
  ``call.method``, ``call.kind``, ``call.metadata``, ``call.deadline``,
  ``call.peer``; raise an `RpcError` to refuse the call (it never reaches the
  handler, or never leaves the client); call ``proceed()`` to go on and return
  what it returns. For a streaming call ``proceed()`` returns as soon as the
  stream is under way; use ``on_end`` to see it finish.
- ``on_end(call, code, message)``: the call is over (its STATUS was sent or
  received, or it was cancelled): the place for timing, logging and metrics of
  every shape.
- ``on_send(call, item)`` / ``on_receive(call, item)``: each stream item as it
  leaves or arrives on this side (observe only; an exception is logged and
  ignored, as a metrics bug must not fail the stream).

`call` is a `CallContext` on the server (also `current_call()` while the
handler runs) and a `calls.ClientCall` on the client; ``call.side`` says which.
On the client, ``call.metadata`` is the request metadata, and may be changed in
``intercept`` before ``proceed()``. ``call.state`` is a dict for an
interceptor's own per-call data.

Order: the list is outermost first, like layers of an onion. With
``interceptors=[a, b]``, ``a.intercept`` runs first and sees ``b``'s outcome;
``on_end`` runs ``b`` then ``a``; items going towards the wire pass ``b`` then
``a`` (the wire is outside), items coming from it ``a`` then ``b``. On the server
``intercept`` runs on the handler's thread, with `current_call()` set, after
the method was found and its arguments decoded (a call to an unknown method or
with bad arguments is answered before any interceptor runs).

Three are shipped: `LoggingInterceptor` (stdlib logging of every call: method,
code, duration), `TokenAuthClient`/`TokenAuthServer` (bearer token in the
``authorization`` metadata -> UNAUTHENTICATED), and `TracingInterceptor`
(OpenTelemetry spans, with the trace context carried in metadata; needs
``opentelemetry-api``, the ``otel`` extra, only when used).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

from .calls import ClientCall
from .context import CallContext
from .status import RpcError, StatusCode, UnauthenticatedError

CallInfo: TypeAlias = CallContext | ClientCall

log = logging.getLogger("gopherpipe.interceptors")
_STATUS_CODES = {int(code): code for code in StatusCode}
"""A dict lookup, not `StatusCode(code)`: the enum's call costs about a microsecond."""


class Interceptor:
    """Runs around every call; the base does nothing (see the module docstring)."""

    def intercept(self, call: CallInfo, proceed: Callable[[], Any]) -> Any:
        return proceed()

    def on_end(self, call: CallInfo, code: StatusCode, message: str) -> None:
        pass

    def on_send(self, call: CallInfo, item: Any) -> None:
        pass

    def on_receive(self, call: CallInfo, item: Any) -> None:
        pass


class Chain:
    """A side's interceptors, sorted once by which hooks they override, so a call pays
    only for the hooks somebody implements."""

    __slots__ = (
        "_first_reach",
        "_layers",
        "_positions",
        "all",
        "ends",
        "intercepts",
        "receives",
        "sends",
    )

    def __init__(self, interceptors: Iterable[Interceptor]) -> None:
        self.all = tuple(interceptors)
        for interceptor in self.all:
            if not isinstance(interceptor, Interceptor):
                raise TypeError(
                    f"interceptors must subclass gopherpipe_runtime.interceptors.Interceptor, "
                    f"not {type(interceptor).__name__}"
                )
        self.intercepts = _overriding(self.all, "intercept")
        self.ends = tuple(reversed(_overriding(self.all, "on_end")))
        self.sends = tuple(reversed(_overriding(self.all, "on_send")))
        self.receives = _overriding(self.all, "on_receive")
        # Positions in `all` a call has reached: on entering each intercepting one, and
        # when it proceeds (up to the next that intercepts). Innermost first, for `run`.
        positions = [self.all.index(i) for i in self.intercepts] + [len(self.all)]
        self._first_reach = positions[0]
        self._layers = tuple(
            (interceptor, positions[n] + 1, positions[n + 1])
            for n, interceptor in reversed(list(enumerate(self.intercepts)))
        )
        self._positions = {id(i): n for n, i in enumerate(self.all)}

    def run(self, call: CallInfo, innermost: Callable[[], Any]) -> Any:
        """`innermost` wrapped in every `intercept`, outermost first. Records on `call`
        how deep the call got, so that `end` tells only the interceptors it reached."""
        call.state[Chain] = self._first_reach
        proceed = innermost
        for interceptor, reached, deeper in self._layers:
            proceed = _bind(interceptor, call, proceed, reached, deeper)
        return proceed()

    def run_or_end(self, call: CallInfo, innermost: Callable[[], Any]) -> Any:
        """`run`, and `end` with the failure's code when it raises (a call that never got
        under way ends here; one that did ends when its STATUS comes)."""
        try:
            return self.run(call, innermost)
        except RpcError as exc:
            self.end(call, exc.code, exc.message)
            raise
        except BaseException as exc:
            self.end(call, StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
            raise

    def end(self, call: CallInfo, code: int, message: str) -> None:
        """`on_end`, innermost first, for the interceptors the call reached."""
        reached = call.state.get(Chain, len(self.all))
        status = _STATUS_CODES.get(code, StatusCode.UNKNOWN)
        for interceptor in self.ends:
            if self._positions[id(interceptor)] >= reached:
                continue
            try:
                interceptor.on_end(call, status, message)
            except Exception:
                log.exception("%s.on_end failed", type(interceptor).__name__)

    def observing_send(self, call: CallInfo, encode: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """`encode` (an item's way to the wire) that first shows the item to `on_send`."""
        if not self.sends:
            return encode
        hooks = self.sends

        def observed(item: Any) -> Any:
            _observe(hooks, "on_send", call, item)
            return encode(item)

        return observed

    def observing_receive(
        self, call: CallInfo, decode: Callable[[Any], Any]
    ) -> Callable[[Any], Any]:
        """`decode` (an item's way from the wire) whose result goes past `on_receive`."""
        if not self.receives:
            return decode
        hooks = self.receives

        def observed(wire: Any) -> Any:
            item = decode(wire)
            _observe(hooks, "on_receive", call, item)
            return item

        return observed


def _overriding(interceptors: Sequence[Interceptor], hook: str) -> tuple[Interceptor, ...]:
    base = getattr(Interceptor, hook)
    return tuple(i for i in interceptors if getattr(type(i), hook) is not base)


def _bind(
    interceptor: Interceptor,
    call: CallInfo,
    proceed: Callable[[], Any],
    reached: int,
    deeper: int,
) -> Callable[[], Any]:
    def proceeding() -> Any:
        call.state[Chain] = deeper
        return proceed()

    def entering() -> Any:
        call.state[Chain] = reached
        return interceptor.intercept(call, proceeding)

    return entering


def _observe(hooks: Sequence[Interceptor], hook: str, call: CallInfo, item: Any) -> None:
    for interceptor in hooks:
        try:
            getattr(interceptor, hook)(call, item)
        except Exception:
            log.exception("%s.%s failed", type(interceptor).__name__, hook)


# -- the shipped interceptors ----------------------------------------------------------


class LoggingInterceptor(Interceptor):
    """One log line per call when it ends: side, method, code, duration, peer.

    ``server 127.0.0.1:50412 ChatService.history OK 1.2ms``; failures add the
    message. Calls that end OK log at `level`, others at `error_level`.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        level: int = logging.INFO,
        error_level: int = logging.WARNING,
    ) -> None:
        self.logger = logger if logger is not None else logging.getLogger("gopherpipe.calls")
        self.level = level
        self.error_level = error_level

    def on_end(self, call: CallInfo, code: StatusCode, message: str) -> None:
        millis = (time.monotonic() - call.started) * 1000.0
        if code == StatusCode.OK:
            self.logger.log(
                self.level,
                "%s %s %s.%s OK %.1fms",
                call.side,
                call.peer,
                call.service,
                call.method,
                millis,
            )
        else:
            self.logger.log(
                self.error_level,
                "%s %s %s.%s %s %.1fms: %s",
                call.side,
                call.peer,
                call.service,
                call.method,
                code.name,
                millis,
                message,
            )


AUTHORIZATION = "authorization"


class TokenAuthClient(Interceptor):
    """Adds ``authorization: Bearer <token>`` to every call's metadata.

    `token` may be a function, called per call, for tokens that rotate.
    """

    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token

    def intercept(self, call: CallInfo, proceed: Callable[[], Any]) -> Any:
        if isinstance(call, ClientCall):
            token = self._token() if callable(self._token) else self._token
            call.metadata[AUTHORIZATION] = f"Bearer {token}"
        return proceed()


class TokenAuthServer(Interceptor):
    """Refuses calls without a valid bearer token with UNAUTHENTICATED.

    `tokens` are the accepted tokens (compared in constant time), or a function
    that says whether a token is valid. Services in `exempt` are served without
    one (by default the built-in Health service, which load balancers and
    Kubernetes probe without credentials).
    """

    def __init__(
        self,
        tokens: Iterable[str] | Callable[[str], bool],
        exempt: Iterable[str] = ("gopherpipe.Health",),  # health.HEALTH_SERVICE (it imports us)
    ) -> None:
        if callable(tokens):
            self._valid: Callable[[str], bool] = tokens
        else:
            accepted = [token.encode() for token in tokens]
            if not accepted:
                raise ValueError("TokenAuthServer needs at least one token")

            def valid(token: str) -> bool:
                given = token.encode()
                # Every comparison runs, so the time taken tells nothing about which matched.
                return sum(hmac.compare_digest(given, t) for t in accepted) > 0

            self._valid = valid
        self._exempt = frozenset(exempt)

    def intercept(self, call: CallInfo, proceed: Callable[[], Any]) -> Any:
        if call.side == "server" and call.service not in self._exempt:
            header = call.metadata.get(AUTHORIZATION, "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise UnauthenticatedError(f"{call.service}.{call.method}: no bearer token")
            if not self._valid(token):
                raise UnauthenticatedError(f"{call.service}.{call.method}: invalid token")
        return proceed()


class TracingInterceptor(Interceptor):
    """OpenTelemetry spans for every call, on either side.

    The client starts a CLIENT span and injects the trace context into the
    call's metadata (W3C ``traceparent``/``tracestate`` with the default
    propagator); the server extracts it and starts a SERVER span as its child,
    current while the handler runs, so the handler's own spans nest under it.
    Spans end with the call, with ``rpc.*`` attributes and an error status when
    the code is not OK. Needs ``opentelemetry-api`` (``pip install
    gopherpipe[otel]``); ImportError with that advice otherwise.
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import context as otel_context
            from opentelemetry import propagate, trace
        except ImportError:
            raise ImportError(
                "TracingInterceptor needs opentelemetry-api: pip install 'gopherpipe[otel]'"
            ) from None
        self._trace = trace
        self._context = otel_context
        self._propagate = propagate
        self._tracer = trace.get_tracer("gopherpipe", tracer_provider=tracer_provider)

    def intercept(self, call: CallInfo, proceed: Callable[[], Any]) -> Any:
        trace = self._trace
        name = f"{call.service}/{call.method}"
        attributes = {
            "rpc.system": "gopherpipe",
            "rpc.service": call.service,
            "rpc.method": call.method,
        }
        if isinstance(call, ClientCall):
            span = self._tracer.start_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes)
            self._propagate.inject(call.metadata, context=trace.set_span_in_context(span))
        else:
            parent = self._propagate.extract(dict(call.metadata))
            span = self._tracer.start_span(
                name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
            )
        call.state[TracingInterceptor] = span
        token = self._context.attach(trace.set_span_in_context(span))
        try:
            return proceed()
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            self._context.detach(token)

    def on_end(self, call: CallInfo, code: StatusCode, message: str) -> None:
        span = call.state.pop(TracingInterceptor, None)
        if span is None:
            return
        span.set_attribute("rpc.gopherpipe.status_code", int(code))
        if code != StatusCode.OK:
            status = self._trace.Status(self._trace.StatusCode.ERROR, f"{code.name}: {message}")
            span.set_status(status)
        span.end()


__all__ = [
    "AUTHORIZATION",
    "CallInfo",
    "Chain",
    "Interceptor",
    "LoggingInterceptor",
    "TokenAuthClient",
    "TokenAuthServer",
    "TracingInterceptor",
]

"""The built-in Health service, "gopherpipe.Health", which every `Server` answers.

Server side: `HealthState` holds one state per name -- "" for the server overall,
and one per registered service -- each SERVING until `Server.set_serving` says
otherwise, and the open `watch` streams. `service_def` is the service as a
generated server stub would hand it to `Server.add_service` (written by hand: the
runtime must not need the code generator), with two methods:

  check(service: str = "") -> str            "SERVING" or "NOT_SERVING"
  watch(service: str = "") -> stream of str  the state now, then each change

A name the server does not have is NOT_FOUND, as in gRPC's health service. A
watch holds no thread: its stream's source is a small `Chan` that a state change
feeds with `try_send` (the runtime sends it as any handler's channel), so
watchers cost a few hundred bytes each and there are at most `MAX_WATCHERS`.

`Server.stop` calls `shut_down` first: every state turns NOT_SERVING, for good,
and each watch stream ends with UNAVAILABLE after that last state, so a draining
server's grace period is not held open by its watchers. Health calls are still
answered while the server drains (server.py, `_on_call`).

Client side: `check(address_or_pipe, service)` and `watch(pipe, service)`, plain
functions over `Pipe` (no generated stub), and `probe`, the whole of
``gopherpipe health``: one check turned into a line of output and an exit code.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

from .address import parse_address
from .chan import Chan, ChanClosed
from .pipe import CallOptions, Pipe
from .service import MethodDef, MethodKind, ServiceDef
from .status import (
    DeadlineExceededError,
    NotFoundError,
    ResourceExhaustedError,
    RpcError,
    UnavailableError,
)
from .wire.convert import check_args, check_str

HEALTH_SERVICE = "gopherpipe.Health"
"""The wire name of the service (the CALL's `service`): a dot, which no contract's
class name can contain, so it never collides with a user's service."""
SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"
MAX_WATCHERS = 1024
"""Watch streams open at once per server; one more gets RESOURCE_EXHAUSTED."""
WATCH_BUFFER = 8
"""State changes queued per watcher on the server. The runtime sends them on as
the client's credit allows (1024 items by default), so a watcher falls this far
behind only once its client has stopped reading altogether; its stream then ends
with RESOURCE_EXHAUSTED rather than skip states silently."""

EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
EXIT_USAGE = 2
"""Bad arguments (click's code for usage errors, which `gopherpipe health` keeps)."""
EXIT_UNKNOWN_SERVICE = 3
EXIT_UNREACHABLE = 4
"""No connection, or no answer within the timeout."""
EXIT_ERROR = 5
"""The server answered with another error (a server without the Health service,
one that refused the call)."""


def _state(serving: bool) -> str:
    return SERVING if serving else NOT_SERVING


class HealthState:
    """The health of one server: a state per name, and the watchers of each.

    Thread-safe. Lock order: this object's lock, then a watcher channel's (never
    the reverse: nothing that holds a channel's lock calls in here).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving: dict[str, bool] = {"": True}
        self._watchers: dict[str, list[Chan[str]]] = {}
        self._watching = 0
        self.stopping = False
        """Set by `shut_down`: every state is NOT_SERVING from then on."""

    def add(self, name: str) -> None:
        """A service was registered: SERVING (NOT_SERVING if the server is stopping)."""
        with self._lock:
            self._serving.setdefault(name, not self.stopping)

    def set(self, name: str, serving: bool) -> None:
        """`Server.set_serving`; ignored once the server is stopping."""
        with self._lock:
            if name not in self._serving:
                known = ", ".join(repr(n) for n in sorted(self._serving) if n)
                raise ValueError(
                    f"set_serving: no service {name!r} on this server (registered: "
                    f"{known or 'none'}; '' is the server overall)"
                )
            if self.stopping or self._serving[name] == serving:
                return
            self._serving[name] = serving
            self._notify(name, _state(serving))

    def get(self, name: str) -> str:
        """The state of `name`; NotFoundError if the server has no such service."""
        serving = self._serving.get(name)
        if serving is None:
            raise NotFoundError(f"{HEALTH_SERVICE}: unknown service {name!r}")
        return _state(serving)

    def watch(self, name: str) -> Chan[str]:
        """A channel holding the state of `name` now, fed each change after."""
        with self._lock:
            serving = self._serving.get(name)
            if serving is None:
                raise NotFoundError(f"{HEALTH_SERVICE}: unknown service {name!r}")
            if self._watching >= MAX_WATCHERS:
                self._prune()
                if self._watching >= MAX_WATCHERS:
                    raise ResourceExhaustedError(
                        f"{HEALTH_SERVICE}: {self._watching} watch streams are open, the "
                        f"server's limit"
                    )
            chan: Chan[str] = Chan(WATCH_BUFFER)
            chan.try_send(_state(serving))
            if self.stopping:
                chan.close(UnavailableError("server is shutting down"))
            else:
                self._watchers.setdefault(name, []).append(chan)
                self._watching += 1
            return chan

    def shut_down(self) -> None:
        """Everything NOT_SERVING, for good; every watch stream ends (UNAVAILABLE)."""
        with self._lock:
            if self.stopping:
                return
            self.stopping = True
            for name, serving in self._serving.items():
                self._serving[name] = False
                if serving:
                    self._notify(name, NOT_SERVING)
            for chans in self._watchers.values():
                for chan in chans:
                    chan.close(UnavailableError("server is shutting down"))
            self._watchers.clear()
            self._watching = 0

    def _notify(self, name: str, state: str) -> None:
        """Send `state` to the watchers of `name` (lock held); drop those that left."""
        chans = self._watchers.get(name)
        if not chans:
            return
        kept: list[Chan[str]] = []
        for chan in chans:
            try:
                if chan.try_send(state):
                    kept.append(chan)
                else:
                    chan.close(
                        ResourceExhaustedError(
                            f"{HEALTH_SERVICE}: watcher fell {WATCH_BUFFER} changes behind"
                        )
                    )
            except ChanClosed:  # the stream ended: client cancelled or went away
                pass
        self._watching -= len(chans) - len(kept)
        if kept:
            self._watchers[name] = kept
        else:
            del self._watchers[name]

    def _prune(self) -> None:
        """Forget watchers whose streams ended (lock held): a watch that ends closes
        its channel, but only a change or this sweep finds it."""
        for name in list(self._watchers):
            chans = [c for c in self._watchers[name] if not c.closed]
            self._watching -= len(self._watchers[name]) - len(chans)
            if chans:
                self._watchers[name] = chans
            else:
                del self._watchers[name]

    def service_def(self) -> ServiceDef:
        """The service as `Server.add_service` takes it."""
        return ServiceDef(
            HEALTH_SERVICE,
            {
                "check": MethodDef(MethodKind.UNARY, _check_args, self.get, _encode_state),
                "watch": MethodDef(
                    MethodKind.SERVER_STREAM,
                    _watch_args,
                    self.watch,
                    _encode_state,
                    encode_item=_encode_state,
                ),
            },
        )


def _check_args(value: Any) -> tuple[Any, ...]:
    args = check_args(value, "check", 0, 1)
    return (check_str(args[0], "check(): argument 'service'"),) if args else ("",)


def _watch_args(value: Any) -> tuple[Any, ...]:
    args = check_args(value, "watch", 0, 1)
    return (check_str(args[0], "watch(): argument 'service'"),) if args else ("",)


def _encode_state(value: Any) -> str:
    return check_str(value, "health state")


def _decode_state(value: Any) -> str:
    return check_str(value, f"{HEALTH_SERVICE}: state")


# -- client side ------------------------------------------------------------------------


def check(
    target: str | Pipe,
    service: str = "",
    *,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
) -> str:
    """The health of `service` ("" the server overall) at `target`: "SERVING" or
    "NOT_SERVING" (a later server may add states: treat anything else as not serving).

    `target` is an address (a connection is made for this check and closed, with
    `tls` for tls:// and wss://) or a `Pipe` to reuse. `timeout` bounds the whole
    check, connecting included. Raises NotFoundError for a service the server does
    not have, UnavailableError when it cannot be reached, DeadlineExceededError when
    it does not answer in time, and any other RpcError the server sends.
    """
    options = CallOptions(timeout=timeout)
    if isinstance(target, Pipe):
        return _decode_state(target.unary(HEALTH_SERVICE, "check", [service], options))
    with Pipe(target, tls=tls, connect_timeout=timeout) as pipe:
        return _decode_state(pipe.unary(HEALTH_SERVICE, "check", [service], options))


def watch(pipe: Pipe, service: str = "", *, timeout: float | None = None) -> Chan[str]:
    """A channel of the health of `service` ("" overall) over `pipe`: the state now,
    then each change. It ends with the call's RpcError: NotFoundError for a service
    the server does not have, UnavailableError once the server stops (after its
    last state, NOT_SERVING). Closing the channel ends the watch.
    """
    stream = pipe.stream(
        HEALTH_SERVICE,
        "watch",
        [service],
        CallOptions(timeout=timeout),
        decode_item=_decode_state,
    )
    return stream.take_output()


def probe(
    address: str,
    service: str = "",
    *,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, str]:
    """One check as a probe sees it: (exit code, the line to print). The state goes
    to stdout; an error's line starts with "error:" and goes to stderr."""
    try:
        parse_address(address)
    except ValueError as exc:
        return EXIT_USAGE, f"error: {exc}"
    try:
        state = check(address, service, timeout=timeout, tls=tls)
    except NotFoundError as exc:
        return EXIT_UNKNOWN_SERVICE, f"error: {exc.message}"
    except (UnavailableError, DeadlineExceededError) as exc:
        return EXIT_UNREACHABLE, f"error: {exc.code.name}: {exc.message}"
    except RpcError as exc:
        return EXIT_ERROR, f"error: {exc.code.name}: {exc.message}"
    return (EXIT_SERVING if state == SERVING else EXIT_NOT_SERVING), state

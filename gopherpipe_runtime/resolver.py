"""Discovery's two faces: resolvers (clients) and announcers (servers).

Resolvers: what an address that names a service, rather than one server, stands for now.

A `Pipe` over ``tcp://host:port`` talks to one server. A Pipe over a list
(``tcp://a:1,b:2``) or a discovery address (``gophermap://Echo``,
``etcd://127.0.0.1:2379/Echo``) asks a `Resolver` for the current endpoints, each a
plain address `address.parse_address` accepts, and balances its calls over them
(pipe.py). A resolver whose answer changes (members join and die, leases expire)
calls its subscribers with the whole new list; subscribers must not block, since
the callback runs on the resolver's own thread.

Which resolver an address needs is decided here, by scheme, so the Pipe never
names a discovery module: gophermap:// and etcd:// are imported only when an
address uses them (etcd needs an optional extra). Options a resolver needs, such
as the `GopherMap` of ``gophermap=gmap``, come from the Pipe's options.

Announcers: what a `Server` tells a registry (``Server(gophermap=gmap)``,
``Server(registry=EtcdRegistry(...))``). Once bound, the server announces each
service it serves (not the built-in Health and Reflection) with every address it
bound, and withdraws them when `stop` begins, before it drains, so that clients
stop choosing it while its calls in progress finish.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from .address import parse_address

Subscriber = Callable[[list[str]], None]

# scheme -> "module:function"; the function is `ResolverFactory`. Kept as text so that
# importing the runtime does not import discovery (or etcd's client) for nothing.
_DISCOVERY_SCHEMES = {
    "gophermap": "gopherpipe_runtime.discovery.gophermap:resolver_for_address",
    "etcd": "gopherpipe_runtime.discovery.etcd:resolver_for_address",
}

ResolverFactory = Callable[[str, Mapping[str, Any]], "Resolver"]
"""`factory(address, options)` -> a started Resolver; `options` are the Pipe's
discovery options (e.g. ``{"gophermap": gmap}``)."""


class Resolver(ABC):
    """The endpoints behind one service address, and news when they change."""

    @abstractmethod
    def endpoints(self) -> list[str]:
        """The current endpoints (plain addresses), possibly none; never blocks long."""

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(endpoints)` whenever the list changes; returns an unsubscribe.

        The default is for a list that never changes: nothing is ever called.
        """
        return _nothing

    def close(self) -> None:  # noqa: B027 -- optional: most resolvers hold nothing
        """Stop watching; a resolver that holds nothing has nothing to do."""


def _nothing() -> None:
    pass


class StaticResolver(Resolver):
    """A fixed list, as in ``tcp://a:1,b:2``."""

    def __init__(self, endpoints: list[str]) -> None:
        self._endpoints = list(endpoints)

    def endpoints(self) -> list[str]:
        return list(self._endpoints)


class WatchedEndpoints:
    """The subscriber bookkeeping most resolvers need: a current list and callbacks.

    `update` stores a new list and, only when it differs from the old one as a set,
    calls every subscriber outside the lock (a subscriber may call back in).
    """

    def __init__(self, endpoints: list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._endpoints = sorted(set(endpoints or ()))
        self._subscribers: list[Subscriber] = []

    def current(self) -> list[str]:
        with self._lock:
            return list(self._endpoints)

    def update(self, endpoints: list[str]) -> None:
        new = sorted(set(endpoints))
        with self._lock:
            if new == self._endpoints:
                return
            self._endpoints = new
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber(list(new))

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe


def split_address_list(text: str) -> list[str]:
    """``tcp://a:1,b:2`` -> ``["tcp://a:1", "tcp://b:2"]``; an item may name its own
    scheme (``tcp://a:1,unix:///run/b.sock``). Every item is checked by
    `parse_address`, so a mistake is reported before anything connects."""
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise ValueError(f"address list {text!r} has an empty item")
    scheme = items[0].partition("://")[0]
    endpoints = [item if "://" in item else f"{scheme}://{item}" for item in items]
    for endpoint in endpoints:
        parse_address(endpoint)
    return endpoints


def is_discovery_address(text: str) -> bool:
    """Whether `text` needs a resolver rather than naming one server."""
    scheme = text.partition("://")[0]
    return scheme in _DISCOVERY_SCHEMES or ("://" in text and "," in text)


def resolver_for(text: str, options: Mapping[str, Any]) -> Resolver:
    """The resolver for a list or a discovery address (see `is_discovery_address`)."""
    scheme = text.partition("://")[0]
    target = _DISCOVERY_SCHEMES.get(scheme)
    if target is None:
        return StaticResolver(split_address_list(text))
    module_name, _, function_name = target.partition(":")
    factory: ResolverFactory = getattr(importlib.import_module(module_name), function_name)
    return factory(text, options)


class Announcer(Protocol):
    """What `Server(gophermap=, registry=)` needs of a registry."""

    def announce(self, services: Mapping[str, Sequence[str]], meta: Mapping[str, str]) -> None:
        """Advertise ``{service name: [addresses]}`` with `meta` (e.g. version, zone),
        adding to what was announced before; must not block for long."""

    def withdraw(self, services: Iterable[str]) -> None:
        """Stop advertising these services (of this server); never raises for a
        registry that cannot be reached (the entry then ends with its lease/member)."""

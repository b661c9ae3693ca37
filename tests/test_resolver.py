"""resolver.py: address lists, which addresses need a resolver, WatchedEndpoints."""

from __future__ import annotations

import threading

import pytest

from gopherpipe_runtime.resolver import (
    StaticResolver,
    WatchedEndpoints,
    is_discovery_address,
    resolver_for,
    split_address_list,
)


def test_a_list_names_its_scheme_once_or_per_item() -> None:
    assert split_address_list("tcp://a:1,b:2") == ["tcp://a:1", "tcp://b:2"]
    assert split_address_list("tcp://a:1, unix:///run/b.sock") == [
        "tcp://a:1",
        "unix:///run/b.sock",
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("tcp://a:1,", "empty item"),
        ("tcp://a:1,,b:2", "empty item"),
        ("tcp://a:1,b", "port"),
        ("tcp://a:1,b:notaport", "port"),
        ("nosuch://a:1,b:2", "nosuch"),
    ],
)
def test_a_bad_list_is_refused_before_anything_connects(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        split_address_list(text)


def test_which_addresses_need_a_resolver() -> None:
    assert is_discovery_address("tcp://a:1,b:2")
    assert is_discovery_address("gophermap://Echo")
    assert is_discovery_address("gophermap://Echo@127.0.0.1:7946")
    assert is_discovery_address("etcd://127.0.0.1:2379/Echo")
    assert not is_discovery_address("tcp://a:1")
    assert not is_discovery_address("unix:///run/a.sock")


def test_a_list_resolves_to_itself_in_order() -> None:
    resolver = resolver_for("tcp://b:2,a:1", {})
    assert isinstance(resolver, StaticResolver)
    assert resolver.endpoints() == ["tcp://b:2", "tcp://a:1"]
    unsubscribe = resolver.subscribe(lambda endpoints: pytest.fail("a list never changes"))
    unsubscribe()
    resolver.close()


def test_watched_endpoints_tell_subscribers_of_changes_only() -> None:
    watched = WatchedEndpoints(["tcp://b:2", "tcp://a:1", "tcp://a:1"])
    assert watched.current() == ["tcp://a:1", "tcp://b:2"]
    heard: list[list[str]] = []
    unsubscribe = watched.subscribe(heard.append)
    watched.update(["tcp://b:2", "tcp://a:1"])  # the same set: no news
    assert heard == []
    watched.update(["tcp://c:3"])
    watched.update([])
    assert heard == [["tcp://c:3"], []]
    unsubscribe()
    unsubscribe()  # twice is harmless
    watched.update(["tcp://d:4"])
    assert heard == [["tcp://c:3"], []]
    assert watched.current() == ["tcp://d:4"]


def test_a_subscriber_may_call_back_in() -> None:
    """Subscribers run outside the lock: one that reads the list does not deadlock."""
    watched = WatchedEndpoints()
    seen: list[list[str]] = []
    watched.subscribe(lambda endpoints: seen.append(watched.current()))
    done = threading.Event()

    def update() -> None:
        watched.update(["tcp://a:1"])
        done.set()

    threading.Thread(target=update, daemon=True).start()
    assert done.wait(5), "update deadlocked on a subscriber that called back in"
    assert seen == [["tcp://a:1"]]

"""discovery/etcd.py without an etcd server: etcd:// addresses, the registry's options,
the missing extra, and the sans-IO `WatchState` fed the gateway's watch lines, good and
bad (tests/test_etcd_e2e.py runs the rest against a real etcd)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import Any

import pytest
from e2e_harness import same_checkout_env

from gopherpipe_runtime.discovery.etcd import EtcdError, WatchState, read_range
from gopherpipe_runtime.resolver import resolver_for


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def entry(address: str) -> str:
    return b64(json.dumps({"address": address, "service": "Echo", "meta": {}}))


def line(result: dict[str, Any]) -> bytes:
    return json.dumps({"result": result}).encode() + b"\n"


def put(key: str, address: str, revision: int) -> dict[str, Any]:
    return {"kv": {"key": b64(key), "value": entry(address), "mod_revision": str(revision)}}


def delete(key: str, revision: int) -> dict[str, Any]:
    return {"type": "DELETE", "kv": {"key": b64(key), "mod_revision": str(revision)}}


class Reader:
    """The registry's entry reader, counting what it skips."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def __call__(self, key: str, value: bytes) -> str | None:
        try:
            address = json.loads(value)["address"]
            assert isinstance(address, str) and address.startswith("tcp://")
        except (ValueError, KeyError, TypeError, AssertionError):
            self.skipped.append(key)
            return None
        return address


def test_a_watch_state_follows_puts_and_deletes_from_the_range_it_started_with() -> None:
    state = WatchState(Reader())
    state.reset({"/p/Echo/a": "tcp://a:1"}, 10)
    assert state.start_revision == 11
    assert state.feed(line({"header": {"revision": "10"}, "created": True})) == "created"
    events = [put("/p/Echo/b", "tcp://b:2", 11), delete("/p/Echo/a", 12)]
    # The header is the store's revision, ahead of a catching-up batch's last event.
    assert state.feed(line({"header": {"revision": "40"}, "events": events})) == "events"
    assert state.endpoints() == ["tcp://b:2"]
    assert state.start_revision == 13
    assert state.feed(line({"header": {"revision": "50"}})) == "progress"
    assert state.start_revision == 51


def test_a_compacted_revision_asks_for_the_range_again() -> None:
    state = WatchState(Reader())
    state.reset({}, 3)
    cancel = {"header": {}, "canceled": True, "compact_revision": "9"}
    assert state.feed(line(cancel)) == "resync"
    assert state.entries is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "the watch sent"),
        (b'{"error": {"grpc_code": 14, "message": "etcdserver: no leader"}}\n', "no leader"),
        (line({"canceled": True, "cancel_reason": "permission denied"}), "permission denied"),
        (line({"events": {"not": "a list"}}), "not a list"),
    ],
)
def test_what_is_not_a_watch_response_reopens_the_stream(raw: bytes, message: str) -> None:
    state = WatchState(Reader())
    state.reset({"/p/Echo/a": "tcp://a:1"}, 3)
    with pytest.raises(EtcdError, match=message):
        state.feed(raw)
    assert state.endpoints() == ["tcp://a:1"]  # nothing applied


def test_unreadable_events_and_values_are_skipped_and_counted() -> None:
    reader = Reader()
    state = WatchState(reader)
    state.reset({"/p/Echo/a": "tcp://a:1"}, 3)
    events = [
        {"kv": {"key": "%%% not base64", "mod_revision": "4"}},
        {"no kv": True},
        {"kv": {"key": b64("/p/Echo/b"), "value": b64("{"), "mod_revision": "5"}},
        {"kv": {"key": b64("/p/Echo/a"), "value": b64('{"address": 7}'), "mod_revision": "6"}},
        put("/p/Echo/c", "tcp://c:3", 7),
    ]
    assert state.feed(line({"events": events})) == "events"
    # a's new value is unreadable: a is gone rather than stale.
    assert state.endpoints() == ["tcp://c:3"]
    assert len(reader.skipped) == 4
    assert state.start_revision == 8


def test_a_range_reply_is_read_and_a_malformed_one_refused() -> None:
    reader = Reader()
    reply = {
        "header": {"revision": "12"},
        "kvs": [
            {"key": b64("/p/Echo/a"), "value": entry("tcp://a:1")},
            {"key": b64("/p/Echo/b"), "value": b64("garbage")},
        ],
    }
    assert read_range(reply, reader) == ({"/p/Echo/a": "tcp://a:1"}, 12)
    assert reader.skipped == ["/p/Echo/b"]
    assert read_range({"header": {"revision": "3"}}, reader) == ({}, 3)  # no kvs: empty
    for bad in ({}, {"header": {"revision": "x"}}, "text", {"header": {"revision": 1}, "kvs": 5}):
        with pytest.raises(EtcdError, match="malformed range reply"):
            read_range(bad, reader)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("etcd://127.0.0.1:2379/Echo", ("http://127.0.0.1:2379", "/gopherpipe/services/", "Echo")),
        ("etcd://[::1]:2379/a/b/Echo", ("http://[::1]:2379", "/a/b/", "Echo")),
    ],
)
def test_etcd_addresses(address: str, expected: tuple[str, str, str]) -> None:
    from gopherpipe_runtime.discovery.etcd import parse_etcd_address

    assert parse_etcd_address(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("etcd://127.0.0.1:2379", "needs host, port and service"),
        ("etcd://127.0.0.1:2379/", "needs host, port and service"),
        ("etcd://127.0.0.1/Echo", "needs host and port"),
        ("etcd://127.0.0.1:x/Echo", "needs host and port"),
        ("etcd://127.0.0.1:2379/a//Echo", "must end with a service name"),
        ("etcd://127.0.0.1:2379/Echo/", "must end with a service name"),
        ("etcd://127.0.0.1:2379/Echo?x=1", "no '?'"),
    ],
)
def test_bad_etcd_addresses_are_refused_clearly(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolver_for(address, {})


def test_bad_registry_options_are_refused_clearly() -> None:
    pytest.importorskip("etcd3gw")
    from gopherpipe_runtime.discovery import EtcdRegistry

    for url in ("127.0.0.1:2379", "ftp://h:1", "http://h:1/v3", "http://h:99999"):
        with pytest.raises(ValueError, match="etcd URL"):
            EtcdRegistry(url)
    with pytest.raises(ValueError, match="prefix"):
        EtcdRegistry(prefix="services")
    with pytest.raises(ValueError, match="positive"):
        EtcdRegistry(ttl=0)
    with pytest.raises(ValueError, match="service name"):
        EtcdRegistry().resolve("a/b")


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from gopherpipe_runtime.discovery import EtcdRegistry

    monkeypatch.setitem(sys.modules, "etcd3gw", None)  # what a missing package looks like
    with pytest.raises(ImportError, match=r"pip install 'gopherpipe\[etcd\]'"):
        EtcdRegistry()


def test_key_encoding_round_trips_every_address() -> None:
    from gopherpipe_runtime.discovery.etcd import _b64, _range_end

    assert base64.b64decode(_b64("/p/Echo/tcp://[::1]:7")) == b"/p/Echo/tcp://[::1]:7"
    assert _range_end("/p/Echo/") == "/p/Echo0"


def test_discovery_imports_etcd3gw_only_when_a_registry_is_made() -> None:
    pytest.importorskip("etcd3gw")
    code = (
        "import sys\n"
        "import gopherpipe_runtime, gopherpipe_runtime.discovery.etcd\n"
        "assert 'etcd3gw' not in sys.modules\n"
        "from gopherpipe_runtime.discovery import EtcdRegistry\n"
        "assert 'gopherpipe_runtime.discovery.gophermap' not in sys.modules\n"
        "EtcdRegistry('http://127.0.0.1:2379')\n"
        "assert 'etcd3gw' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=same_checkout_env(), timeout=60)

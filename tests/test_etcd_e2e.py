"""EtcdRegistry against a real etcd server (tests/etcd_server.py): servers in their own
processes register under a lease, a SIGKILLed one's entry expires with it, a graceful
stop withdraws at once, watches and the etcd:// resolver follow servers coming and
going, and survive etcd restarting and compacting."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import ServerProcess, generate_stubs, wait_until
from etcd_server import EtcdServer

from gopherpipe_runtime.resolver import resolver_for

SERVICE = "AllTypes"  # what tests/e2e/serve.py serves


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_stubs(tmp_path_factory.mktemp("etcd_stubs"), "e2e_alltypes.py")


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A prefix of the test's own, so that tests sharing the session's etcd never see
    each other's entries."""
    return f"/gopherpipe-test/{request.node.name}/"


def registry(etcd: EtcdServer, prefix: str, **options: Any) -> Any:
    from gopherpipe_runtime.discovery import EtcdRegistry

    return EtcdRegistry(etcd.url, prefix=prefix, **options)


def serve(stubs: Path, etcd: EtcdServer, prefix: str, ttl: float, **options: Any) -> ServerProcess:
    # The prefix reaches the server through the harness's EtcdRegistry options.
    return ServerProcess(
        stubs,
        options=json.dumps(options),
        harness=json.dumps({"etcd": {"url": etcd.url, "ttl": ttl, "prefix": prefix}}),
    )


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


class Recorder:
    """A subscriber that keeps every list it is called with."""

    def __init__(self) -> None:
        self.lists: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, endpoints: list[str]) -> None:
        with self.lock:
            self.lists.append(list(endpoints))

    def last(self) -> list[str] | None:
        with self.lock:
            return self.lists[-1] if self.lists else None


def raw_get(etcd: EtcdServer, prefix: str) -> dict[str, Any]:
    """Every key under `prefix` with its JSON value, read with etcd3gw directly."""
    import etcd3gw

    client = etcd3gw.client(host="127.0.0.1", port=etcd.client_port, timeout=5)
    return {meta["key"].decode(): json.loads(value) for value, meta in client.get_prefix(prefix)}


def test_a_server_registers_its_services_under_the_documented_keys(
    etcd: EtcdServer, prefix: str, stubs: Path, servers: list[ServerProcess]
) -> None:
    servers.append(serve(stubs, etcd, prefix, 5, service_meta={"version": "1.2", "zone": "z1"}))
    address = servers[0].address
    with registry(etcd, prefix) as reader:
        wait_until(lambda: reader.resolve(SERVICE) == [address], "the server is registered", 10)
    assert raw_get(etcd, prefix) == {
        f"{prefix}{SERVICE}/{address}": {
            "address": address,
            "service": SERVICE,
            "meta": {"version": "1.2", "zone": "z1"},
        }
    }


def test_a_killed_servers_entry_expires_with_its_lease(
    etcd: EtcdServer, prefix: str, stubs: Path, servers: list[ServerProcess]
) -> None:
    ttl = 2.0  # etcd's least TTL with its default timing
    servers.append(serve(stubs, etcd, prefix, ttl))
    servers.append(serve(stubs, etcd, prefix, ttl))
    victim, survivor = servers
    with registry(etcd, prefix) as reader:
        both = sorted([victim.address, survivor.address])
        wait_until(lambda: reader.resolve(SERVICE) == both, "both servers are registered", 10)
        killed = time.monotonic()
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        slack = 3.0  # etcd checks expiry every 0.5 s; a loaded machine adds some
        wait_until(
            lambda: reader.resolve(SERVICE) == [survivor.address],
            f"the killed server's entry expired within ttl + {slack} s",
            ttl + slack,
        )
        took = time.monotonic() - killed
        print(f"\nkilled server's entry gone {took:.2f} s after SIGKILL (ttl {ttl} s)")
        hold = time.monotonic() + ttl
        while time.monotonic() < hold:  # the survivor's entry outlives a ttl: refreshed
            assert reader.resolve(SERVICE) == [survivor.address]
            time.sleep(0.1)


def test_a_graceful_stop_withdraws_at_once(
    etcd: EtcdServer, prefix: str, stubs: Path, servers: list[ServerProcess]
) -> None:
    ttl = 60.0  # far longer than the wait below: only a withdrawal explains the removal
    servers.append(serve(stubs, etcd, prefix, ttl))
    with registry(etcd, prefix) as reader:
        wait_until(lambda: reader.resolve(SERVICE) != [], "the server is registered", 10)
        stopping = time.monotonic()
        servers[0].stop()
        wait_until(lambda: reader.resolve(SERVICE) == [], "the entry is gone", 5)
        print(f"\nwithdrawn {time.monotonic() - stopping:.2f} s after stop began (ttl {ttl} s)")


def test_a_watch_sees_servers_appear_and_go(
    etcd: EtcdServer, prefix: str, stubs: Path, servers: list[ServerProcess]
) -> None:
    seen = Recorder()
    with registry(etcd, prefix) as watcher:
        cancel = watcher.watch(SERVICE, seen)
        assert seen.lists == [[]]  # the first list comes before watch() returns
        servers.append(serve(stubs, etcd, prefix, 2))
        first = servers[0].address
        wait_until(lambda: seen.last() == [first], "the watch sees the first server")
        servers.append(serve(stubs, etcd, prefix, 2))
        second = servers[1].address
        wait_until(lambda: seen.last() == sorted([first, second]), "the watch sees the second")
        servers[0].proc.send_signal(signal.SIGKILL)
        wait_until(lambda: seen.last() == [second], "the watch sees the first one's lease end")
        cancel()
    assert watcher.stats()["callback_errors"] == 0


def test_the_etcd_resolver_calls_its_subscribers_with_each_new_list(
    etcd: EtcdServer, stubs: Path, servers: list[ServerProcess]
) -> None:
    prefix = "/gopherpipe-test/resolver/"
    servers.append(serve(stubs, etcd, prefix, 2))
    first = servers[0].address
    with registry(etcd, prefix) as reader:
        wait_until(lambda: reader.resolve(SERVICE) == [first], "the first server is registered")
    resolver = resolver_for(f"etcd://127.0.0.1:{etcd.client_port}{prefix}{SERVICE}", {})
    try:
        assert resolver.endpoints() == [first]  # resolved before the factory returned
        seen = Recorder()
        unsubscribe = resolver.subscribe(seen)
        servers.append(serve(stubs, etcd, prefix, 2))
        both = sorted([first, servers[1].address])
        wait_until(lambda: seen.last() == both, "the subscriber is told of the new server")
        assert resolver.endpoints() == both
        unsubscribe()
    finally:
        resolver.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("gopherpipe-etcd")]


def test_one_keeper_thread_per_registry_and_close_revokes_the_lease(
    etcd: EtcdServer, prefix: str
) -> None:
    services = {f"S{i}": ["tcp://127.0.0.1:7000", "tcp://127.0.0.1:7001"] for i in range(20)}
    with registry(etcd, prefix, ttl=60) as reader:
        announcer = registry(etcd, prefix, ttl=60)
        announcer.announce(services, {"zone": "z1"})
        assert reader.resolve("S7") == ["tcp://127.0.0.1:7000", "tcp://127.0.0.1:7001"]
        assert [t.name for t in threading.enumerate() if "keeper" in t.name] == [
            "gopherpipe-etcd-keeper"
        ]
        announcer.close()
        assert len(raw_get(etcd, prefix)) == 0  # revoked: no waiting for the ttl
        assert not [t for t in threading.enumerate() if "keeper" in t.name]


def test_withdraw_deletes_only_entries_still_under_its_own_lease(
    etcd: EtcdServer, prefix: str
) -> None:
    address = "tcp://127.0.0.1:7100"
    with registry(etcd, prefix, ttl=60) as old, registry(etcd, prefix, ttl=60) as new:
        old.announce({"Echo": [address], "Chat": [address]}, {})
        # A server restarted on the same address registers before the old one's
        # withdrawal (or lease end) arrives: the entry is the new server's now.
        new.announce({"Echo": [address]}, {"incarnation": "2"})
        old.withdraw(["Echo", "Chat"])  # Chat goes; Echo is no longer old's to delete
        assert raw_get(etcd, prefix) == {
            f"{prefix}Echo/{address}": {
                "address": address,
                "service": "Echo",
                "meta": {"incarnation": "2"},
            }
        }


def test_an_expired_lease_is_replaced_and_every_entry_written_again(
    etcd: EtcdServer, prefix: str
) -> None:
    with registry(etcd, prefix, ttl=3) as announcer, registry(etcd, prefix) as reader:
        announcer.announce({"Echo": ["tcp://127.0.0.1:7200"], "Chat": ["tcp://127.0.0.1:7201"]}, {})
        # What a partition longer than the ttl does: etcd ends the lease meanwhile.
        lease_id = announcer._lease.id
        reader._post("/kv/lease/revoke", {"ID": lease_id})
        assert reader.resolve("Echo") == []
        wait_until(
            lambda: reader.resolve("Echo") == ["tcp://127.0.0.1:7200"]
            and reader.resolve("Chat") == ["tcp://127.0.0.1:7201"],
            "the keeper registered both entries again under a new lease",
            10,
        )
        assert announcer._lease.id != lease_id
        assert announcer.stats()["lease_grants"] == 2


def test_malformed_entries_are_skipped_and_counted(etcd: EtcdServer, prefix: str) -> None:
    import etcd3gw

    client = etcd3gw.client(host="127.0.0.1", port=etcd.client_port, timeout=5)
    client.put(f"{prefix}Echo/a", "not json")
    client.put(f"{prefix}Echo/b", json.dumps({"address": "nowhere"}))
    client.put(f"{prefix}Echo/c", json.dumps({"address": 7}))
    client.put(f"{prefix}Echo/d", json.dumps({"address": "tcp://127.0.0.1:7300"}))
    with registry(etcd, prefix) as reader:
        assert reader.resolve("Echo") == ["tcp://127.0.0.1:7300"]
        assert reader.stats()["malformed_entries"] == 3
        seen = Recorder()
        reader.watch("Echo", seen)
        client.put(f"{prefix}Echo/e", "{")
        client.put(f"{prefix}Echo/f", json.dumps({"address": "tcp://127.0.0.1:7301"}))
        wait_until(
            lambda: seen.last() == ["tcp://127.0.0.1:7300", "tcp://127.0.0.1:7301"],
            "the watch adds the valid entry",
        )
        assert reader.stats()["malformed_entries"] == 7


def test_a_watch_resumes_after_etcd_restarts(etcd_bin: str, tmp_path: Path) -> None:
    own = EtcdServer(etcd_bin, tmp_path)
    own.start()
    try:
        prefix = "/gopherpipe-test/restart/"
        seen = Recorder()
        with registry(own, prefix, ttl=30) as watcher, registry(own, prefix, ttl=30) as announcer:
            watcher.watch("Echo", seen)
            announcer.announce({"Echo": ["tcp://127.0.0.1:7400"]}, {})
            wait_until(lambda: seen.last() == ["tcp://127.0.0.1:7400"], "the watch sees it")
            own.kill()
            # Announced while etcd is down: logged, and written by the keeper later.
            announcer.announce({"Echo": ["tcp://127.0.0.1:7401"]}, {})
            own.start()  # same ports, same data: the lease and the first entry survive
            wait_until(
                lambda: seen.last() == ["tcp://127.0.0.1:7400", "tcp://127.0.0.1:7401"],
                "the reopened watch sees the entry the keeper wrote after the restart",
            )
            assert watcher.stats()["watch_reconnects"] >= 1
            assert announcer.stats()["lease_grants"] == 1
    finally:
        own.stop()


def test_a_watch_starts_from_the_revision_its_list_was_read_at(
    etcd: EtcdServer, prefix: str
) -> None:
    from gopherpipe_runtime.discovery.etcd import _Watch

    with registry(etcd, prefix) as reader, registry(etcd, prefix, ttl=60) as announcer:
        announcer.announce({"Echo": ["tcp://127.0.0.1:7450"]}, {})
        state, revision = reader._range(reader.service_prefix("Echo"))
        # Written between the read and the watch: what a watch from "now" would miss.
        announcer.announce({"Echo": ["tcp://127.0.0.1:7451"]}, {})
        seen = Recorder()
        watch = _Watch(reader, "Echo", seen)
        watch.state.reset(state, revision)
        watch.start(read_first=False)
        try:
            wait_until(
                lambda: seen.last() == ["tcp://127.0.0.1:7450", "tcp://127.0.0.1:7451"],
                "the watch delivered the entry written after the read",
            )
        finally:
            watch.cancel()


def test_a_watch_whose_revision_was_compacted_reads_the_range_again(
    etcd: EtcdServer, prefix: str
) -> None:
    from gopherpipe_runtime.discovery.etcd import _Watch

    with registry(etcd, prefix) as reader, registry(etcd, prefix, ttl=60) as announcer:
        announcer.announce({"Echo": ["tcp://127.0.0.1:7500"]}, {})
        announcer.announce({"Echo": ["tcp://127.0.0.1:7501"]}, {})
        _, revision = reader._range(prefix)
        reader._post("/kv/compaction", {"revision": revision})
        seen = Recorder()
        # A watch that last saw revision 1 (long compacted), as after a long outage.
        watch = _Watch(reader, "Echo", seen)
        watch.state.reset({}, 1)
        watch.start(read_first=False)
        try:
            wait_until(
                lambda: seen.last() == ["tcp://127.0.0.1:7500", "tcp://127.0.0.1:7501"],
                "the watch read the range again",
            )
            assert reader.stats()["watch_resyncs"] == 1
        finally:
            watch.cancel()


def test_an_unreachable_etcd_fails_clearly_and_never_blocks_a_server() -> None:
    from etcd_server import free_port

    from gopherpipe_runtime.discovery import EtcdRegistry
    from gopherpipe_runtime.discovery.etcd import EtcdError

    pytest.importorskip("etcd3gw")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with EtcdRegistry(url, timeout=1) as nowhere:
        nowhere.announce({"Echo": ["tcp://127.0.0.1:7600"]}, {})  # logged, retried
        nowhere.withdraw(["Echo"])  # never raises
        with pytest.raises(EtcdError, match=r"etcd at http://127\.0\.0\.1:\d+: /kv/range failed"):
            nowhere.resolve("Echo")
    resolver = resolver_for(f"etcd://{url.removeprefix('http://')}/Echo", {})
    assert resolver.endpoints() == []
    resolver.close()

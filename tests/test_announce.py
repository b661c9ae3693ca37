"""Server -> Announcer: what a registry is told, and when (resolver.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from gopherpipe_runtime import Server
from gopherpipe_runtime.service import ServiceDef


class RecordingAnnouncer:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def announce(self, services: Mapping[str, Sequence[str]], meta: Mapping[str, str]) -> None:
        self.events.append(("announce", ({k: list(v) for k, v in services.items()}, dict(meta))))

    def withdraw(self, services: Iterable[str]) -> None:
        self.events.append(("withdraw", sorted(services)))


class FailingAnnouncer(RecordingAnnouncer):
    def withdraw(self, services: Iterable[str]) -> None:
        raise OSError("registry unreachable")


def _service(name: str) -> ServiceDef:
    return ServiceDef(name, {})


def test_server_announces_user_services_on_every_bound_address_and_withdraws_at_stop() -> None:
    gmap, registry = RecordingAnnouncer(), RecordingAnnouncer()
    server = Server(
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:0",
        gophermap=gmap,
        registry=registry,
        service_meta={"zone": "z1"},
    )
    server.add_service(_service("Echo"))
    assert gmap.events == []  # nothing is bound yet, so nothing to announce
    server.start()
    try:
        addresses = server.addresses
        assert len(addresses) == 2
        expected = ("announce", ({"Echo": addresses}, {"zone": "z1"}))
        assert gmap.events == [expected]
        assert registry.events == [expected]
        server.add_service(_service("Chat"))
        assert gmap.events[-1] == (
            "announce",
            ({"Echo": addresses, "Chat": addresses}, {"zone": "z1"}),
        )
    finally:
        server.stop()
    assert gmap.events[-1] == ("withdraw", ["Chat", "Echo"])
    server.stop()
    assert [e for e in gmap.events if e[0] == "withdraw"] == [("withdraw", ["Chat", "Echo"])]


def test_an_unreachable_registry_does_not_stop_the_drain() -> None:
    registry = FailingAnnouncer()
    server = Server("tcp://127.0.0.1:0", registry=registry)
    server.add_service(_service("Echo"))
    server.start()
    server.stop()
    assert server._stopped.is_set()


def test_a_server_with_only_built_in_services_announces_nothing() -> None:
    gmap = RecordingAnnouncer()
    with Server("tcp://127.0.0.1:0", gophermap=gmap):
        pass
    assert gmap.events == []

"""HealthState, the server's side of the Health service, without sockets: names,
stopping, and the bounds on watchers (their number and how far one may fall behind)."""

from __future__ import annotations

import pytest

from gopherpipe_runtime import (
    NotFoundError,
    ResourceExhaustedError,
    Server,
    ServiceDef,
    UnavailableError,
)
from gopherpipe_runtime import health as health_module
from gopherpipe_runtime.health import NOT_SERVING, SERVING, WATCH_BUFFER, HealthState


def test_names_are_the_server_and_its_services() -> None:
    state = HealthState()
    state.add("Echo")
    assert state.get("") == SERVING and state.get("Echo") == SERVING
    with pytest.raises(NotFoundError, match="'Nope'"):
        state.get("Nope")
    with pytest.raises(ValueError, match=r"no service 'Ech0'.*'Echo'"):
        state.set("Ech0", False)  # a typo must not pass silently


def test_server_set_serving_before_start_is_kept() -> None:
    """A server can start NOT_SERVING and turn SERVING once warm."""
    server = Server("tcp://127.0.0.1:0")
    server.add_service(ServiceDef("Echo", {}))
    server.set_serving("", False)
    with server:
        address = server.addresses[0]
        assert health_module.check(address) == NOT_SERVING
        assert health_module.check(address, "Echo") == SERVING
        server.set_serving("", True)
        assert health_module.check(address) == SERVING
    with pytest.raises(ValueError, match="already registered"):
        server.add_service(ServiceDef(health_module.HEALTH_SERVICE, {}))


def test_shut_down_is_final() -> None:
    state = HealthState()
    state.add("Echo")
    watching = state.watch("Echo")
    state.shut_down()
    assert state.get("") == NOT_SERVING and state.get("Echo") == NOT_SERVING
    assert [watching.recv(1)] == [SERVING] and watching.recv(1) == NOT_SERVING
    with pytest.raises(UnavailableError):
        watching.recv(1)
    state.set("Echo", True)
    assert state.get("Echo") == NOT_SERVING
    late = state.watch("Echo")  # answered, then ended at once
    assert late.recv(1) == NOT_SERVING
    with pytest.raises(UnavailableError):
        late.recv(1)
    state.add("Later")
    assert state.get("Later") == NOT_SERVING


def test_watchers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_module, "MAX_WATCHERS", 2)
    state = HealthState()
    first, _second = state.watch(""), state.watch("")
    with pytest.raises(ResourceExhaustedError, match="2 watch streams"):
        state.watch("")
    first.close()  # its stream ended: the slot is free again
    state.watch("")


def test_a_watcher_that_stops_reading_is_ended_not_skipped() -> None:
    state = HealthState()
    watching = state.watch("")
    serving = True
    for _ in range(WATCH_BUFFER):  # the first state fills one slot already
        serving = not serving
        state.set("", serving)
    received = [watching.recv(1) for _ in range(WATCH_BUFFER)]
    assert received[:3] == [SERVING, NOT_SERVING, SERVING]
    with pytest.raises(ResourceExhaustedError, match="fell 8 changes behind"):
        watching.recv(1)
    state.set("", not serving)  # a watcher that ended is forgotten
    assert not state._watchers

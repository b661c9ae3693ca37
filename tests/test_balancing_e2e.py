"""A Pipe over several endpoints: round robin and pick_first, failover, resolver updates.

Servers serve `Who` (e2e/who.py), which says which server answered: in this process
where nothing is killed, as processes (e2e/who_serve.py) where a SIGKILL is the point.
Discovery is played by `FakeResolver`, whose endpoints a test changes (its subscribers
are told, as a GopherMap's or etcd's would be), registered for the ``fake://`` scheme.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.who import who_service
from e2e_harness import in_thread, same_checkout_env, wait_until
from test_fork_e2e import child_result, fork_child

from gopherpipe_runtime import (
    CallOptions,
    Chan,
    DeadlineExceededError,
    Pipe,
    Server,
    StatusCode,
    UnavailableError,
)
from gopherpipe_runtime import resolver as resolver_module
from gopherpipe_runtime.interceptors import CallInfo, Interceptor
from gopherpipe_runtime.resolver import Resolver, Subscriber, WatchedEndpoints

WHO_SERVE = Path(__file__).parent / "e2e" / "who_serve.py"
CALL = CallOptions(timeout=10)
FAST: dict[str, Any] = {"backoff_base": 0.02, "backoff_max": 0.2}
"""Short reconnect backoff: a server that comes back is tried again within 0.24 s."""


def name(pipe: Pipe, options: CallOptions = CALL) -> str:
    result = pipe.unary("Who", "name", [], options)
    assert isinstance(result, str)
    return result


def names(pipe: Pipe, count: int) -> Counter[str]:
    return Counter(name(pipe) for _ in range(count))


class Echo:
    """A `Who.echo` stream: `say(text)` -> the answering server's "identity:text"."""

    def __init__(self, pipe: Pipe) -> None:
        self.source: Chan[str] = Chan(4)
        self.call = pipe.stream(
            "Who", "echo", [], CALL, source=self.source, encode_item=str, decode_item=str
        )
        self.output = self.call.take_output()

    def say(self, text: str) -> str:
        self.source.send(text, timeout=10)
        reply = self.output.recv(timeout=10)
        assert isinstance(reply, str)
        return reply

    def finish(self) -> None:
        self.source.close()
        assert list(self.output) == []  # ends cleanly: the server closes its side
        self.call.result()


@contextlib.contextmanager
def servers(*identities: str, sleepy: bool = True) -> Iterator[list[Server]]:
    """`Who` servers in this process, on free loopback ports."""
    started: list[Server] = []
    try:
        for identity in identities:
            server = Server("tcp://127.0.0.1:0")
            server.add_service(who_service(identity, sleepy))
            started.append(server.start())
        yield started
    finally:
        for server in started:
            server.stop()


def address_list(*running: Server) -> str:
    return ",".join(server.addresses[0] for server in running)


def closed_port() -> str:
    """A loopback address nobody listens on (connects are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


class WhoProcess:
    """`Who` in a process of its own, to be SIGKILLed."""

    def __init__(self, identity: str, address: str = "tcp://127.0.0.1:0") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WHO_SERVE), address, identity],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=same_checkout_env(),
        )
        self.address = ""

    def bound(self) -> WhoProcess:
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            self.proc.kill()
            raise RuntimeError("the Who server process did not start")
        return self

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def processes(*identities: str) -> Iterator[list[WhoProcess]]:
    started = [WhoProcess(identity) for identity in identities]  # start up side by side
    try:
        yield [process.bound() for process in started]
    finally:
        for process in started:
            process.stop()


class FakeResolver(Resolver):
    """Endpoints a test sets; subscribers hear of every change (`WatchedEndpoints`)."""

    def __init__(self, endpoints: list[str]) -> None:
        self.watched = WatchedEndpoints(endpoints)
        self.closed = False
        self.options: dict[str, Any] = {}

    def endpoints(self) -> list[str]:
        return self.watched.current()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        return self.watched.subscribe(callback)

    def set(self, *endpoints: str) -> None:
        self.watched.update(list(endpoints))

    def close(self) -> None:
        self.closed = True


FAKES: dict[str, FakeResolver] = {}


def fake_resolver_for(address: str, options: Any) -> FakeResolver:
    fake = FAKES[address.removeprefix("fake://")]
    fake.options = dict(options)
    return fake


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeResolver]:
    """A resolver behind ``fake://Who``, starting with no endpoints."""
    monkeypatch.setitem(resolver_module._DISCOVERY_SCHEMES, "fake", f"{__name__}:fake_resolver_for")
    FAKES["Who"] = FakeResolver([])
    try:
        yield FAKES["Who"]
    finally:
        del FAKES["Who"]


class Ends(Interceptor):
    """Counts how the calls it sees end."""

    def __init__(self) -> None:
        self.ends: Counter[StatusCode] = Counter()

    def on_end(self, call: CallInfo, code: StatusCode, message: str) -> None:
        self.ends[code] += 1


def test_round_robin_spreads_calls_over_every_server() -> None:
    ends = Ends()
    with (
        servers("a", "b", "c") as running,
        Pipe(address_list(*running), interceptors=[ends]) as pipe,
    ):
        assert pipe.endpoints == [server.addresses[0] for server in running]
        assert not pipe.connected
        assert names(pipe, 30) == {"a": 10, "b": 10, "c": 10}
        assert pipe.connected and pipe.codec == "msgpack"
        assert ends.ends == {StatusCode.OK: 30}  # interceptors see every endpoint's calls


def test_pick_first_sticks_to_the_first_server_that_works() -> None:
    with servers("a", "b") as running:
        listed = f"{closed_port()},{address_list(*running)}"
        with Pipe(listed, balance="pick_first", **FAST) as pipe:
            assert names(pipe, 10) == {"a": 10}  # the refused first one is skipped
            running[0].stop()  # GOAWAY, listener closed: a's calls move on, and stay
            assert names(pipe, 10) == {"b": 10}


def test_unknown_balance_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="balance must be one of"):
        Pipe("tcp://127.0.0.1:1,127.0.0.1:2", balance="random")


def test_every_endpoint_down_fails_at_once_naming_them() -> None:
    first, second = closed_port(), closed_port()
    with Pipe(f"{first},{second}") as pipe:
        for _ in range(2):  # connecting, then while both back off
            started = time.monotonic()
            with pytest.raises(UnavailableError) as failed:
                name(pipe, CallOptions())
            assert time.monotonic() - started < 2.0  # no waiting, no deadline needed
            message = failed.value.message
            assert f"no endpoint of {first},{second} can be reached" in message
            assert first in message and second in message


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """A loopback address whose connects succeed and then hear nothing (no HELLO):
    a server hung, or a black hole, as far as a client can tell."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # the kernel completes connects; nobody ever accepts
        yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def test_a_server_that_never_answers_is_skipped_until_its_backoff_ends() -> None:
    slow = {"backoff_base": 5.0, "backoff_max": 5.0}
    with silent_listener() as silent, servers("a") as (a,):
        listed = f"{silent},{a.addresses[0]}"
        with Pipe(listed, connect_timeout=0.3, **slow) as pipe:
            assert name(pipe, CallOptions()) == "a"  # silent first: timed out, moved on
            assert names(pipe, 6) == {"a": 6}
        with Pipe(listed, **slow) as pipe:
            # The call's deadline, not connect_timeout, ends the connect: that call
            # fails, and the endpoint backs off all the same (else every other call
            # would spend its whole deadline there).
            with pytest.raises(DeadlineExceededError, match="while connecting to"):
                name(pipe, CallOptions(timeout=0.3))
            assert Counter(name(pipe, CallOptions(timeout=5)) for _ in range(6)) == {"a": 6}


def test_a_killed_server_costs_at_most_its_calls_in_flight() -> None:
    """Three server processes, four threads calling through one Pipe; one server is
    SIGKILLed mid-run: at most one call per thread fails (the one it had in flight
    there), every later call succeeds on the others; restarted on the same port, it is
    used again once its backoff ends."""
    threads = 4
    with (
        processes("a", "b", "c") as (a, b, c),
        Pipe(f"{a.address},{b.address},{c.address}", **FAST) as pipe,
    ):
        stop = threading.Event()
        answers: list[str] = []
        failures: list[BaseException] = []

        def caller() -> None:
            while not stop.is_set():
                try:
                    answers.append(name(pipe))
                except UnavailableError as exc:
                    failures.append(exc)

        workers = [threading.Thread(target=caller, daemon=True) for _ in range(threads)]
        for worker in workers:
            worker.start()
        try:
            wait_until(lambda: set(answers) == {"a", "b", "c"}, "every server answered")
            c.kill()
            killed_at = len(answers)
            wait_until(lambda: len(answers) >= killed_at + 300, "300 calls after the kill")
            assert len(failures) <= threads, failures
            after = Counter(answers[killed_at + threads :])
            assert set(after) == {"a", "b"}, after

            back = WhoProcess("c again", c.address).bound()
            try:
                wait_until(lambda: "c again" in answers[-30:], "the restarted server answered")
            finally:
                stop.set()
                for worker in workers:
                    worker.join(10)
                back.stop()
        finally:
            stop.set()
        assert len(failures) <= threads, failures


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_call_the_dead_server_may_have_seen_follows_the_retry_rules(idempotent: bool) -> None:
    """Killed with a call in flight: an idempotent call is retried on the next server,
    any other fails with UNAVAILABLE (it may have run), as with one server."""
    with (
        processes("a") as (a,),
        servers("b", sleepy=False) as (b,),
        Pipe(f"{a.address},{b.addresses[0]}", balance="pick_first", **FAST) as pipe,
    ):
        assert name(pipe) == "a"
        [to_a] = [e.connection for e in pipe._endpoints if e.address == a.address]
        assert to_a is not None
        call, outcome = in_thread(
            lambda: pipe.unary("Who", "nap", [30.0], CALL, idempotent=idempotent)
        )
        wait_until(lambda: len(to_a.calls) == 1, "the call is in flight to a")
        a.kill()
        call.join(20)
        if idempotent:
            assert outcome == {"value": "b"}
        else:
            assert isinstance(outcome.get("error"), UnavailableError), outcome
        assert name(pipe) == "b"


@pytest.mark.parametrize("resolved", [False, True])
def test_a_call_on_a_connection_found_dead_before_it_was_written_is_resent(
    resolved: bool, fake: FakeResolver
) -> None:
    """The writer had failed (a reset, say) before the CALL was queued: not a byte of
    it went out, so it is resent, whatever its method, on a new connection; its
    stream on the broken connection ends with UNAVAILABLE."""
    with servers("a") as (a,):
        fake.set(a.addresses[0])
        with Pipe("fake://Who" if resolved else a.addresses[0]) as pipe:
            on_it = Echo(pipe)  # not idle: no poll before the call learns what happened
            assert on_it.say("x") == "a:x"
            broken = pipe._connection
            assert broken is not None
            broken.writer.fail("injected failure")
            assert name(pipe) == "a"
            assert pipe._connection is not broken and broken.closed_reason is not None
            with pytest.raises(UnavailableError, match="connection lost"):
                on_it.output.recv(timeout=10)


def test_streams_stay_on_the_endpoint_they_started_on() -> None:
    with servers("a", "b", "c") as running, Pipe(address_list(*running)) as pipe:
        echoes = [Echo(pipe) for _ in range(3)]
        firsts = [echo.say("0") for echo in echoes]
        assert sorted(first.split(":")[0] for first in firsts) == ["a", "b", "c"]
        for turn in range(1, 6):
            assert names(pipe, 3) == {"a": 1, "b": 1, "c": 1}  # unary calls go round
            for echo, first in zip(echoes, firsts, strict=True):
                assert echo.say(str(turn)) == f"{first.split(':')[0]}:{turn}"
        for echo in echoes:
            echo.finish()


def test_resolver_updates_add_and_remove_endpoints(fake: FakeResolver) -> None:
    with servers("a", "b") as (a, b):
        fake.set(a.addresses[0])
        with Pipe("fake://Who") as pipe:
            assert names(pipe, 4) == {"a": 4}
            staying = Echo(pipe)
            assert staying.say("before") == "a:before"

            fake.set(a.addresses[0], b.addresses[0])  # added: it takes its turn at once
            assert names(pipe, 4) == {"a": 2, "b": 2}

            [old] = [e.connection for e in pipe._endpoints if e.address == a.addresses[0]]
            assert old is not None and old.usable
            fake.set(b.addresses[0])  # removed: no new calls, its stream goes on
            assert pipe.endpoints == [b.addresses[0]]
            assert names(pipe, 4) == {"b": 4}
            assert staying.say("after") == "a:after"
            assert old.closed_reason is None, "closed while a stream was open on it"
            staying.finish()
            wait_until(lambda: old.closed_reason is not None, "the drained connection closed")
            assert "was removed from fake://Who" in (old.closed_reason or "")

            fake.set(a.addresses[0], b.addresses[0])  # back: a fresh connection
            assert names(pipe, 4) == {"a": 2, "b": 2}
            [idle] = [e.connection for e in pipe._endpoints if e.address == b.addresses[0]]
            assert idle is not None
            fake.set(a.addresses[0])
            assert idle.closed_reason is not None, "nothing in flight: closed at once"
            assert names(pipe, 2) == {"a": 2}
        assert fake.closed, "the pipe closes the resolver it made"


def test_discovery_options_reach_the_resolver(fake: FakeResolver) -> None:
    marker = object()
    with Pipe("fake://Who", gophermap=marker):
        assert fake.options == {"gophermap": marker}
    with Pipe("fake://Who", gophermap_key=b"k" * 32):
        assert fake.options == {"gophermap_key": b"k" * 32}
    with Pipe("fake://Who"):
        assert fake.options == {}


def test_no_endpoints_fails_at_once(fake: FakeResolver) -> None:
    with Pipe("fake://Who") as pipe:
        with pytest.raises(UnavailableError, match="no endpoints for fake://Who"):
            name(pipe, CallOptions())
        with pytest.raises(DeadlineExceededError, match="waiting for fake://Who to be ready"):
            name(pipe, CallOptions(timeout=0.2, wait_for_ready=True))


def test_wait_for_ready_waits_for_the_resolver_to_bring_an_endpoint(
    fake: FakeResolver,
) -> None:
    with servers("a") as (a,), Pipe("fake://Who") as pipe:
        waiting, outcome = in_thread(
            lambda: name(pipe, CallOptions(timeout=20, wait_for_ready=True))
        )
        assert not outcome, "answered with no endpoint to answer"
        fake.set(a.addresses[0])
        waiting.join(20)
        assert outcome == {"value": "a"}


def test_close_ends_a_wait_for_an_endpoint(fake: FakeResolver) -> None:
    pipe = Pipe("fake://Who")
    waiting, outcome = in_thread(lambda: name(pipe, CallOptions(wait_for_ready=True)))
    pipe.close()
    waiting.join(10)
    assert isinstance(outcome.get("error"), UnavailableError), outcome
    assert "closed" in outcome["error"].message


def test_a_forked_child_dials_every_endpoint_anew() -> None:
    """fork safety for every endpoint: the child calls both servers over connections of
    its own; the parent's stay, untouched."""
    with processes("a", "b") as (a, b), Pipe(f"{a.address},{b.address}") as pipe:
        assert names(pipe, 4) == {"a": 2, "b": 2}
        parents = [endpoint.connection for endpoint in pipe._endpoints]
        parent_ports = {c.sock.getsockname()[1] for c in parents if c is not None}
        assert len(parent_ports) == 2

        def child() -> str:
            assert all(endpoint.connection is None for endpoint in pipe._endpoints)
            assert names(pipe, 4) == {"a": 2, "b": 2}
            mine = [endpoint.connection for endpoint in pipe._endpoints]
            return " ".join(str(c.sock.getsockname()[1]) for c in mine if c is not None)

        code, report = child_result(*fork_child(child))
        assert code == 0, report
        child_ports = {int(port) for port in report.split()}
        assert len(child_ports) == 2 and not child_ports & parent_ports
        assert names(pipe, 4) == {"a": 2, "b": 2}
        assert [endpoint.connection for endpoint in pipe._endpoints] == parents


def test_bad_options_are_refused_before_any_endpoint_is_known(fake: FakeResolver) -> None:
    with pytest.raises(ValueError, match="compression"):
        Pipe("fake://Who", compression="lz77")


def test_endpoints_changing_under_load_fail_no_call(fake: FakeResolver) -> None:
    """The resolver changes the list while four threads call: calls that picked an
    endpoint as it was removed are refused unseen and go elsewhere, those in flight on
    it finish there; none fails, and every retired connection closes."""
    with servers("a", "b", "c") as running:
        a, b, c = (server.addresses[0] for server in running)
        lists = [(a, b), (b, c), (c,), (a, c), (a,), (b,), (a, b, c)]
        fake.set(a, b, c)
        with Pipe("fake://Who") as pipe:
            stop = threading.Event()
            answers: list[str] = []
            failures: list[BaseException] = []

            def caller() -> None:
                while not stop.is_set():
                    try:
                        answers.append(name(pipe))
                    except Exception as exc:
                        failures.append(exc)

            workers = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
            for worker in workers:
                worker.start()
            try:
                for turn in range(60):
                    done = len(answers)
                    fake.set(*lists[turn % len(lists)])
                    wait_until(lambda n=done: len(answers) >= n + 5, "calls went on", limit=10)
            finally:
                stop.set()
                for worker in workers:
                    worker.join(10)
            assert failures == []
            assert set(answers) == {"a", "b", "c"}
            wait_until(
                lambda: all(c.closed_reason is not None for c in pipe._draining),
                "every retired connection closed",
            )


def test_a_draining_server_sends_new_calls_to_the_next_endpoint() -> None:
    """A server in its stop(grace) period refuses new calls unprocessed (a GOAWAY
    naming the streams before them, RFC §8), so even a call of a method that is not
    idempotent goes to another endpoint rather than failing."""
    with servers("a", "b") as (a, b):
        napping: list[str] = []
        with Pipe(a.addresses[0]) as holder:
            # A call in progress holds a's grace period open.
            nap = threading.Thread(
                target=lambda: napping.append(holder.unary("Who", "nap", [1.5], CALL))
            )
            nap.start()
            wait_until(lambda: a._open_calls() == 1, "a's nap call is in progress")
            stopper = threading.Thread(target=a.stop, args=(30.0,))
            stopper.start()
            wait_until(lambda: a._draining, "a is draining")
            with Pipe(address_list(a, b), balance="pick_first", **FAST) as pipe:
                # pick_first tries a (the first) and is refused there, unprocessed.
                assert names(pipe, 6) == Counter({"b": 6})
            nap.join(30)
            stopper.join(30)
        assert napping == ["a"]

"""Retries of idempotent calls and wait_for_ready, against server processes that die.

The server is SIGKILLed while a call is in flight (or just before it is made) and
restarted on the same address: an idempotent call returns OK from the new process,
its non-idempotent twin reports UNAVAILABLE and is never resent. The restarted
process is started beforehand in standby (serve.py: imports done, not bound), so
the restart takes milliseconds, as a supervisor restarting a warm process would;
the calls still meet a refused connect or two in between. The server's own
counter (`seen`) says how often a call reached it.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import ServerProcess, generate_stubs, in_thread, wait_until

from gopherpipe_runtime import (
    CallOptions,
    DeadlineExceededError,
    Pipe,
    RetryPolicy,
    UnavailableError,
)

STANDBY = '{"standby": true}'


@dataclass
class Api:
    stubs: Path
    RetriesClient: Any


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("retries")
    stubs = generate_stubs(folder, "e2e_alltypes.py", "e2e_retries.py")
    sys.path.insert(0, str(stubs))
    try:
        yield Api(stubs, importlib.import_module("e2e_retries_client").RetriesClient)
    finally:
        sys.path.remove(str(stubs))


def joined(thread: threading.Thread, outcome: dict[str, Any]) -> dict[str, Any]:
    thread.join(60)
    assert not thread.is_alive(), "the call did not return"
    return outcome


def kill(server: ServerProcess) -> None:
    server.proc.kill()
    server.proc.wait(10)


@pytest.mark.parametrize("when", ["in flight", "just before"])
@pytest.mark.parametrize("method", ["get", "put"])
def test_a_server_restart_is_survived_by_idempotent_calls_only(
    api: Api, tmp_path: Path, when: str, method: str
) -> None:
    first = ServerProcess(api.stubs)
    second = ServerProcess(api.stubs, first.address, harness=STANDBY)
    hold = tmp_path / "hold"
    try:
        with api.RetriesClient.dial(first.address) as plain:
            client = plain.with_options(timeout=30)
            assert client.get("warm", "") == f"warm@{first.proc.pid}"  # connected
            call = getattr(client, method)
            if when == "in flight":
                hold.touch()
                thread, outcome = in_thread(lambda: call("k", str(hold)))
                wait_until(lambda: Path(f"{hold}.{first.proc.pid}").exists(), "the call reached it")
                kill(first)
                hold.unlink()  # the restarted server answers at once
            else:
                kill(first)
                thread, outcome = in_thread(lambda: call("k", ""))
            if method == "put" and when == "just before":
                # A call the dead server never saw may be resent once: had the new server
                # bound meanwhile, it would answer. Nobody is listening until it ends here.
                result = joined(thread, outcome)
                second.go()
            else:
                second.go()
                result = joined(thread, outcome)
            if method == "get":
                assert result == {"value": f"k@{second.proc.pid}"}
                assert client.seen("k") == 1
            else:
                assert isinstance(result.get("error"), UnavailableError), result
                # Never resent: the new server has not seen it (a call made after the
                # kill never reached any server).
                assert client.seen("k") == 0
                assert client.put("k", "") == f"k@{second.proc.pid}"  # the pipe recovers
    finally:
        first.stop()
        second.stop()


def test_a_cold_restart_is_survived_by_an_idempotent_call_waiting_for_ready(
    api: Api, tmp_path: Path
) -> None:
    """A cold restart: a new process started from scratch only after the kill, which on
    a loaded machine may take longer than the default policy's retries (~0.4-0.75 s in
    all; here it is usually faster, and the call survives without waiting for ready
    too). The idempotent call in flight is retried, finds nobody listening and,
    waiting for ready, connects to the new process within its deadline."""
    first = ServerProcess(api.stubs)
    hold = tmp_path / "hold"
    second: ServerProcess | None = None
    try:
        with api.RetriesClient.dial(first.address) as plain:
            client = plain.with_options(timeout=30, wait_for_ready=True)
            hold.touch()
            thread, outcome = in_thread(lambda: client.get("k", str(hold)))
            wait_until(lambda: Path(f"{hold}.{first.proc.pid}").exists(), "the call reached it")
            kill(first)
            hold.unlink()
            second = ServerProcess(api.stubs, first.address)  # imports, binds: a cold start
            assert joined(thread, outcome) == {"value": f"k@{second.proc.pid}"}
            assert client.seen("k") == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_an_idempotent_server_stream_is_retried_while_it_opens(api: Api) -> None:
    first = ServerProcess(api.stubs)
    second = ServerProcess(api.stubs, first.address, harness=STANDBY)
    try:
        with api.RetriesClient.dial(first.address) as plain:
            client = plain.with_options(timeout=30)
            assert list(client.numbers("warm", 2)) == [0, 1]
            kill(first)
            thread, outcome = in_thread(lambda: list(client.numbers("s", 3)))
            second.go()
            assert joined(thread, outcome) == {"value": [0, 1, 2]}
            assert client.seen("s") == 1
    finally:
        first.stop()
        second.stop()


def test_retries_stop_at_max_attempts(api: Api) -> None:
    server = ServerProcess(api.stubs)
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002)
    try:
        with api.RetriesClient.dial(server.address, retry=policy) as plain:
            client = plain.with_options(timeout=30)
            assert client.flaky("twice", 2) == 3  # failed twice, then answered
            with pytest.raises(UnavailableError, match=r"\(3 attempts\)$"):
                client.flaky("always", 1000)
            assert client.seen("always") == 3
    finally:
        server.stop()


def test_the_retry_budget_stops_retries_and_refills_with_successes(api: Api) -> None:
    # gRPC's throttling: 10 tokens, a failed attempt costs 1, a success earns 0.1, and
    # retries go only while more than 5 are left.
    server = ServerProcess(api.stubs)
    policy = RetryPolicy(max_attempts=100, initial_backoff=0.001, max_backoff=0.002)
    try:
        with api.RetriesClient.dial(server.address, retry=policy) as plain:
            client = plain.with_options(timeout=30)
            with pytest.raises(UnavailableError, match="5 attempts; retries throttled"):
                client.flaky("storm", 1000)
            assert client.seen("storm") == 5  # 10 -> 5 tokens: no sixth attempt; 5.1
            with pytest.raises(UnavailableError, match="flaky: call 1 of 1 failing"):
                client.flaky("next", 1)  # 4.1: no retry at all
            assert client.seen("next") == 1  # 4.2
            for _ in range(18):  # 6.0
                client.seen("refill")
            with pytest.raises(UnavailableError, match="retries throttled"):
                client.flaky("still", 1)  # 5.0 is not more than half
            assert client.seen("still") == 1  # 5.1
            for _ in range(10):  # 6.1
                client.seen("refill")
            assert client.flaky("again", 1) == 2  # 5.1 after the failure: retried
    finally:
        server.stop()


def test_a_call_waiting_for_ready_succeeds_once_the_server_starts(api: Api, tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/late.sock"
    server = ServerProcess(api.stubs, address, harness=STANDBY)
    try:
        with Pipe(address, backoff_base=0.01, backoff_max=0.05) as pipe:
            client = api.RetriesClient(pipe).with_options(timeout=30)
            waiting = client.with_options(wait_for_ready=True)
            started = time.monotonic()
            with pytest.raises(UnavailableError, match="cannot reach"):
                client.put("early", "")  # not waiting: fails at once
            assert time.monotonic() - started < 5, "it should not have waited"
            thread, outcome = in_thread(lambda: waiting.put("late", ""))
            # It is waiting: it has failed to connect again since the call above.
            failures = pipe._failures
            wait_until(lambda: pipe._failures >= failures + 2, "the call retried connecting")
            assert thread.is_alive()
            server.go()
            assert joined(thread, outcome) == {"value": f"late@{server.proc.pid}"}
    finally:
        server.stop()


def test_wait_for_ready_ends_at_the_deadline(tmp_path: Path) -> None:
    with Pipe(f"unix://{tmp_path}/nobody.sock", backoff_base=0.01, backoff_max=0.05) as pipe:
        options = CallOptions(timeout=0.3, wait_for_ready=True)
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match=r"waiting for .* to be ready"):
            pipe.unary("S", "m", [], options)
        assert time.monotonic() - started < 10


def test_wait_for_ready_without_a_deadline_ends_when_the_pipe_closes(tmp_path: Path) -> None:
    pipe = Pipe(f"unix://{tmp_path}/nobody.sock", backoff_base=0.01, backoff_max=0.05)
    thread, outcome = in_thread(lambda: pipe.unary("S", "m", [], CallOptions(wait_for_ready=True)))
    wait_until(lambda: pipe._failures >= 2, "the call retried connecting")
    assert thread.is_alive()
    pipe.close()
    result = joined(thread, outcome)
    assert isinstance(result.get("error"), UnavailableError), result
    assert "closed" in result["error"].message

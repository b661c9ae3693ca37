"""A Pipe used on both sides of `os.fork()`: each process gets a connection of its own.

The parent dials and calls, then forks children (os.fork directly, as gunicorn and
multiprocessing do) that call through the very client object they inherited, while
the parent keeps calling on its connection. Each child reports through a pipe the
local port of the connection it used and whether its copy of the parent's socket
was closed, and exits with `os._exit(0)` only if every call succeeded.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2e_harness import ServerProcess, e2e_api, generate_stubs, wait_until

CHILD_WATCHDOG_S = 60
"""A child stuck (on a lock inherited held, say) is killed by SIGALRM after this."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Any]]:
    stubs = generate_stubs(tmp_path_factory.mktemp("fork"), "e2e_alltypes.py", "e2e_streams.py")
    server = ServerProcess(stubs)
    try:
        with e2e_api(stubs) as api:
            yield server, api["AllTypesClient"]
    finally:
        server.stop()


def fork_child(work: Callable[[], str]) -> tuple[int, int]:
    """Fork; the child runs `work`, writes what it returns to a pipe and exits 0 (1 if
    `work` raised). Returns (pid, read end of the pipe)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            # Not pytest-timeout's handler (inherited): the default, which ends the child.
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(CHILD_WATCHDOG_S)
            report = work()
            code = 0
        except BaseException as exc:
            report = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                os.write(write_end, report.encode())
            finally:
                os._exit(code)
    os.close(write_end)
    return pid, read_end


def child_result(pid: int, read_end: int) -> tuple[int, str]:
    """(exit code, report) of a child, waiting for it a bounded time."""
    status: list[int] = []

    def exited() -> bool:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status.append(code)
        return bool(done)

    try:
        wait_until(exited, f"child {pid} exited", limit=CHILD_WATCHDOG_S + 10)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    with os.fdopen(read_end, "rb") as reader:
        report = reader.read().decode()
    return os.waitstatus_to_exitcode(status[0]), report


def calls_in_child(client: Any, parent_socket: Any) -> Callable[[], str]:
    def work() -> str:
        for n in range(20):
            assert client.add(n, 1) == n + 1
        connection = client.pipe._connection
        port = connection.sock.getsockname()[1]
        return f"{port} {parent_socket.fileno()}"

    return work


def test_children_get_connections_of_their_own_while_the_parent_calls(
    served: tuple[ServerProcess, Any],
) -> None:
    server, client_class = served
    with client_class.dial(server.address) as plain:
        client = plain.with_options(timeout=30)
        assert client.add(1, 2) == 3
        parent = client.pipe._connection
        parent_port = parent.sock.getsockname()[1]

        stop = threading.Event()
        parent_calls: list[int] = []
        parent_failures: list[str] = []

        def keep_calling() -> None:
            n = 0
            while not stop.is_set():
                try:
                    assert client.add(n, 2) == n + 2
                    parent_calls.append(n)
                except BaseException as exc:
                    parent_failures.append(repr(exc))
                n += 1

        caller = threading.Thread(target=keep_calling, daemon=True)
        caller.start()
        try:
            wait_until(lambda: len(parent_calls) >= 5, "the parent calls")
            children = [fork_child(calls_in_child(client, parent.sock)) for _ in range(3)]
            results = [child_result(pid, read_end) for pid, read_end in children]
            calls_before = len(parent_calls)
            wait_until(lambda: len(parent_calls) >= calls_before + 5, "the parent calls on")
        finally:
            stop.set()
            caller.join(30)
        assert [code for code, _ in results] == [0, 0, 0], results
        ports = [int(report.split()[0]) for _, report in results]
        assert len({parent_port, *ports}) == 4, "a child used another process's connection"
        # Each child closed its copy of the parent's socket (and only its own).
        assert all(report.split()[1] == "-1" for _, report in results), results
        assert parent_failures == []
        assert client.pipe._connection is parent, "the parent's connection was replaced"
        assert parent.closed_reason is None
        assert client.add(40, 2) == 42


def test_a_child_calls_while_the_parent_has_a_call_in_flight(
    served: tuple[ServerProcess, Any],
) -> None:
    server, client_class = served
    with client_class.dial(server.address) as plain:
        client = plain.with_options(timeout=30)
        assert client.add(1, 2) == 3
        parent = client.pipe._connection
        outcome: dict[str, Any] = {}

        def slow_call() -> None:
            try:
                outcome["value"] = client.sleep(0.5)
            except BaseException as exc:
                outcome["error"] = exc

        caller = threading.Thread(target=slow_call, daemon=True)
        caller.start()
        # In flight: its CALL is on the wire, and its thread reads the socket (the
        # read lock is held across the fork).
        wait_until(lambda: bool(parent.calls), "the parent's call is in flight")
        pid, read_end = fork_child(calls_in_child(client, parent.sock))
        code, report = child_result(pid, read_end)
        caller.join(30)
        assert code == 0, report
        assert outcome == {"value": False}, outcome  # answered, not cancelled
        assert client.pipe._connection is parent and parent.closed_reason is None


def test_a_child_forked_while_another_thread_connects_does_not_wait_for_it(
    served: tuple[ServerProcess, Any],
) -> None:
    # The pipe's lock is held (as by a thread in the middle of connecting) at the
    # fork: the child's copy stays held forever unless the child makes a new one.
    server, client_class = served
    with client_class.dial(server.address) as plain:
        client = plain.with_options(timeout=30)
        lock = client.pipe._lock
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with lock:
                held.set()
                release.wait(30)

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert held.wait(30)
        try:
            pid, read_end = fork_child(lambda: str(client.with_options(timeout=10).add(2, 3)))
        finally:
            release.set()
            holder.join(30)
        assert child_result(pid, read_end) == (0, "5")
        assert client.add(1, 1) == 2


def test_a_child_never_writes_to_the_parents_connection(
    served: tuple[ServerProcess, Any],
) -> None:
    # The child drops the inherited connection and exits without closing its pipe
    # (no GOAWAY, no shutdown reaches the shared socket): the parent's connection
    # still works, and its next call goes over it.
    server, client_class = served
    with client_class.dial(server.address) as plain:
        client = plain.with_options(timeout=30)
        assert client.add(1, 2) == 3
        parent = client.pipe._connection

        def close_everything() -> str:
            client.pipe.close()  # closes only what the child has: its own descriptors
            return "closed"

        assert child_result(*fork_child(close_everything)) == (0, "closed")
        assert client.add(2, 2) == 4
        assert client.pipe._connection is parent and parent.closed_reason is None

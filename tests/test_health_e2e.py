"""The built-in Health service end to end: `gopherpipe health` run as a subprocess
against real servers (states, unknown service, unreachable, TLS, exit codes), health
while `stop(grace)` drains, watch streams, and SIGTERM draining a server process."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import E2E, same_checkout_env, wait_until
from tls_certs import Pki, make_pki

from gopherpipe_runtime import (
    CallOptions,
    NotFoundError,
    Pipe,
    Server,
    UnavailableError,
)
from gopherpipe_runtime import health as health_module
from gopherpipe_runtime.health import HEALTH_SERVICE, NOT_SERVING, SERVING
from gopherpipe_runtime.service import MethodDef, MethodKind, ServiceDef

GOPHERPIPE = Path(sys.executable).parent / "gopherpipe"
TLS_ENV = ("GOPHERPIPE_TLS_CA", "GOPHERPIPE_TLS_CERT", "GOPHERPIPE_TLS_KEY")


def health_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`gopherpipe health ARGS...` in its own process, from this checkout."""
    environment = same_checkout_env()
    for name in TLS_ENV:
        environment.pop(name, None)
    environment.update(env or {})
    return subprocess.run(
        [str(GOPHERPIPE), "health", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )


def assert_state(result: subprocess.CompletedProcess[str], code: int, state: str) -> None:
    assert (result.returncode, result.stdout.strip()) == (code, state), result.stderr


class Gate:
    """A slow handler the test holds open: `started` once it runs, it returns once
    `release` is set (or fails after a bounded wait)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def wait(self) -> str:
        self.started.set()
        if not self.release.wait(60):
            raise TimeoutError("the test never released the call")
        return "done"


def slow_service(gate: Gate, name: str = "Slow") -> ServiceDef:
    return ServiceDef(
        name, {"wait": MethodDef(MethodKind.UNARY, lambda args: (), gate.wait, lambda r: r)}
    )


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.release.set()


@pytest.fixture
def server(gate: Gate) -> Iterator[Server]:
    server = Server("tcp://127.0.0.1:0")
    server.add_service(slow_service(gate))
    server.add_service(slow_service(gate, "Other"))
    with server:
        yield server


def closed_port_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


# -- the CLI against a running server -------------------------------------------------------


def test_cli_states_follow_set_serving(server: Server) -> None:
    address = server.addresses[0]
    assert_state(health_cli(address), 0, SERVING)
    assert_state(health_cli(address, "Slow"), 0, SERVING)

    server.set_serving("Slow", False)
    assert_state(health_cli(address, "Slow"), 1, NOT_SERVING)
    assert_state(health_cli(address, "Other"), 0, SERVING)
    assert_state(health_cli(address), 0, SERVING)  # the server overall is its own entry

    server.set_serving("", False)
    assert_state(health_cli(address), 1, NOT_SERVING)
    server.set_serving("", True)
    server.set_serving("Slow", True)
    assert_state(health_cli(address, "Slow"), 0, SERVING)


def test_cli_unknown_service(server: Server) -> None:
    result = health_cli(server.addresses[0], "NoSuchService")
    assert result.returncode == health_module.EXIT_UNKNOWN_SERVICE == 3
    assert result.stdout == ""
    assert "unknown service 'NoSuchService'" in result.stderr


def test_cli_unreachable(tmp_path: Path) -> None:
    refused = health_cli(closed_port_address())
    assert refused.returncode == health_module.EXIT_UNREACHABLE == 4, refused.stderr
    assert "Connection refused" in refused.stderr and refused.stdout == ""

    missing = health_cli(f"unix://{tmp_path / 'nobody.sock'}")
    assert missing.returncode == 4, missing.stderr

    # Accepted by the kernel, never answered: only --timeout ends it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        mute = health_cli(f"tcp://127.0.0.1:{port}", "--timeout", "0.3")
    assert mute.returncode == 4, mute.stderr
    assert "DEADLINE_EXCEEDED" in mute.stderr


def test_cli_usage_errors(tmp_path: Path) -> None:
    for args in (
        ["not-an-address"],
        ["tcp://127.0.0.1:1", "--key", str(tmp_path / "k.pem")],
        ["tls://127.0.0.1:1", "--ca", str(tmp_path / "missing-ca.pem")],
    ):
        result = health_cli(*args)
        assert result.returncode == health_module.EXIT_USAGE == 2, (args, result.stderr)
        assert result.stdout == ""


def test_cli_server_without_health_service(server: Server) -> None:
    # A server that does not know the Health service (an older one): not healthy,
    # and an exit code of its own, so a probe's log tells it apart.
    server._services.pop(HEALTH_SERVICE)
    result = health_cli(server.addresses[0])
    assert result.returncode == health_module.EXIT_ERROR == 5, result.stderr
    assert "UNIMPLEMENTED" in result.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_cli_tls_and_mtls(pki: Pki, gate: Gate) -> None:
    server = Server("tls://127.0.0.1:0", "wss://127.0.0.1:0/rpc", tls=pki.server_context())
    server.add_service(slow_service(gate))
    with server:
        tls_address, wss_address = server.addresses
        mine = ["--ca", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
        assert_state(health_cli(tls_address, *mine), 0, SERVING)
        assert_state(health_cli(wss_address, "Slow", *mine), 0, SERVING)

        no_client_cert = health_cli(tls_address, "--ca", str(pki.ca))
        assert no_client_cert.returncode == 4 and "certificate required" in no_client_cert.stderr
        untrusted = health_cli(tls_address)  # the system's CAs do not know ours
        assert untrusted.returncode == 4 and "certificate verify failed" in untrusted.stderr

        from_env = {
            "GOPHERPIPE_TLS_CA": str(pki.ca),
            "GOPHERPIPE_TLS_CERT": str(pki.client_cert),
            "GOPHERPIPE_TLS_KEY": str(pki.client_key),
        }
        assert_state(health_cli(tls_address, env=from_env), 0, SERVING)


def test_cli_imports_only_the_runtime() -> None:
    """A probe may run every few seconds in every container: it must not pay for
    the code generator's imports (libcst, jinja2, black)."""
    code = (
        "import sys\n"
        f"sys.argv = ['gopherpipe', 'health', {closed_port_address()!r}]\n"
        "from gopherpipe_gen.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    loaded = [m for m in ('libcst', 'jinja2', 'black') if m in sys.modules]\n"
        "    print(exc.code, loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=same_checkout_env(),
    )
    assert done.stdout.strip() == "4 []", done.stdout + done.stderr


def test_cli_help_documents_exit_codes_and_a_probe() -> None:
    result = subprocess.run(
        [str(GOPHERPIPE), "health", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=same_checkout_env(),
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for expected in ("0 SERVING", "1 NOT_SERVING", "3 the server has no service", "readinessProbe"):
        assert expected in text, expected


# -- health while stop(grace) drains ----------------------------------------------------------


def test_not_serving_during_stop_grace(server: Server, gate: Gate) -> None:
    """stop(grace) turns health NOT_SERVING first, and a probe still reaches the
    server through the grace period; other new calls get UNAVAILABLE."""
    address = server.addresses[0]
    outcome: list[Any] = []
    with Pipe(address) as pipe:
        caller = threading.Thread(
            target=lambda: outcome.append(pipe.unary("Slow", "wait", [], CallOptions(timeout=60)))
        )
        caller.start()
        assert gate.started.wait(30)
        stopper = threading.Thread(target=server.stop, args=(60.0,))
        stopper.start()
        try:
            wait_until(
                lambda: health_module.check(address) == NOT_SERVING, "health turned NOT_SERVING"
            )
            assert_state(health_cli(address), 1, NOT_SERVING)
            assert_state(health_cli(address, "Other"), 1, NOT_SERVING)
            assert health_cli(address, "NoSuchService").returncode == 3
            with Pipe(address) as late, pytest.raises(UnavailableError, match="shutting down"):
                late.unary("Other", "wait", [], CallOptions(timeout=10))
            server.set_serving("", True)  # too late: a stopping server stays NOT_SERVING
            assert health_module.check(address) == NOT_SERVING
            assert stopper.is_alive() and caller.is_alive()  # held by the call in progress
        finally:
            gate.release.set()
        caller.join(30)
        stopper.join(30)
    assert outcome == ["done"]
    assert not stopper.is_alive()
    assert health_cli(address).returncode == 4  # closed once the grace period ended


def test_watch_streams_changes(server: Server) -> None:
    address = server.addresses[0]
    with Pipe(address) as pipe:
        slow = health_module.watch(pipe, "Slow")
        overall = health_module.watch(pipe)
        assert slow.recv(10) == SERVING and overall.recv(10) == SERVING
        server.set_serving("Slow", False)
        assert slow.recv(10) == NOT_SERVING
        server.set_serving("Slow", False)  # not a change: nothing sent
        server.set_serving("Slow", True)
        assert slow.recv(10) == SERVING
        with pytest.raises(NotFoundError, match="NoSuchService"):
            health_module.watch(pipe, "NoSuchService").recv(10)

        # Stopping ends every watch after its last state, and watchers do not hold
        # the grace period open (it is far longer than the joins below).
        stopper = threading.Thread(target=server.stop, args=(120.0,))
        stopper.start()
        assert overall.recv(10) == NOT_SERVING and slow.recv(10) == NOT_SERVING
        for chan in (overall, slow):
            with pytest.raises(UnavailableError, match="shutting down"):
                chan.recv(10)
        stopper.join(30)
        assert not stopper.is_alive()


# -- SIGTERM: a server process drains and exits --------------------------------------------


class Lines:
    """A process's stdout, line by line, each wait bounded."""

    def __init__(self, stream: Any) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put("<EOF>")

    def next(self, timeout: float = 30.0) -> str:
        return self._lines.get(timeout=timeout)

    def rest(self) -> list[str]:
        lines = []
        while (line := self.next()) != "<EOF>":
            lines.append(line)
        return lines


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_sigterm_drains_in_flight_call(transport: str, tmp_path: Path) -> None:
    """SIGTERM makes serve_forever() drain as Ctrl-C does: health turns NOT_SERVING
    (a watch sees it), the call in progress finishes OK, serve_forever returns and the
    process exits 0."""
    sock_path = tmp_path / "health.sock"
    asked = "tcp://127.0.0.1:0" if transport == "tcp" else f"unix://{sock_path}"
    proc = subprocess.Popen(
        [sys.executable, str(E2E / "health_serve.py"), asked, "60"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=same_checkout_env(),
    )
    assert proc.stdin is not None
    try:
        lines = Lines(proc.stdout)
        address = lines.next()
        outcome: list[Any] = []
        with Pipe(address) as pipe:
            watching = health_module.watch(pipe)
            assert watching.recv(30) == SERVING
            caller = threading.Thread(
                target=lambda: outcome.append(
                    pipe.unary("Slow", "wait", [], CallOptions(timeout=60))
                )
            )
            caller.start()
            assert lines.next() == "started"  # the handler runs: the call is in flight

            proc.send_signal(signal.SIGTERM)
            assert watching.recv(30) == NOT_SERVING
            with pytest.raises(UnavailableError):
                watching.recv(30)
            assert_state(health_cli(address), 1, NOT_SERVING)
            assert_state(health_cli(address, "Slow"), 1, NOT_SERVING)
            assert proc.poll() is None and caller.is_alive()  # in its grace period

            proc.stdin.write("release\n")
            proc.stdin.flush()
            caller.join(30)
        assert outcome == ["done"]
        assert proc.wait(30) == 0
        assert lines.rest() == ["serve_forever returned"]
        if transport == "unix":
            assert not os.path.exists(sock_path)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


# -- serve_forever and signal handlers, in this process -------------------------------------


def test_serve_forever_restores_the_sigterm_handler() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.fail("pytest must run tests on the main thread for this test")

    def previous(signum: int, frame: Any) -> None:
        raise AssertionError("the server's handler should be in place")

    original = signal.signal(signal.SIGTERM, previous)
    try:
        server = Server("tcp://127.0.0.1:0")

        def stop_once_serving() -> None:
            wait_until(
                lambda: signal.getsignal(signal.SIGTERM) is not previous,
                "serve_forever installed its handler",
            )
            server.stop()

        stopper = threading.Thread(target=stop_once_serving)
        stopper.start()
        server.serve_forever(grace=1.0)
        stopper.join(30)
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, original)


def test_serve_forever_off_the_main_thread_leaves_signals_alone() -> None:
    before = signal.getsignal(signal.SIGTERM)
    server = Server("tcp://127.0.0.1:0")
    runner = threading.Thread(target=server.serve_forever)
    runner.start()
    try:
        wait_until(lambda: bool(server.addresses), "the server started")
        assert health_module.check(server.addresses[0]) == SERVING
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        server.stop()
        runner.join(30)
    assert not runner.is_alive()

"""The evolution matrix, run rather than described: two generations of one contract
(tests/e2e/evolution/v1, v2) generated into two stub folders, each served by its own
process, called by the other generation's client. One test per row of README's
"Evolving a contract" table, asserting the outcome documented there."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from e2e_harness import E2E, same_checkout_env

from gopherpipe_runtime import Pipe
from gopherpipe_runtime.status import InternalError, InvalidArgumentError, UnimplementedError

GENERATIONS = ("v1", "v2")


def generate(folder: Path, generation: str) -> Path:
    target = folder / generation
    target.mkdir()
    shutil.copy(E2E / "evolution" / generation / "evolution.py", target / "evolution.py")
    gopherpipe = Path(sys.executable).parent / "gopherpipe"
    subprocess.run([str(gopherpipe), "gen", str(target / "evolution.py")], check=True,
                   env=same_checkout_env(), timeout=120)  # fmt: skip
    return target


def load(stub_dir: Path) -> SimpleNamespace:
    """One generation's contract module and client class. Both generations name their
    modules alike, so each is imported on its own and taken out of sys.modules again
    (its objects keep their module's globals)."""
    sys.path.insert(0, str(stub_dir))
    try:
        contract = importlib.import_module("evolution")
        client = importlib.import_module("evolution_client")
        return SimpleNamespace(
            Note=contract.Note, Level=contract.Level, Client=client.EvolvingClient
        )
    finally:
        sys.path.remove(str(stub_dir))
        for name in ("evolution", "evolution_client", "evolution_server"):
            sys.modules.pop(name, None)


class Served:
    def __init__(self, stub_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(E2E / "evolution_serve.py"), str(stub_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=same_checkout_env(),
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()  # bounded by pytest-timeout
        if not self.address:
            self.proc.kill()
            raise RuntimeError("evolution server did not start")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("evolution")
    stubs = {g: generate(folder, g) for g in GENERATIONS}
    api = {g: load(stubs[g]) for g in GENERATIONS}
    servers = {g: Served(stubs[g]) for g in GENERATIONS}
    try:
        yield {"api": api, "servers": servers}
    finally:
        for server in servers.values():
            server.stop()


def calls(matrix: dict[str, Any], client: str, server: str) -> Iterator[Any]:
    """A `client`-generation client of the `server`-generation server."""
    api = matrix["api"][client]
    with Pipe(matrix["servers"][server].address) as pipe:
        yield api, api.Client(pipe)


def test_breaking_calls_every_change_of_the_matrix_safe(tmp_path: Path) -> None:
    """The contract the rows below run is the one `gopherpipe breaking` passes."""
    gopherpipe = Path(sys.executable).parent / "gopherpipe"
    done = subprocess.run(
        [str(gopherpipe), "breaking", str(E2E / "evolution" / "v2" / "evolution.py"),
         "--against", str(E2E / "evolution" / "v1" / "evolution.py")],
        capture_output=True, text=True, env=same_checkout_env(), timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "0 breaking, 6 safe"


def test_added_field_with_default(matrix: dict[str, Any]) -> None:
    # Old client, new server: the new server fills in the default for what the old client
    # leaves out, and the old client ignores the field it does not know in the reply.
    for api, client in calls(matrix, "v1", "v2"):
        assert client.echo(api.Note("hi", api.Level.HIGH)) == api.Note("hi", api.Level.HIGH)
    # New client, old server: the old server ignores the new field it receives; the
    # reply, without it, comes back with the field's default.
    for api, client in calls(matrix, "v2", "v1"):
        reply = client.echo(api.Note("hi", api.Level.HIGH, ["sent"]))
        assert reply == api.Note("hi", api.Level.HIGH, [])
    for api, client in calls(matrix, "v2", "v2"):  # (what the new field carries when both know it)
        assert client.echo(api.Note("hi", tags=["a"])).tags == ["a", "seen by v2"]


def test_added_parameter_with_default(matrix: dict[str, Any]) -> None:
    for _api, client in calls(matrix, "v1", "v2"):
        assert client.greet("ann") == "hi ann"  # left out: the contract's default
    for _api, client in calls(matrix, "v2", "v1"):
        # An old server ignores an argument it does not declare (RFC 6.2): as if left out.
        assert client.greet("ann", polite=True) == "hi ann"
    for _api, client in calls(matrix, "v2", "v2"):
        assert client.greet("ann", polite=True) == "Good day, ann."


def test_added_method(matrix: dict[str, Any]) -> None:
    for _api, client in calls(matrix, "v2", "v1"):
        with pytest.raises(UnimplementedError) as info:
            client.ping()
        assert info.value.message == "service 'Evolving' has no method 'ping'"
    for _api, client in calls(matrix, "v2", "v2"):
        assert client.ping() == "pong"
    # (An old client has no way to call it: its other methods work, as every row shows.)


def test_added_enum_member_an_old_peer_receives(matrix: dict[str, Any]) -> None:
    # As a result: the old client refuses the value it does not know, as INTERNAL naming
    # the method and the value; the connection goes on serving.
    for api, client in calls(matrix, "v1", "v2"):
        with pytest.raises(InternalError) as info:
            client.level("URGENT")
        assert info.value.message == (
            "Evolving.level: malformed result from server: level(): result: 3 is not a "
            "valid Level"
        )
        assert client.level("HIGH") is api.Level.HIGH
    # As an argument: the old server refuses it, INVALID_ARGUMENT naming the argument.
    for api, client in calls(matrix, "v2", "v1"):
        with pytest.raises(InvalidArgumentError) as info:
            client.take_level(api.Level.URGENT)
        assert info.value.message == "take_level(): argument 'level': 3 is not a valid Level"
        assert client.take_level(api.Level.LOW) == "LOW"
    # Members both know travel as before.
    for api, client in calls(matrix, "v2", "v1"):
        assert client.level("HIGH") is api.Level.HIGH


def test_widened_to_optional(matrix: dict[str, Any]) -> None:
    # Works in both directions while None is not sent.
    for _api, client in calls(matrix, "v1", "v2"):
        assert client.length("abc") == 3
    for _api, client in calls(matrix, "v2", "v1"):
        assert client.length("abc") == 3
        # The new client sends None to an old server: INVALID_ARGUMENT naming the argument.
        with pytest.raises(InvalidArgumentError) as info:
            client.length(None)
        assert info.value.message == "length(): argument 'text': expected str, got NoneType"
    # The new server returns None to an old client: INTERNAL naming the result.
    for _api, client in calls(matrix, "v1", "v2"):
        with pytest.raises(InternalError) as info:
            client.length("")
        assert info.value.message == (
            "Evolving.length: malformed result from server: length(): result: expected "
            "int, got NoneType"
        )

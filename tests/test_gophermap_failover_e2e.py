"""Acceptance: a client on ``gophermap://EchoService@SEED`` keeps succeeding through the
SIGKILL of one of three Echo servers (at most the calls in flight on it fail).

Uses the balancing Pipe (a Pipe over a resolver's endpoints, skipping the failing
ones) as well as GopherMap."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator

import pytest
from e2e_harness import ROOT, Bystander, wait_until
from gophermap_harness import FAST, Member, detection_bound, start_cluster


@pytest.fixture
def echo_servers() -> Iterator[list[Member]]:
    """Three members, each serving EchoService through Server(gophermap=)."""
    members = start_cluster(3, prefix="echo", echo=True)
    try:
        yield members
    finally:
        for member in members:
            member.close()


def test_a_gophermap_client_keeps_succeeding_through_the_kill_of_one_of_three_servers(
    echo_servers: list[Member],
) -> None:
    seed, victim = echo_servers[0], echo_servers[1]
    everyone = sorted(m.echo for m in echo_servers)
    wait_until(lambda: seed.ask("resolve EchoService") == everyone, "three servers resolve")
    sys.path.insert(0, str(ROOT / "examples" / "echo"))
    try:
        import service_client
    finally:
        sys.path.pop(0)

    survivors = sorted(m.echo for m in echo_servers if m is not victim)
    with service_client.EchoServiceClient.dial(f"gophermap://EchoService@{seed.address}") as client:
        echo = client.with_options(timeout=10)

        def call(n: int) -> None:
            assert echo.echo(f"call {n}") == f"call {n}"

        with Bystander(call, pause=0.002, warmup=30, cooldown=50) as calling:
            victim.kill()
            # The calls go on through the detection (the killed server is still listed
            # until the members declare it dead) and after it.
            wait_until(
                lambda: seed.ask("resolve EchoService") == survivors,
                "the cluster drops the killed server",
                detection_bound(FAST, 4) + 5,
            )
        # One call at a time is in flight: at most that one may fail.
        assert len(calling.failures) <= 1, calling.failures
        print(f"\n{calling.calls} calls, {len(calling.failures)} failed: {calling.failures}")


def test_a_gophermap_client_joins_a_keyed_cluster_with_gophermap_key() -> None:
    key = secrets.token_bytes(32)
    server = Member(name="keyed-echo", echo=True, key=key.hex()).started()
    try:
        sys.path.insert(0, str(ROOT / "examples" / "echo"))
        try:
            import service_client
        finally:
            sys.path.pop(0)
        address = f"gophermap://EchoService@{server.address}"
        with service_client.EchoServiceClient.dial(address, gophermap_key=key) as client:
            assert client.with_options(timeout=10).echo("keyed") == "keyed"
        assert server.stats()["dropped_auth"] == 0
    finally:
        server.close()

"""GopherMap across processes: convergence, a SIGKILLed member declared dead within the
documented bound, a SIGSTOPped one suspected and refuting, keyed clusters refusing
outsiders, graceful leave, Server announcements, and the ``gopherpipe map`` CLI."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_harness import ROOT, same_checkout_env, wait_until
from gophermap_harness import FAST, Member, detection_bound, start_cluster, wait_converged

from gopherpipe_runtime.discovery import gossip_wire
from gopherpipe_runtime.discovery.gophermap import (
    GopherMap,
    PullRefused,
    pull_members,
    split_host_port,
)
from gopherpipe_runtime.discovery.swim import SwimConfig


@pytest.fixture
def cluster5() -> Iterator[list[Member]]:
    members = start_cluster(5)
    try:
        yield members
    finally:
        for member in members:
            member.close()


def test_five_members_converge_and_a_sigkilled_one_is_declared_dead_within_the_bound(
    cluster5: list[Member],
) -> None:
    victim, others = cluster5[2], cluster5[:2] + cluster5[3:]
    bound = detection_bound(FAST, 5)
    victim.kill()
    killed = time.monotonic()
    seen: dict[str, float] = {}

    def all_declared_dead() -> bool:
        for member in others:
            if member.name not in seen and member.states().get(victim.name) == "DEAD":
                seen[member.name] = time.monotonic() - killed
        return len(seen) == len(others)

    wait_until(all_declared_dead, f"all four declare {victim.name} dead", bound + 5)
    slowest = max(seen.values())
    print(f"\n{victim.name} declared dead by all 4 within {slowest:.2f}s (bound {bound:.2f}s)")
    assert slowest <= bound, (seen, bound)
    # Nobody else suffered for it: the four see each other alive (a busy machine may
    # cost one a passing suspicion, which it refutes).
    wait_converged(others, 10)
    for member in others:
        assert not any(kind == "dead" and name != victim.name for kind, name, _ in member.events())


def test_a_sigstopped_member_is_suspected_and_resumed_in_time_refutes_and_stays() -> None:
    # A longer suspicion (6 periods at least: 1.2 s) than the other tests, so that the
    # resumed process has time to hear of it and refute on a busy machine.
    swim = dict(FAST, suspicion_mult=6)
    members = start_cluster(5, swim=swim)
    try:
        victim, others = members[1], [members[0], *members[2:]]
        incarnation = others[0].view()[victim.name][1]
        os.kill(victim.proc.pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: any(m.states().get(victim.name) == "SUSPECT" for m in others),
                f"someone suspects the stopped {victim.name}",
                detection_bound(swim, 5),
            )
        finally:
            os.kill(victim.proc.pid, signal.SIGCONT)

        def refuted_everywhere() -> bool:
            for member in others:
                state, inc, _ = member.view()[victim.name]
                if state != "ALIVE" or inc <= incarnation:
                    return False
            return True

        wait_until(refuted_everywhere, f"{victim.name} refuted (alive, newer incarnation)", 10)
        for member in others:
            kinds = {kind for kind, name, _ in member.events() if name == victim.name}
            assert "dead" not in kinds, (member.name, member.events())
        assert any(
            kind == "suspect" and name == victim.name
            for m in others
            for kind, name, _ in m.events()
        )
        assert victim.stats()["refutations"] >= 1
    finally:
        for member in members:
            member.close()


def _bad_datagrams(target: Member, wrong_key: bytes) -> list[bytes]:
    """A PING signed with the wrong key, and one not signed at all."""
    ping = [gossip_wire.Ping(1, target.name)]
    now = time.time()
    return [
        gossip_wire.encode_packet(ping, key=wrong_key, now=now, nonce=secrets.token_bytes(8)),
        gossip_wire.encode_packet(ping, key=None, now=now, nonce=secrets.token_bytes(8)),
    ]


def test_a_keyed_cluster_admits_no_member_without_its_key_and_counts_the_drops() -> None:
    key = secrets.token_bytes(32)
    members = start_cluster(2, key=key.hex())
    seed = members[0]
    outsiders = [
        Member(name="nokey", seeds=[seed.address]),
        Member(name="wrongkey", seeds=[seed.address], key=secrets.token_bytes(32).hex()),
    ]
    try:
        for outsider in outsiders:
            outsider.started()
        # Both push their state to the seed (and retry): each is refused unread.
        wait_until(
            lambda: seed.stats()["dropped_auth"] >= 2
            and all(o.stats().get("push_pull_failed", 0) >= 2 for o in outsiders),
            "the seed refused both outsiders' states, and they retried",
        )
        before = seed.stats()["dropped_auth"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for datagram in _bad_datagrams(seed, secrets.token_bytes(32)):
                sock.sendto(datagram, split_host_port(seed.address))
        wait_until(
            lambda: seed.stats()["dropped_auth"] >= before + 2,
            "the seed dropped and counted the unauthenticated datagrams",
        )
        for member in members:
            assert set(member.states()) == {"m0", "m1"}
        for outsider in outsiders:
            assert set(outsider.states()) == {outsider.name}
        # The read-only pull is keyed too: without the key nothing is told.
        with pytest.raises(PullRefused):
            pull_members(seed.address, None, timeout=5)
        with pytest.raises(PullRefused):
            pull_members(seed.address, secrets.token_bytes(32), timeout=5)
        assert {m.name for m in pull_members(seed.address, key, timeout=5)} == {"m0", "m1"}
    finally:
        for member in members + outsiders:
            member.close()


def test_a_graceful_stop_is_seen_as_left_not_dead() -> None:
    members = start_cluster(3)
    try:
        leaving, others = members[2], members[:2]
        leaving.leave()
        wait_until(
            lambda: all(m.states().get(leaving.name) == "LEFT" for m in others),
            f"{leaving.name} is seen as left",
        )
        for member in others:
            kinds = [kind for kind, name, _ in member.events() if name == leaving.name]
            assert "leave" in kinds and "dead" not in kinds, kinds
    finally:
        for member in members:
            member.close()


@pytest.fixture
def echo_members() -> Iterator[list[Member]]:
    """A seed member, and two members each serving EchoService through Server(gophermap=)."""
    seed = Member(name="seed").started()
    members = [seed]
    try:
        servers = [Member(name=f"echo{i}", seeds=[seed.address], echo=True) for i in (1, 2)]
        members += servers
        for member in servers:
            member.started()
        wait_converged(members)
        yield members
    finally:
        for member in members:
            member.close()


def test_server_announcements_resolve_elsewhere_and_withdraw_at_stop(
    echo_members: list[Member],
) -> None:
    seed, echo1, echo2 = echo_members
    wanted = sorted([echo1.echo, echo2.echo])
    wait_until(lambda: seed.ask("resolve EchoService") == wanted, "both servers resolve")
    # A GopherMap in this process, joined through the seed, resolves them too, and a
    # client dialled through it calls them.
    sys.path.insert(0, str(ROOT / "examples" / "echo"))
    try:
        import service_client
    finally:
        sys.path.pop(0)
    with GopherMap(seeds=[seed.address], config=SwimConfig(**FAST)) as gmap:
        assert gmap.wait_joined(10)
        assert gmap.resolve("EchoService") == wanted
        for address in gmap.resolve("EchoService"):
            with service_client.EchoServiceClient.dial(address) as client:
                assert client.with_options(timeout=10).echo("hi") == "hi"
        seen: list[list[str]] = []
        unwatch = gmap.watch("EchoService", seen.append)
        assert echo1.ask("stop-echo") == "stopped"
        wait_until(lambda: gmap.resolve("EchoService") == [echo2.echo], "echo1 withdrawn")
        wait_until(lambda: seen[-1] == [echo2.echo], "the watch saw it")
        unwatch()
        assert seen[0] == wanted
    wait_until(lambda: seed.ask("resolve EchoService") == [echo2.echo], "withdrawn at the seed")


def _gopherpipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "gopherpipe"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=same_checkout_env(),
    )


def test_the_map_cli_prints_members_and_services(
    echo_members: list[Member], tmp_path: Path
) -> None:
    seed, echo1, echo2 = echo_members
    wait_until(lambda: len(seed.ask("resolve EchoService")) == 2, "both servers resolve")
    members = _gopherpipe("map", "members", "--seed", seed.address)
    assert members.returncode == 0, members.stderr
    lines = members.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "STATE", "INCARNATION", "SERVICES"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"seed", "echo1", "echo2"}
    assert rows["echo1"][1] == echo1.address and rows["echo1"][2] == "ALIVE"
    assert rows["echo1"][4] == "EchoService" and rows["seed"][4] == "-"
    services = _gopherpipe("map", "services", "--seed", echo2.address)
    assert services.returncode == 0, services.stderr
    lines = services.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "ADDRESS", "MEMBER", "META"]
    assert sorted(line.split() for line in lines[1:]) == sorted(
        [
            ["EchoService", echo1.echo, "echo1", "zone=test"],
            ["EchoService", echo2.echo, "echo2", "zone=test"],
        ]
    )
    as_json = _gopherpipe("map", "services", "--seed", seed.address, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert sorted(row["address"] for row in json.loads(as_json.stdout)) == sorted(
        [echo1.echo, echo2.echo]
    )
    # The CLI looked without joining: nobody knows of it.
    assert set(seed.states()) == {"seed", "echo1", "echo2"}

    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not a key")
    usage = _gopherpipe("map", "members", "--seed", seed.address, "--key-file", str(bad_key))
    assert usage.returncode == 2 and "64 hex digits" in usage.stderr
    wrong = tmp_path / "wrong.key"
    wrong.write_text(secrets.token_hex(32))
    refused = _gopherpipe("map", "members", "--seed", seed.address, "--key-file", str(wrong))
    assert refused.returncode == 5, refused.stderr
    unreachable = _gopherpipe(
        "map", "services", "--seed", f"127.0.0.1:{_free_port()}", "--timeout", "2"
    )
    assert unreachable.returncode == 4 and "unreachable" in unreachable.stderr


def test_the_map_cli_reads_a_keyed_cluster_with_its_key_file(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    members = start_cluster(2, key=key.hex())
    try:
        hex_file, raw_file = tmp_path / "hex.key", tmp_path / "raw.key"
        hex_file.write_text(key.hex() + "\n")
        raw_file.write_bytes(key)
        for key_file in (hex_file, raw_file):
            out = _gopherpipe(
                "map", "members", "--seed", members[1].address, "--key-file", str(key_file)
            )
            assert out.returncode == 0, out.stderr
            assert {line.split()[0] for line in out.stdout.splitlines()[1:]} == {"m0", "m1"}
        without = _gopherpipe("map", "members", "--seed", members[1].address)
        assert without.returncode == 5 and "key" in without.stderr
    finally:
        for member in members:
            member.close()


def _free_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

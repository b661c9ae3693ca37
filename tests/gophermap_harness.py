"""GopherMap members in their own processes (tests/e2e/gophermap_member.py), for the
gophermap end-to-end tests: start, ask (one JSON line per command), signal, kill."""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

from e2e_harness import E2E, same_checkout_env, wait_until

# Short periods, so that the tests take seconds: 0.2 s probes, gossip every 50 ms.
FAST = {
    "probe_interval": 0.2,
    "probe_timeout": 0.1,
    "gossip_interval": 0.05,
    "push_pull_interval": 5.0,
}


def detection_bound(swim: dict[str, Any], n: int) -> float:
    """Seconds within which every live member declares a killed one dead (README,
    "Discovery"): until a member's shuffled round-robin walk reaches the victim (at
    worst the end of the next walk: 2(n-1) probe periods), that probe's own period,
    the suspicion spreading (each broadcast is gossiped at most retransmit_mult *
    ceil(log10(n+1)) rounds), and Lifeguard's longest suspicion timeout (no
    confirmations: suspicion_max_timeout_mult * suspicion_mult * max(1, log10 n) *
    probe_interval)."""
    probe = swim.get("probe_interval", 1.0)
    gossip = swim.get("gossip_interval", 0.2)
    retransmits = swim.get("retransmit_mult", 4) * math.ceil(math.log10(n + 1))
    suspicion_min = swim.get("suspicion_mult", 4) * max(1.0, math.log10(n)) * probe
    suspicion_max = swim.get("suspicion_max_timeout_mult", 6) * suspicion_min
    return 2 * (n - 1) * probe + probe + retransmits * gossip + suspicion_max


class Member:
    """One member process; `ask` sends a command and returns its JSON answer."""

    def __init__(self, **config: Any) -> None:
        config.setdefault("swim", FAST)
        self.config = config
        self.proc = subprocess.Popen(
            [sys.executable, str(E2E / "gophermap_member.py"), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env=same_checkout_env(),
        )
        self._buffer = b""
        self.address = ""
        self.name = ""
        self.echo = ""

    def started(self) -> Member:
        """Wait for the first line (address, name[, echo address])."""
        words = self._read_line(30.0).split()
        self.address, self.name = words[0], words[1]
        self.echo = words[2] if len(words) > 2 else ""
        return self

    def _read_line(self, limit: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + limit
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise AssertionError(f"member {self.name or '?'}: no answer in {limit}s")
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"member {self.name or '?'} exited ({self.proc.wait(5)})")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        return json.loads(self._read_line(15.0))

    def view(self) -> dict[str, tuple[str, int, list[str]]]:
        """name -> (state, incarnation, services), as this member sees the cluster."""
        return {
            name: (state, inc, services) for name, _, state, inc, services in self.ask("members")
        }

    def states(self) -> dict[str, str]:
        return {name: state for name, (state, _, _) in self.view().items()}

    def events(self) -> list[tuple[str, str, int]]:
        return [tuple(e) for e in self.ask("events")]  # type: ignore[misc]

    def stats(self) -> dict[str, int]:
        return self.ask("stats")  # type: ignore[no-any-return]

    def leave(self) -> None:
        assert self.ask("leave") == "left"
        self.proc.wait(10)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def start_cluster(n: int, prefix: str = "m", **config: Any) -> list[Member]:
    """`n` members named prefix0.., the first the seed of the others; returns once all
    are converged (each sees all `n` alive)."""
    first = Member(name=f"{prefix}0", **config).started()
    members = [first]
    try:
        rest = [Member(name=f"{prefix}{i}", seeds=[first.address], **config) for i in range(1, n)]
        members += rest
        for member in rest:
            member.started()
        wait_converged(members)
    except BaseException:
        for member in members:
            member.close()
        raise
    return members


def wait_converged(members: list[Member], limit: float = 20.0) -> None:
    names = {m.name for m in members}

    def converged() -> bool:
        for member in members:
            states = member.states()
            if {n for n, s in states.items() if s == "ALIVE"} != names:
                return False
        return True

    wait_until(converged, f"{len(members)} members see each other alive", limit)

"""A running client on ``etcd://127.0.0.1:PORT/AllTypes`` takes up a server that
registers after it dialed, and lets go of one that stops (issue 12, acceptance 2).

It uses the balancing Pipe (pipe.py over resolver.py) as well as the etcd registry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from e2e_harness import ServerProcess, e2e_api, generate_stubs, wait_until
from etcd_server import EtcdServer

PREFIX = "/gopherpipe/services/"  # the default: what an etcd:// address without one uses


def serve(stubs: Path, etcd: EtcdServer) -> ServerProcess:
    harness = {"etcd": {"url": etcd.url, "ttl": 2, "prefix": PREFIX}}
    return ServerProcess(stubs, harness=json.dumps(harness))


def test_a_watch_adds_a_new_server_to_a_running_client(etcd: EtcdServer, tmp_path: Path) -> None:
    address = f"etcd://127.0.0.1:{etcd.client_port}/AllTypes"
    stubs = generate_stubs(tmp_path, "e2e_alltypes.py", "e2e_streams.py")
    first = serve(stubs, etcd)
    second: ServerProcess | None = None
    try:
        with e2e_api(stubs) as api:
            client = api["AllTypesClient"].dial(address)
            calls = client.with_options(timeout=10)
            try:
                n = 0

                def call_then(condition: Callable[[], bool]) -> bool:
                    nonlocal n
                    assert calls.add(n, 1) == n + 1  # every call succeeds
                    n += 1
                    return condition()

                call_then(lambda: True)  # registered before the client dialed
                second = serve(stubs, etcd)
                quiet = second.fds()
                # The new server gets calls once the watch told the client of it: a
                # connection of the client's appears there.
                wait_until(lambda: call_then(lambda: second.fds() > quiet), "calls reach it")
                # The first stops (withdrawn at once): calls go on, on the second.
                first.stop()
                for _ in range(50):
                    call_then(lambda: True)
            finally:
                client.close()
    finally:
        first.stop()
        if second is not None:
            second.stop()

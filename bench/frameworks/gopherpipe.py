"""GopherPipe: the generated echo stubs over the runtime, one client shared by every thread."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import gopherpipe_runtime
from bench import measure
from bench.frameworks import CERTS

LABEL = "gopherpipe"

_ECHO_DIR = Path(__file__).resolve().parent.parent.parent / "examples" / "echo"


def _stub(kind: str) -> ModuleType:
    """Import examples/echo/service_<kind>.py, however the generated stub imports its contract."""
    name = f"service_{kind}"
    if not (_ECHO_DIR / f"{name}.py").exists():
        raise ImportError(
            f"examples/echo/{name}.py does not exist yet; "
            "generate it with `gopherpipe gen examples/echo/service.py`"
        )
    try:
        return importlib.import_module(f"examples.echo.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("service", "service_client"):
            raise
        # The stub imports its contract (and the server stub, the client stub's converters)
        # as top-level modules: it needs its directory on sys.path.
        if str(_ECHO_DIR) not in sys.path:
            sys.path.insert(0, str(_ECHO_DIR))
        return importlib.import_module(name)


def _contract() -> ModuleType:
    # Subclass the very EchoService the stub imported, whichever name it was imported under.
    for name in ("examples.echo.service", "service"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "EchoService"):
            return module
    return importlib.import_module("examples.echo.service")


_BENCH_DIR = Path(__file__).resolve().parent.parent
_GENERATED = _BENCH_DIR / "_gp_generated"


def prepare() -> None:
    """Generate the streaming bench stubs with the project's own generator (git-ignored)."""
    _GENERATED.mkdir(exist_ok=True)
    (_GENERATED / "__init__.py").write_text("")
    subprocess.run(
        [sys.executable, "-m", "gopherpipe_gen", "gen", "-o", str(_GENERATED),
         str(_BENCH_DIR / "streaming_service.py"), str(_BENCH_DIR / "broadcast_service.py")],
        check=True, timeout=120, cwd=_BENCH_DIR.parent,
    )  # fmt: skip


def _streaming(kind: str) -> ModuleType:
    return importlib.import_module(f"bench._gp_generated.streaming_service_{kind}")


def _serve_streams(server: gopherpipe_runtime.Server) -> None:
    from bench.streaming_service import StreamBench, Tick

    class Streams(StreamBench):
        def ticks(self, count: int) -> gopherpipe_runtime.Chan[Tick]:
            out: gopherpipe_runtime.Chan[Tick] = gopherpipe_runtime.Chan(1024)

            def produce() -> None:
                with out:
                    for seq in range(count):
                        out.send(Tick(seq, "tick", 1.5))

            threading.Thread(target=produce, daemon=True).start()
            return out

        def ping_pong(self, pings: gopherpipe_runtime.Chan[Tick]) -> gopherpipe_runtime.Chan[Tick]:
            out: gopherpipe_runtime.Chan[Tick] = gopherpipe_runtime.Chan(16)

            def relay() -> None:
                with out:
                    for ping in pings:
                        out.send(ping)

            threading.Thread(target=relay, daemon=True).start()
            return out

    _streaming("server").register_stream_bench(server, Streams())


# The transports comparison's listeners, one per server process (so a tcp:// figure never
# comes from a server that also holds a TLS listener); ws and wss on a path, as browsers dial.
TRANSPORTS = {
    "tcp": "tcp://127.0.0.1:0",
    "tls": "tls://127.0.0.1:0",
    "ws": "ws://127.0.0.1:0/gp",
    "wss": "wss://127.0.0.1:0/gp",
}
_TLS_SCHEMES = ("tls://", "wss://")


def serve(transport: str = "tcp") -> tuple[str, Callable[[float], None]]:
    server_stub = _stub("server")
    contract = _contract()

    class Echo(contract.EchoService):  # type: ignore[misc, name-defined]
        def echo(self, text: str) -> str:
            return text

        def repeat(self, text: str, times: int = 2) -> Any:
            return contract.Echoed(text=text * times, times=times)

    listen = TRANSPORTS[transport]
    if listen.startswith(_TLS_SCHEMES):
        from gopherpipe_runtime.transport import tls

        context = tls.server_context(str(CERTS / "server.pem"), str(CERTS / "server.key"))
        server = gopherpipe_runtime.Server(listen, tls=context)
    else:
        server = gopherpipe_runtime.Server(listen)
    server_stub.register_echo_service(server, Echo())
    _serve_streams(server)
    server.start()

    def stop(grace: float) -> None:
        server.stop(grace)

    return str(server.addresses[0]), stop


def _dial_options(address: str) -> dict[str, Any]:
    """tls:// and wss:// check the server's test certificate against the test CA."""
    if not address.startswith(_TLS_SCHEMES):
        return {}
    from gopherpipe_runtime.transport import tls

    return {"tls": tls.client_context(str(CERTS / "ca.pem"))}


def _dial(address: str) -> Any:
    return _stub("client").EchoServiceClient.dial(address, **_dial_options(address))


def unary_latency(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    client = _dial(address)
    try:
        return measure.unary_latency(client.echo, payload, params["calls"], params["warmup"])
    finally:
        client.close()


def unary_throughput(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # One client for all threads: calls multiplex over its one connection.
    client = _dial(address)
    try:
        return measure.unary_throughput(
            client.echo,
            payload,
            params["threads"],
            params["calls_per_thread"],
            params["warmup_per_thread"],
        )
    finally:
        client.close()


def server_stream(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    # Items arrive as `Tick` dataclass instances, decoded by the generated stub.
    client = _streaming("client").StreamBenchClient.dial(address, **_dial_options(address))
    try:
        return measure.server_stream(client.ticks, params["messages"])
    finally:
        client.close()


def bidi_pingpong(address: str, payload: str, params: dict[str, Any]) -> dict[str, Any]:
    from bench.streaming_service import Tick

    client = _streaming("client").StreamBenchClient.dial(address, **_dial_options(address))
    pings: gopherpipe_runtime.Chan[Tick] = gopherpipe_runtime.Chan()
    pongs = client.ping_pong(pings)

    def round_trip(seq: int) -> int:
        pings.send(Tick(seq, "ping", 0.5))
        return int(pongs.recv().seq)

    try:
        return measure.bidi_pingpong(round_trip, params["rounds"], params["warmup"])
    finally:
        pings.close()
        for _ in pongs:
            pass
        client.close()


def _broadcast(kind: str) -> ModuleType:
    return importlib.import_module(f"bench._gp_generated.broadcast_service_{kind}")


def broadcast_serve(params: dict[str, Any]) -> tuple[str, Callable[[float], None]]:
    """The concurrent-streams server: the runtime's defaults (32 handler threads), nothing
    sized to the stream count; a subscriber is a `Chan(16)` the handler returns."""
    from bench.broadcast_service import Broadcast, Event

    class Hub(Broadcast):
        def __init__(self) -> None:
            self._lock = threading.Lock()
            self._subscribers: dict[str, list[gopherpipe_runtime.Chan[Event]]] = {}

        def subscribe(self, topic: str) -> gopherpipe_runtime.Chan[Event]:
            out: gopherpipe_runtime.Chan[Event] = gopherpipe_runtime.Chan(16)
            out.send(Event(0, time.monotonic_ns(), topic))
            with self._lock:
                self._subscribers.setdefault(topic, []).append(out)
            return out

        def publish(self, topic: str, seq: int) -> int:
            event = Event(seq, time.monotonic_ns(), topic)
            with self._lock:
                subscribers = list(self._subscribers.get(topic, ()))
            delivered = 0
            gone: list[gopherpipe_runtime.Chan[Event]] = []
            for chan in subscribers:
                try:
                    chan.send(event, timeout=10.0)
                    delivered += 1
                except gopherpipe_runtime.ChanClosed:
                    gone.append(chan)  # the subscriber went away
            if gone:
                with self._lock:
                    keep = self._subscribers.get(topic, [])
                    self._subscribers[topic] = [c for c in keep if c not in set(gone)]
            return delivered

    server = gopherpipe_runtime.Server("tcp://127.0.0.1:0")
    _broadcast("server").register_broadcast(server, Hub())
    server.start()
    return str(server.addresses[0]), server.stop


def broadcast_subscribe(
    address: str, params: dict[str, Any], say: Callable[[str], None]
) -> dict[str, Any]:
    """Open params["count"] streams on ONE connection, then take every broadcast on each.

    One thread takes the item from each stream in the order the streams were opened (the
    order the server sends in): a stream's time is when this thread took its item, which is
    never before it arrived.
    """
    count, broadcasts = params["count"], params["broadcasts"]
    client = _broadcast("client").BroadcastClient.dial(address)
    chans = [client.subscribe(params["topic"]) for _ in range(count)]
    try:
        for chan in chans:
            if chan.recv(timeout=params["timeout_s"]).seq != 0:
                raise measure.StreamOrderError("the first item was not the welcome")
        say(f"OPEN {count}")
        latencies: list[list[int]] = []
        now = time.monotonic_ns
        for seq in range(1, broadcasts + 1):
            got = [0] * count
            for i, chan in enumerate(chans):
                event = chan.recv(timeout=params["timeout_s"])
                got[i] = now() - event.sent_ns
                if event.seq != seq:
                    raise measure.StreamOrderError(f"expected event {seq}, got {event.seq}")
            latencies.append(got)
            say(f"GOT {seq}")
        return {"latencies_ns": latencies}
    finally:
        for chan in chans:
            chan.close()
        client.close()


def broadcast_publisher(address: str) -> tuple[Callable[[str, int], int], Callable[[], None]]:
    client = _broadcast("client").BroadcastClient.dial(address)
    return client.publish, client.close


STREAM_SERVERS = {"gopherpipe": broadcast_serve}

SCENARIOS = {
    "unary_latency": unary_latency,
    "unary_throughput": unary_throughput,
    "server_stream": server_stream,
    "bidi_pingpong": bidi_pingpong,
}

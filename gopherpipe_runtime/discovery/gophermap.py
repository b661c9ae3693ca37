"""GopherMap: the I/O driver of the gossip membership state machine (swim.py).

swim.py decides everything (whom to probe, what to gossip, who is dead) from bytes and
times it is handed; this module owns the sockets and the clock, and nothing else:

- `GopherMap` binds one UDP socket (gossip) and one TCP listener (push-pull state sync)
  on the same port number, as hashicorp/memberlist does, so a member is one
  ``host:port``. ONE thread per GopherMap runs a selector over the UDP socket, the
  listener, the push-pull connections in progress and a wake-up socketpair, and calls
  `Membership.tick` at `Membership.next_deadline()`: no thread per member or per
  connection. Public methods (``members``, ``resolve``, ``announce``...) run on the
  caller's thread under one lock and wake the loop when they gave it work.
- Push-pull over TCP (RFC "GopherMap push-pull over TCP"): one short connection per
  exchange, messages of ``kind (1 byte) | length (4 bytes) | payload``, each bounded in
  size (``push_pull_max_bytes``), each connection in time (``push_pull_timeout``) and
  their number (``push_pull_max_conns``). A pushed state is merged -- and so, with a key,
  authenticated -- before the answer is sent, so a member without the key learns
  nothing. A read-only PULL (challenge-response with the key) lets ``gopherpipe map``
  look at a cluster without joining it (`pull_members`).
- Joining: push-pull with the seeds, retried with backoff (``join_backoff`` doubling to
  ``join_backoff_max``) until one answers; `wait_joined` waits for that.
- `stop` leaves gracefully: the state machine broadcasts the leave, the loop keeps
  sending and answering for ``leave_timeout``, then closes.
- Announcer (resolver.py): ``Server(gophermap=gmap)`` announces its services through
  `GopherMap.announce` / `withdraw`; they travel as this member's services.
- Watching: `GopherMap.watch` (endpoint lists of one service) and `GopherMap.on_event`
  (member events) call back on the loop thread; `GopherMapResolver` feeds a Pipe.
- `resolver_for_address`: ``gophermap://Service`` over the Pipe's ``gophermap=``
  option, or ``gophermap://Service@HOST:PORT`` with a GopherMap of its own that joins
  through that seed as a member serving nothing (keyed: ``gophermap_key`` or the file
  in $GOPHERPIPE_GOPHERMAP_KEY_FILE), stopped by the resolver's `close`.
- For tools: `pull_members` (a blocking read-only pull, what ``gopherpipe map`` runs),
  `load_key` (key files: 64 hex digits or 32 raw bytes), `split_host_port`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import ipaddress
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..resolver import Resolver, Subscriber, WatchedEndpoints
from .gossip_wire import MAX_PUSH_PULL, PushPull, ReplayGuard, check_services, decode_packet
from .swim import MemberEvent, MemberInfo, Membership, ServiceEntry, SwimConfig

log = logging.getLogger("gopherpipe.gophermap")

KEY_SIZE = 32

# Push-pull messages over TCP (RFC "GopherMap push-pull over TCP").
PUSH = 0x01
STATE = 0x02
PULL = 0x03
CHALLENGE = 0x04
PROOF = 0x05
ERROR = 0x06
_HEADER = struct.Struct(">BI")
_PULL_CONTEXT = b"gopherpipe-map-pull\x00"
_CHALLENGE_SIZE = 32
_MAX_ERROR_TEXT = 200

_MAX_DATAGRAM = 65536
_DATAGRAMS_PER_ROUND = 64
"""Read at most this many datagrams per wake-up, so timers and TCP are not starved."""
_BIND_ATTEMPTS = 20
_MAX_WAIT = 60.0


def load_key(path: str | os.PathLike[str]) -> bytes:
    """A cluster key from a file: 64 hex digits (surrounding whitespace ignored) or
    exactly 32 raw bytes."""
    data = Path(path).read_bytes()
    text = data.strip()
    if len(text) == 2 * KEY_SIZE:
        with contextlib.suppress(ValueError):
            return bytes.fromhex(text.decode("ascii"))
    if len(data) == KEY_SIZE:
        return data
    raise ValueError(
        f"{os.fspath(path)}: a key file holds {KEY_SIZE} bytes, as {2 * KEY_SIZE} hex digits"
        f" or {KEY_SIZE} raw bytes (found {len(data)} bytes)"
    )


def split_host_port(address: str) -> tuple[str, int]:
    """``"127.0.0.1:7946"`` / ``"[::1]:7946"`` / ``"name:7946"`` -> (host, port)."""
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"malformed address {address!r}: write [::1]:7946")
        port_text = rest[1:]
    else:
        host, colon, port_text = address.rpartition(":")
        if not colon or not host or ":" in host:
            raise ValueError(f"address {address!r} needs HOST:PORT, e.g. 127.0.0.1:7946")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"address {address!r} has an invalid port {port_text!r}")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def local_address_towards(host: str) -> str:
    """The local IP this machine would use to reach `host` (a UDP "connect" sends
    nothing; it only asks the kernel for a route)."""
    family = _family(host)
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))
        return str(probe.getsockname()[0])


def _frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def _proof(key: bytes, challenge: bytes) -> bytes:
    return hmac.new(key, _PULL_CONTEXT + challenge, hashlib.sha256).digest()


class _MessageReader:
    """Cuts a push-pull byte stream into (kind, payload); a length beyond `limit` is
    refused before anything is buffered for it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer)
            if length > self._limit:
                raise ValueError(f"message of {length} bytes (limit {self._limit})")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            messages.append((kind, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return messages


@dataclass(eq=False)
class _Conn:
    """One push-pull exchange in progress (either side)."""

    sock: socket.socket
    outbound: bool
    peer: str
    deadline: float
    reader: _MessageReader
    join: bool = False
    connected: bool = True
    out: bytearray = field(default_factory=bytearray)
    answered: bool = False
    """Inbound: our last message is queued; close once it is sent."""
    challenge: bytes | None = None
    events: int = 0


@dataclass
class _Watch:
    service: str
    callback: Subscriber
    last: list[str] | None = None


class GopherMap:
    """A member of a GopherMap cluster: gossip membership and service discovery.

    ``GopherMap(bind="127.0.0.1:0", seeds=["10.0.0.5:7946"], key=None)``; `start` binds
    and joins in the background (retrying until a seed answers), `stop` leaves
    gracefully. ``Server(..., gophermap=gmap)`` announces its services through it, and
    ``XClient.dial("gophermap://Echo", gophermap=gmap)`` resolves through it.

    Options:
      bind                ``host:port`` of both the UDP gossip socket and the TCP
                          push-pull listener (one port number); port 0 picks a free one
                          (default ``127.0.0.1:0``)
      seeds               ``host:port`` of members to join through; any one answering
                          is enough (default none: the first member of a cluster)
      key                 32 bytes shared by the cluster: every packet and state is
                          authenticated with HMAC-SHA256, others are dropped and counted
                          (`load_key` reads a key file); None: no authentication
      name                this member's unique name (default ``<hostname>-<port>``)
      advertise           ``host:port`` others reach this member at (default the bound
                          address; required when binding 0.0.0.0 or ::); port 0 there
                          means the bound port
      config              the protocol's timing (`swim.SwimConfig`, LAN defaults)
      services            ``{name: ServiceEntry}`` served from the start (default none;
                          a Server adds its own through `announce`)
      push_pull_timeout   seconds one push-pull connection may take, end to end
                          (default 10)
      push_pull_max_bytes largest push-pull message accepted (default 8 MiB,
                          gossip_wire.MAX_PUSH_PULL)
      push_pull_max_conns push-pull connections open at once each way; more are
                          closed at once and counted (default 16)
      join_backoff        seconds before retrying the seeds after none answered,
                          doubling (default 0.2) ...
      join_backoff_max    ... up to this (default 5)
      leave_timeout       seconds `stop` keeps gossiping the leave before closing
                          (default 3 gossip intervals)

    Thread-safety: every method may be called from any thread. Callbacks of `watch`
    and `on_event` run on the GopherMap's own thread: they must not block.
    """

    def __init__(
        self,
        bind: str = "127.0.0.1:0",
        seeds: Iterable[str] = (),
        key: bytes | None = None,
        *,
        name: str | None = None,
        advertise: str | None = None,
        config: SwimConfig | None = None,
        services: Mapping[str, ServiceEntry] | None = None,
        push_pull_timeout: float = 10.0,
        push_pull_max_bytes: int = MAX_PUSH_PULL,
        push_pull_max_conns: int = 16,
        join_backoff: float = 0.2,
        join_backoff_max: float = 5.0,
        leave_timeout: float | None = None,
    ) -> None:
        if key is not None and (not isinstance(key, bytes) or len(key) != KEY_SIZE):
            raise ValueError(f"key must be {KEY_SIZE} bytes (or None)")
        self._bind_host, self._bind_port = split_host_port(bind)
        if advertise is None and _is_wildcard(self._bind_host):
            raise ValueError(
                f"GopherMap(bind={bind!r}): others cannot reach a wildcard address;"
                " pass advertise='HOST:PORT' (this machine's address on the cluster's network)"
            )
        if advertise is not None:
            split_host_port(advertise)
        self._seeds = list(seeds)
        for seed in self._seeds:
            split_host_port(seed)
        self._key = key
        self._name = name
        self._advertise = advertise
        self._config = config if config is not None else SwimConfig()
        self._services: dict[str, ServiceEntry] = dict(services or {})
        self._push_pull_timeout = push_pull_timeout
        self._push_pull_max_bytes = push_pull_max_bytes
        self._push_pull_max_conns = push_pull_max_conns
        self._join_backoff_min = join_backoff
        self._join_backoff_max = join_backoff_max
        self._leave_timeout = (
            leave_timeout if leave_timeout is not None else 3 * self._config.gossip_interval
        )

        self._lock = threading.Lock()
        """Guards the Membership, `_services` and `_stats` (the loop and callers share them)."""
        self._deliver_lock = threading.RLock()
        """Orders the callbacks of `watch`: a first value, then every change, never older."""
        self._membership: Membership | None = None
        self._stats: Counter[str] = Counter()
        self._watches: dict[int, _Watch] = {}
        self._event_callbacks: dict[int, Callable[[MemberEvent], None]] = {}
        self._next_id = 0
        self._joined = threading.Event()
        self._stopped = threading.Event()
        self._stop_requested = False
        self._started = False
        self._address = ""
        self._thread: threading.Thread | None = None
        self._epoch = time.time()
        self._epoch_monotonic = time.monotonic()

        self._selector: selectors.BaseSelector | None = None
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._conns: dict[socket.socket, _Conn] = {}
        self._addr_cache: dict[str, tuple[Any, ...]] = {}
        # Joining, touched by the loop thread only.
        self._join_targets: set[str] = set()
        self._join_outstanding = 0
        self._join_retry_at: float | None = None
        self._join_backoff = join_backoff
        self._leave_deadline: float | None = None
        self._changed = False

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> GopherMap:
        """Bind, then run the loop and join the seeds in the background."""
        with self._lock:
            if self._started:
                raise RuntimeError("GopherMap.start() was already called")
            self._started = True
        try:
            udp, tcp = self._bind()
        except BaseException:
            with self._lock:
                self._started = False  # nothing was started: start() may be tried again
            raise
        port = tcp.getsockname()[1]
        if self._advertise is not None:
            host, advertised_port = split_host_port(self._advertise)
            address = join_host_port(host, advertised_port or port)
        else:
            address = join_host_port(tcp.getsockname()[0], port)
        name = self._name if self._name is not None else f"{socket.gethostname()}-{port}"
        now = self._clock()
        try:
            membership = Membership(
                name,
                address,
                now=now,
                config=self._config,
                services=dict(self._services),
                key=self._key,
            )
        except BaseException:  # e.g. a name over the gossip's limits
            udp.close()
            tcp.close()
            with self._lock:
                self._started = False
            raise
        self._udp, self._tcp = udp, tcp
        self._address, self._name = address, name
        with self._lock:
            self._membership = membership
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for sock in (udp, tcp, self._wake_r, self._wake_w):
            sock.setblocking(False)
        self._selector.register(udp, selectors.EVENT_READ)
        self._selector.register(tcp, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        seeds = [s for s in self._seeds if s != self._address]
        if seeds:
            self._join_retry_at = now  # the loop's first round joins
        else:
            self._joined.set()  # nobody to join: a cluster of one is joined
        self._thread = threading.Thread(target=self._run, name=f"gophermap-{port}", daemon=True)
        self._thread.start()
        return self

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        family = _family(self._bind_host)
        attempts = _BIND_ATTEMPTS if self._bind_port == 0 else 1
        for attempt in range(attempts):
            tcp = socket.socket(family, socket.SOCK_STREAM)
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self._bind_host, self._bind_port))
                # The UDP port must be the TCP one: with port 0, the kernel may have
                # given it to another UDP socket already; then try another.
                udp.bind((self._bind_host, tcp.getsockname()[1]))
                tcp.listen(64)
                return udp, tcp
            except OSError:
                tcp.close()
                udp.close()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Leave the cluster gracefully (others see this member as left, not dead),
        keep gossiping that for ``leave_timeout``, then close. Idempotent."""
        with self._lock:
            if not self._started or self._stop_requested:
                already = True
            else:
                already = False
                self._stop_requested = True
        if not already:
            self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._leave_timeout + self._push_pull_timeout + 5.0)

    close = stop

    def __enter__(self) -> GopherMap:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_joined(self, timeout: float | None = None) -> bool:
        """Whether a seed answered (at once for a member without seeds) within `timeout`."""
        return self._joined.wait(timeout)

    # -- reading ----------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port`` of this member (UDP and TCP), once started."""
        if not self._address:
            raise RuntimeError("GopherMap is not started: call start() first")
        return self._address

    @property
    def name(self) -> str:
        if self._name is None:
            raise RuntimeError("GopherMap is not started: call start() first")
        return self._name

    @property
    def key(self) -> bytes | None:
        return self._key

    def members(self) -> list[MemberInfo]:
        """Every member this one knows, itself included (dead and left ones until
        they are reclaimed)."""
        with self._lock:
            return [] if self._membership is None else self._membership.members()

    def resolve(self, service: str) -> list[str]:
        """The addresses of alive (and suspected) members serving `service`, sorted."""
        with self._lock:
            return [] if self._membership is None else self._membership.resolve(service)

    @property
    def health_score(self) -> int:
        """Lifeguard's local health multiplier (0: healthy)."""
        with self._lock:
            return 0 if self._membership is None else self._membership.health_score

    @property
    def stats(self) -> dict[str, int]:
        """The state machine's counters (swim.py: sent, received, dropped_auth,
        dropped_replay, dropped_malformed, suspicions, refutations, deaths, ...) and
        the driver's: push_pull_out / push_pull_in (exchanges started / accepted),
        push_pull_failed (ours that got no STATE we accept), push_pull_rejected
        (states we refused), push_pull_too_large, push_pull_timeouts,
        push_pull_busy (over push_pull_max_conns), push_pull_malformed, pulls and
        pull_rejected (read-only pulls answered / refused), join_attempts,
        udp_send_errors, udp_receive_errors, callback_errors, loop_errors."""
        with self._lock:
            counters = dict(self._stats)
            if self._membership is not None:
                counters.update(self._membership.stats)
            return counters

    # -- announcing (resolver.Announcer) ---------------------------------------------

    def announce(self, services: Mapping[str, Sequence[str]], meta: Mapping[str, str]) -> None:
        """Serve ``{service: [addresses]}`` with `meta`, besides what was announced
        before (a name announced again is replaced); gossiped as a new incarnation.

        Raises ValueError, announcing nothing, when the services would not fit the
        gossip's limits (gossip_wire: 32 services, 16 addresses each, 1 KiB encoded),
        since every member's services must travel in one datagram."""
        with self._lock:
            wanted = dict(self._services)
            for service, addresses in services.items():
                wanted[service] = ServiceEntry(tuple(addresses), dict(meta))
            self._publish_services(wanted)
        self._wake()

    def withdraw(self, services: Iterable[str]) -> None:
        """Stop serving these services."""
        with self._lock:
            wanted = dict(self._services)
            for service in services:
                wanted.pop(service, None)
            self._publish_services(wanted)
        self._wake()

    def _publish_services(self, wanted: dict[str, ServiceEntry]) -> None:
        # Under the lock. Before start the services wait for the Membership; after
        # stop began there is nobody left to tell.
        check_services(wanted)
        self._services = wanted
        if self._membership is not None and not self._stop_requested:
            self._membership.set_services(dict(wanted), self._clock())
            self._changed = True

    # -- watching ---------------------------------------------------------------------

    def watch(self, service: str, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(endpoints)` now with `service`'s endpoints, then whenever
        they change (on the GopherMap's thread; it must not block). Returns an
        unsubscribe."""
        with self._deliver_lock:
            with self._lock:
                watch_id = self._next_id
                self._next_id += 1
                current = [] if self._membership is None else self._membership.resolve(service)
                self._watches[watch_id] = _Watch(service, callback, current)
            callback(list(current))

        def unsubscribe() -> None:
            with self._lock:
                self._watches.pop(watch_id, None)

        return unsubscribe

    def resolver(self, service: str) -> GopherMapResolver:
        """A `Resolver` of `service` through this GopherMap (for a Pipe)."""
        return GopherMapResolver(self, service)

    def on_event(self, callback: Callable[[MemberEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` for every member event (join, update, suspect,
        alive, dead, leave), on the GopherMap's thread. Returns an unsubscribe."""
        with self._lock:
            callback_id = self._next_id
            self._next_id += 1
            self._event_callbacks[callback_id] = callback

        def unsubscribe() -> None:
            with self._lock:
                self._event_callbacks.pop(callback_id, None)

        return unsubscribe

    # -- the loop ---------------------------------------------------------------------

    def _clock(self) -> float:
        """Wall-clock seconds that never jump: keyed packets carry this as their
        timestamp and the receiver's replay window compares it with its own (so
        members' clocks must agree within SwimConfig.replay_window), while the
        timers must not leap when NTP steps the system clock."""
        return self._epoch + (time.monotonic() - self._epoch_monotonic)

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
                self._wake_w.send(b"\0")

    def _run(self) -> None:
        assert self._selector is not None and self._membership is not None
        try:
            while True:
                try:
                    if self._round():
                        break
                except Exception:  # a bug must not end discovery for the process
                    log.exception("gophermap %s: unexpected error in the loop", self._name)
                    with self._lock:
                        self._stats["loop_errors"] += 1
                    self._selector.select(0.05)  # not a hot loop if it repeats
        finally:
            self._close_all()
            self._stopped.set()

    def _round(self) -> bool:
        """One turn of the loop; True when it is time to close."""
        assert self._selector is not None and self._membership is not None
        now = self._clock()
        with self._lock:
            deadline = self._membership.next_deadline()
            stop_requested = self._stop_requested
        if stop_requested and self._leave_deadline is None:
            with self._lock:
                self._membership.leave(now)
            self._leave_deadline = now + self._leave_timeout
            self._changed = True
        for candidate in (self._join_retry_at, self._leave_deadline):
            if candidate is not None:
                deadline = min(deadline, candidate)
        for conn in self._conns.values():
            deadline = min(deadline, conn.deadline)
        # Work given by the last round (a merge, an announce) is flushed without waiting.
        # (next_deadline() is inf with no timer: selectors refuse an infinite timeout.)
        timeout = 0.0 if self._changed else min(max(0.0, deadline - now), _MAX_WAIT)
        self._changed = False
        ready = self._selector.select(timeout)
        now = self._clock()
        for key, mask in ready:
            self._dispatch(key.fileobj, mask, now)  # type: ignore[arg-type]
        with self._lock:
            if now >= self._membership.next_deadline():
                self._membership.tick(now)
        if self._join_retry_at is not None and now >= self._join_retry_at:
            self._join_retry_at = None
            self._start_join(now)
        for conn in [c for c in self._conns.values() if now >= c.deadline]:
            self._count("push_pull_timeouts")
            self._finish(conn, f"no answer within {self._push_pull_timeout}s", now)
        self._flush(now)
        return self._leave_deadline is not None and now >= self._leave_deadline

    def _dispatch(self, sock: socket.socket, mask: int, now: float) -> None:
        if sock is self._udp:
            self._read_udp(now)
        elif sock is self._tcp:
            self._accept(now)
        elif sock is self._wake_r:
            with contextlib.suppress(OSError):
                sock.recv(4096)
        else:
            conn = self._conns.get(sock)
            if conn is not None:
                self._on_conn(conn, mask, now)

    def _flush(self, now: float) -> None:
        """Send what the state machine queued, start the push-pulls it asked for, and
        tell watchers what changed."""
        assert self._membership is not None
        with self._lock:
            outgoing = self._membership.take_outgoing()
            push_pulls = self._membership.take_push_pull()
            events = self._membership.take_events()
        for destination, payload in outgoing:
            self._send_udp(destination, payload)
        for peer in push_pulls:
            self._connect(peer, now)
        if events or self._watches:
            self._deliver(events)

    def _deliver(self, events: list[MemberEvent]) -> None:
        with self._deliver_lock:
            with self._lock:
                assert self._membership is not None
                callbacks = list(self._event_callbacks.values())
                changed: list[tuple[Subscriber, list[str]]] = []
                lists: dict[str, list[str]] = {}
                for watch in self._watches.values():
                    if watch.service not in lists:
                        lists[watch.service] = self._membership.resolve(watch.service)
                    current = lists[watch.service]
                    if current != watch.last:
                        watch.last = current
                        changed.append((watch.callback, list(current)))
            for event in events:
                for callback in callbacks:
                    self._call_back(callback, event)
            for subscriber, endpoints in changed:
                self._call_back(subscriber, endpoints)

    def _call_back(self, callback: Callable[[Any], None], value: object) -> None:
        try:
            callback(value)
        except Exception:
            log.exception("gophermap %s: a watch callback failed", self._name)
            self._count("callback_errors")

    def _count(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self._stats[counter] += n

    # -- UDP --------------------------------------------------------------------------

    def _read_udp(self, now: float) -> None:
        assert self._udp is not None and self._membership is not None
        for _ in range(_DATAGRAMS_PER_ROUND):
            try:
                datagram, source = self._udp.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error reported late: nothing to read now
                self._count("udp_receive_errors")
                return
            with self._lock:
                self._membership.receive(datagram, join_host_port(source[0], source[1]), now)

    def _send_udp(self, destination: str, payload: bytes) -> None:
        assert self._udp is not None
        try:
            target = self._sockaddr(destination)
            self._udp.sendto(payload, target)
        except (OSError, ValueError) as exc:  # full buffer, unroutable, bad address
            self._count("udp_send_errors")
            log.debug("gophermap %s: sending to %s failed: %s", self._name, destination, exc)

    def _sockaddr(self, address: str) -> tuple[Any, ...]:
        cached = self._addr_cache.get(address)
        if cached is None:
            host, port = split_host_port(address)
            family = self._udp.family if self._udp is not None else socket.AF_INET
            # Members advertise IP literals, so this rarely asks DNS (seeds may be names).
            cached = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4]
            if len(self._addr_cache) > 4096:
                self._addr_cache.clear()
            self._addr_cache[address] = cached
        return cached

    # -- joining ----------------------------------------------------------------------

    def _start_join(self, now: float) -> None:
        assert self._membership is not None
        seeds = [s for s in self._seeds if s != self._address]
        self._join_targets = set(seeds)
        self._join_outstanding = 0
        self._count("join_attempts")
        with self._lock:
            self._membership.join(seeds, now)
        # take_push_pull (in _flush) now lists the seeds; each is connected as a join.

    def _join_done(self, peer: str, ok: bool, now: float) -> None:
        if ok:
            if not self._joined.is_set():
                log.info("gophermap %s joined through %s", self._name, peer)
            self._joined.set()
            self._join_targets.clear()
            self._join_retry_at = None
            self._join_backoff = self._join_backoff_min
            return
        self._join_outstanding -= 1
        if (
            self._join_outstanding <= 0
            and not self._joined.is_set()
            and self._join_retry_at is None
            and self._leave_deadline is None
        ):
            self._join_retry_at = now + self._join_backoff
            log.debug("gophermap %s: no seed answered; retrying", self._name)
            self._join_backoff = min(self._join_backoff * 2, self._join_backoff_max)

    # -- push-pull over TCP -----------------------------------------------------------

    def _connect(self, peer: str, now: float) -> None:
        assert self._selector is not None and self._membership is not None
        join = peer in self._join_targets and not self._joined.is_set()
        outbound = sum(1 for c in self._conns.values() if c.outbound)
        if outbound >= self._push_pull_max_conns:
            self._count("push_pull_busy")
            if join:
                self._join_outstanding += 1
                self._join_done(peer, False, now)
            return
        self._count("push_pull_out")
        if join:
            self._join_outstanding += 1
        try:
            host, port = split_host_port(peer)
            # The family we gossip in: a name like localhost must not lead to ::1 when
            # the cluster is on 127.0.0.1.
            family = self._udp.family if self._udp is not None else 0
            info = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0]
            sock = socket.socket(info[0], socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            log.debug("gophermap %s: push-pull with %s: %s", self._name, peer, exc)
            self._count("push_pull_failed")
            if join:
                self._join_done(peer, False, now)
            return
        sock.setblocking(False)
        try:
            with self._lock:
                state = self._membership.push_pull_state(join=join, now=now)
        except ValueError as exc:  # our own state over the limit: nothing to send
            log.warning("gophermap %s: push-pull with %s: %s", self._name, peer, exc)
            sock.close()
            self._count("push_pull_failed")
            if join:
                self._join_done(peer, False, now)
            return
        conn = _Conn(
            sock,
            True,
            peer,
            now + self._push_pull_timeout,
            _MessageReader(self._push_pull_max_bytes),
            join=join,
            connected=False,
            out=bytearray(_frame(PUSH, state)),
        )
        self._conns[sock] = conn
        err = sock.connect_ex(info[4])
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._finish(conn, os.strerror(err), now)
            return
        self._register(conn)

    def _accept(self, now: float) -> None:
        assert self._tcp is not None
        for _ in range(_DATAGRAMS_PER_ROUND):
            try:
                sock, source = self._tcp.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors: the backlog waits for the next round
                self._count("push_pull_accept_errors")
                return
            inbound = sum(1 for c in self._conns.values() if not c.outbound)
            if inbound >= self._push_pull_max_conns:
                self._count("push_pull_busy")
                sock.close()
                continue
            self._count("push_pull_in")
            sock.setblocking(False)
            conn = _Conn(
                sock,
                False,
                join_host_port(source[0], source[1]),
                now + self._push_pull_timeout,
                _MessageReader(self._push_pull_max_bytes),
            )
            self._conns[sock] = conn
            self._register(conn)

    def _register(self, conn: _Conn) -> None:
        assert self._selector is not None
        events = selectors.EVENT_READ if conn.connected and not conn.answered else 0
        if conn.out or not conn.connected:
            events |= selectors.EVENT_WRITE
        if events == conn.events:
            return
        if conn.events == 0:
            self._selector.register(conn.sock, events)
        elif events == 0:
            self._selector.unregister(conn.sock)
        else:
            self._selector.modify(conn.sock, events)
        conn.events = events

    def _on_conn(self, conn: _Conn, mask: int, now: float) -> None:
        if mask & selectors.EVENT_WRITE:
            if not conn.connected:
                err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self._finish(conn, os.strerror(err), now)
                    return
                conn.connected = True
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._finish(conn, str(exc), now)
                return
            del conn.out[:sent]
            if not conn.out and conn.answered:
                self._finish(conn, None, now)
                return
        if mask & selectors.EVENT_READ and conn.sock in self._conns:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as exc:
                self._finish(conn, str(exc), now)
                return
            if data == b"":
                self._finish(conn, "closed without an answer", now)
                return
            if data:
                try:
                    messages = conn.reader.feed(data)
                except ValueError as exc:
                    self._count("push_pull_too_large")
                    self._refuse(conn, str(exc), now)
                    return
                for kind, payload in messages:
                    if conn.sock not in self._conns or conn.answered:
                        break
                    if conn.outbound:
                        self._on_answer(conn, kind, payload, now)
                    else:
                        self._on_request(conn, kind, payload, now)
        if conn.sock in self._conns:
            self._register(conn)

    def _on_request(self, conn: _Conn, kind: int, payload: bytes, now: float) -> None:
        assert self._membership is not None
        if kind == PUSH:
            try:
                with self._lock:
                    # Merging first authenticates (with a key): a member without it
                    # gets an ERROR, never our state.
                    self._membership.merge_push_pull(payload, now)
                    state = self._membership.push_pull_state(now=now)
            except ValueError as exc:
                self._count("push_pull_rejected")
                log.info("gophermap %s: push-pull from %s refused: %s", self._name, conn.peer, exc)
                self._refuse(conn, "state refused", now)
                return
            self._changed = True
            self._answer(conn, _frame(STATE, state))
        elif kind == PULL and conn.challenge is None:
            if self._key is None:
                self._answer(conn, _frame(STATE, self._read_only_state(now)))
            else:
                conn.challenge = os.urandom(_CHALLENGE_SIZE)
                conn.out += _frame(CHALLENGE, conn.challenge)
        elif kind == PROOF and conn.challenge is not None and self._key is not None:
            if hmac.compare_digest(payload, _proof(self._key, conn.challenge)):
                self._answer(conn, _frame(STATE, self._read_only_state(now)))
            else:
                self._count("pull_rejected")
                self._refuse(conn, "authentication failed", now)
        else:
            self._count("push_pull_malformed")
            self._refuse(conn, f"unexpected message kind {kind}", now)

    def _read_only_state(self, now: float) -> bytes:
        assert self._membership is not None
        self._count("pulls")
        with self._lock:
            return self._membership.push_pull_state(now=now)

    def _on_answer(self, conn: _Conn, kind: int, payload: bytes, now: float) -> None:
        assert self._membership is not None
        if kind == STATE:
            try:
                with self._lock:
                    self._membership.merge_push_pull(payload, now)
            except ValueError as exc:
                self._count("push_pull_rejected")
                self._finish(conn, f"its state was refused: {exc}", now)
                return
            self._changed = True
            self._finish(conn, None, now)
        elif kind == ERROR:
            reason = payload[:_MAX_ERROR_TEXT].decode("utf-8", "replace")
            self._finish(conn, f"refused: {reason}", now)
        else:
            self._count("push_pull_malformed")
            self._finish(conn, f"unexpected message kind {kind}", now)

    def _answer(self, conn: _Conn, message: bytes) -> None:
        conn.out += message
        conn.answered = True

    def _refuse(self, conn: _Conn, reason: str, now: float) -> None:
        if conn.outbound:
            self._finish(conn, reason, now)
            return
        # Best effort: one small message, then close; it never waits for the peer.
        with contextlib.suppress(OSError):
            conn.sock.send(_frame(ERROR, reason.encode()[:_MAX_ERROR_TEXT]))
        self._finish(conn, reason, now)

    def _finish(self, conn: _Conn, error: str | None, now: float) -> None:
        """Close one push-pull connection; `error` None means it did its job."""
        assert self._selector is not None
        if self._conns.pop(conn.sock, None) is None:
            return
        if conn.events:
            self._selector.unregister(conn.sock)
        conn.sock.close()
        if conn.outbound:
            if error is not None:
                self._count("push_pull_failed")
                log.debug("gophermap %s: push-pull with %s: %s", self._name, conn.peer, error)
            if conn.join:
                self._join_done(conn.peer, error is None, now)

    def _close_all(self) -> None:
        for conn in list(self._conns.values()):
            with contextlib.suppress(OSError):
                conn.sock.close()
        self._conns.clear()
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        if self._selector is not None:
            self._selector.close()

    def __repr__(self) -> str:
        return f"<GopherMap {self._name} {self._address or 'not started'}>"


class GopherMapResolver(Resolver):
    """One service's endpoints through a GopherMap, for a Pipe (resolver.py).

    With ``owned=True`` the GopherMap is the resolver's own (``gophermap://S@HOST:PORT``)
    and `close` stops it (a graceful leave)."""

    def __init__(self, gmap: GopherMap, service: str, *, owned: bool = False) -> None:
        self._gmap = gmap
        self._service = service
        self._owned = owned
        self._watched = WatchedEndpoints()
        self._unwatch = gmap.watch(service, self._watched.update)

    @property
    def gophermap(self) -> GopherMap:
        return self._gmap

    def endpoints(self) -> list[str]:
        return self._watched.current()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        return self._watched.subscribe(callback)

    def close(self) -> None:
        self._unwatch()
        if self._owned:
            self._gmap.stop()


def parse_gophermap_address(address: str) -> tuple[str, list[str]]:
    """``gophermap://Service`` -> ("Service", []); ``gophermap://Service@HOST:PORT``
    (several seeds comma-separated) -> ("Service", ["HOST:PORT", ...])."""
    scheme, sep, rest = address.partition("://")
    if scheme != "gophermap" or not sep:
        raise ValueError(f"{address!r} is not a gophermap:// address")
    service, at, seed_text = rest.partition("@")
    if not service or "/" in service or "," in service:
        raise ValueError(
            f"{address!r} needs a service name: gophermap://Echo or gophermap://Echo@HOST:PORT"
        )
    seeds: list[str] = []
    if at:
        seeds = [s.strip() for s in seed_text.split(",")]
        for seed in seeds:
            split_host_port(seed)
    return service, seeds


JOIN_WAIT = 5.0
"""Seconds `resolver_for_address` waits for a seed to answer, so that a first call
finds the endpoints (joining goes on in the background after that)."""


KEY_FILE_ENV = "GOPHERPIPE_GOPHERMAP_KEY_FILE"
"""The key file (`load_key`) of the GopherMap a ``gophermap://Service@HOST:PORT``
resolver starts, for a keyed cluster."""


def resolver_for_address(address: str, options: Mapping[str, Any]) -> GopherMapResolver:
    """The resolver of ``gophermap://Service`` (the ``gophermap=`` option's GopherMap)
    or ``gophermap://Service@HOST:PORT`` (a GopherMap of its own, joined through that
    seed; for a keyed cluster the key comes from the ``gophermap_key`` option when the
    Pipe passes one, else from the file named by $GOPHERPIPE_GOPHERMAP_KEY_FILE)."""
    service, seeds = parse_gophermap_address(address)
    gmap = options.get("gophermap")
    if not seeds:
        if gmap is None:
            raise ValueError(
                f"{address!r} resolves through a GopherMap: pass gophermap=GopherMap(...)"
                f" (started), or name a seed: gophermap://{service}@HOST:PORT"
            )
        if not isinstance(gmap, GopherMap):
            raise ValueError(f"gophermap= must be a GopherMap, not {type(gmap).__name__}")
        return GopherMapResolver(gmap, service)
    if gmap is not None:
        raise ValueError(
            f"{address!r} names its own seed, and gophermap= gives a GopherMap too:"
            f" use one (gophermap://{service} with gophermap=, or the seed alone)"
        )
    host = split_host_port(seeds[0])[0]
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    # A member must be reachable by the others: on loopback for a loopback seed, else
    # on the interface that routes to the seed.
    local = "127.0.0.1" if loopback else local_address_towards(socket.gethostbyname(host))
    key = options.get("gophermap_key")
    key_file = os.environ.get(KEY_FILE_ENV)
    if key is None and key_file:
        key = load_key(key_file)
    own = GopherMap(join_host_port(local, 0), seeds, key)
    own.start()
    own.wait_joined(JOIN_WAIT)
    return GopherMapResolver(own, service, owned=True)


class PullRefused(Exception):
    """A member answered a read-only pull with an error (e.g. the key is wrong)."""


def pull_members(seed: str, key: bytes | None = None, timeout: float = 3.0) -> list[MemberInfo]:
    """What the member at `seed` knows (every member, itself included), read with a
    read-only pull: this process does not join. Blocking, bounded by `timeout`.

    Raises OSError (TimeoutError included) when the member cannot be reached or does
    not answer in time, PullRefused when it refuses (wrong or missing key), and
    ValueError when its answer is not a valid state (or not signed with `key`)."""
    deadline = time.monotonic() + timeout
    host, port = split_host_port(seed)
    reader = _MessageReader(64 * 1024 * 1024)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_frame(PULL))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer from {seed} within {timeout}s")
            sock.settimeout(remaining)
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"{seed} closed the connection without an answer")
            for kind, payload in reader.feed(data):
                if kind == CHALLENGE:
                    if key is None:
                        raise PullRefused(f"{seed} belongs to a keyed cluster: pass its key")
                    sock.sendall(_frame(PROOF, _proof(key, payload)))
                elif kind == STATE:
                    return _decode_state(payload, key)
                elif kind == ERROR:
                    reason = payload[:_MAX_ERROR_TEXT].decode("utf-8", "replace")
                    raise PullRefused(f"{seed} refused: {reason}")
                else:
                    raise ValueError(f"{seed} sent an unexpected message kind {kind}")


def _decode_state(data: bytes, key: bytes | None) -> list[MemberInfo]:
    # Decoded as is, not merged into a state machine of ours: a merge would turn
    # the member's DEAD records into suspicions (swim.py gives the dead a chance to
    # refute), and this is a report of what the member believes.
    # A fresh guard still checks the timestamp window: an old answer replayed to us
    # is refused.
    guard = ReplayGuard(SwimConfig().replay_window)
    messages = decode_packet(data, key=key, now=time.time(), guard=guard, max_size=MAX_PUSH_PULL)
    if len(messages) != 1 or not isinstance(messages[0], PushPull):
        raise ValueError("the answer is not one push-pull state")
    return list(messages[0].members)

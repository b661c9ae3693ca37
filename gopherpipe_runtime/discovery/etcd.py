"""etcd as the registry: servers register under a lease, clients resolve and watch.

For fleets that outgrow gossip or already run etcd (a real, replicated store), a
`Server(registry=EtcdRegistry("http://127.0.0.1:2379"))` registers every service it
serves, and a client dialing ``etcd://127.0.0.1:2379/Echo`` resolves the servers of
Echo and follows every change (resolver.py's `Resolver`, which the Pipe balances over).

Key layout (RFC-TCP_LITE.md section 15; one key per service and address, so that
servers never write each other's keys)::

    <prefix><service>/<address>  ->  {"address": "<address>", "service": "<service>",
                                      "meta": {"version": "1.2", ...}}
    e.g. /gopherpipe/services/Echo/tcp://10.0.0.7:7000

`prefix` defaults to ``/gopherpipe/services/``; values are JSON (UTF-8). A reader takes
the address from the value; a value that is not such JSON, or whose address
`parse_address` refuses, is skipped and counted (``stats()["malformed_entries"]``).

Leases (what makes a killed server's entries go away): the first `announce` grants a
lease of `ttl` seconds and every key is written under it. ONE keeper thread per
registry (not per service) refreshes it every ttl/3 and, should it have expired (etcd
was out of reach for longer than ttl), grants a new one and writes every entry again;
failed refreshes are retried with a short backoff (0.1 s doubling, at most ttl/3).
A SIGKILLed server stops refreshing, so etcd deletes its keys within ttl (etcd rounds
a TTL up to whole seconds and grants at least about 2 s with its default timing).
`withdraw` (a Server's graceful stop) deletes the keys at once, each in a transaction
that deletes it only while it still holds this registry's lease, so a server restarted
on the same address (which wrote the key anew under its own lease) keeps its entry.
`close` revokes the lease: every entry left goes at once.

Resolve and watch: `resolve(service)` reads the range ``<prefix><service>/``.
`watch(service, callback)` reads the same range, calls `callback(addresses)` with it,
then watches the range from the revision that read returned plus one, so that no
change between the two is missed. Each change calls `callback` with the whole new
list. A watch that breaks (etcd restarted, connection reset) is opened again from the
last revision seen, after a backoff of 0.1 s doubling up to 5 s with jitter; if etcd
compacted that revision away, the range is read again and the watch starts over from
it. A quiet watch is not a broken one: an etcd host that vanished without a FIN is
found by TCP keep-alive probes (after 30 s of silence, 3 probes 10 s apart), and, as a
backstop, a watch silent for 15 minutes is reopened (etcd sends the progress
notifications asked for every 10 minutes by default, so a live one never is).

The sans-IO half: `read_range` (a range reply -> entries and revision) and
`WatchState` (the entries of a range, fed the watch stream's lines: what happened,
where to resume) hold every rule about what etcd sends, and are tested without etcd;
`_Watch` is the thin I/O around them. An unreadable entry or event is skipped and
counted; a line that is not a watch response reopens the stream.

Threads: the keeper (only once something is announced) and one per active watch: a
watch is one long HTTP response that blocks its reader, and a process watches as many
ranges as services it dials, not members or calls. All are daemon threads, ended by
`close` (a watch's socket is shut down to wake its reader).

Why two HTTP clients: the unary calls (lease grant, keep-alive and revoke, put, range,
transactions) go through etcd3gw (PyPI, the ``etcd`` extra), which speaks etcd's
grpc-gateway JSON API (``/v3/`` on etcd 3.4 and later; it finds the path from
``/version``) without grpc. Its `Watcher`, however, cannot serve here: it reads on an
executor thread that swallows the stream's end and any error (a broken watch goes
silent, never to be reopened), has no read timeout, ignores etcd's cancel and
compaction notices, and cancels through requests' private attributes. So the stream is
read here with the standard library's http.client: one POST to ``<api>/watch``, one
JSON object per line in a chunked response, a socket this module can shut down.

``etcd://HOST:PORT/Service`` (`resolver_for_address`): the registry at
``http://HOST:PORT`` with the default prefix; ``etcd://HOST:PORT/my/prefix/Service``
names another prefix (``/my/prefix/``). TLS to etcd and its authentication are not
supported through the address; an `EtcdRegistry` with an https:// URL verifies etcd's
certificate against the default CAs, and client certificates are not supported yet.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import math
import random
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..address import parse_address
from ..resolver import Resolver, Subscriber, WatchedEndpoints

if TYPE_CHECKING:
    from etcd3gw.client import Etcd3Client
    from etcd3gw.lease import Lease

log = logging.getLogger("gopherpipe.etcd")

DEFAULT_PREFIX = "/gopherpipe/services/"
DEFAULT_PORT = 2379

_WATCH_IDLE = 900.0
"""Seconds a watch may go without a byte before it is opened again (see above)."""
_KEEPALIVE = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}
_MAX_WATCH_MESSAGE = 16 << 20
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0

_STATS = (
    "malformed_entries",  # registry values skipped: not JSON, no address, a bad address
    "keepalive_failures",  # keeper rounds that could not reach etcd
    "lease_grants",  # leases granted (more than one: a lease expired and was replaced)
    "watch_reconnects",  # watch streams opened again after an error or an end
    "watch_resyncs",  # ranges read again because etcd compacted the revision to resume from
    "callback_errors",  # watch callbacks that raised (logged, the watch goes on)
)


class EtcdError(Exception):
    """etcd could not be reached, or answered something other than what was asked."""


def _etcd3gw() -> Any:
    try:
        import etcd3gw
    except ImportError as exc:  # the optional extra is not installed
        raise ImportError(
            "EtcdRegistry needs the etcd3gw package: pip install 'gopherpipe[etcd]'"
        ) from exc
    return etcd3gw


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _range_end(prefix: str) -> str:
    """The end of etcd's range for every key under `prefix` (its last byte plus one)."""
    raw = prefix.encode()
    return (raw[:-1] + bytes([raw[-1] + 1])).decode()


def _check_service(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"service name {name!r} must be a non-empty string without '/'")
    return name


class EtcdRegistry:
    """etcd as the registry for large fleets; see the module docstring.

    `EtcdRegistry(url)` holds no connection until used. As a server's registry
    (``Server(registry=...)``, resolver.py's `Announcer`) it registers services under
    a lease; as a client's it resolves and watches them. `close()` (or ``with``)
    revokes the lease and ends every thread.

    Options:
      ttl       seconds a registered entry outlives its server's last keep-alive
                (default 10.0; rounded up to whole seconds by etcd)
      prefix    where the entries live (default "/gopherpipe/services/"; must end with "/")
      timeout   seconds each request to etcd may take, and a watch's connect (default 5.0)
    """

    def __init__(
        self,
        url: str = f"http://127.0.0.1:{DEFAULT_PORT}",
        *,
        ttl: float = 10.0,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"etcd URL {url!r} must look like http://127.0.0.1:2379")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"etcd URL {url!r} must have no path: http://127.0.0.1:2379")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise ValueError(f"etcd URL {url!r} has an invalid port") from exc
        if not ttl > 0 or not timeout > 0:
            raise ValueError("ttl and timeout must be positive numbers of seconds")
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError(f"prefix {prefix!r} must start and end with '/'")
        etcd3gw = _etcd3gw()
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.ttl = float(ttl)
        self.prefix = prefix
        self.timeout = float(timeout)
        self._host = parts.hostname
        self._port = port
        self._https = parts.scheme == "https"
        self._client: Etcd3Client = etcd3gw.client(
            host=self._host, port=port, protocol=parts.scheme, timeout=self.timeout
        )
        # Held across the HTTP calls that change the lease or the entries, so that a
        # keeper round and an announce never interleave their writes (each call is
        # bounded by `timeout`).
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, str]] = {}
        """key -> (service, JSON value): what this registry has announced."""
        self._unwritten: set[str] = set()
        """Keys not yet known to be in etcd under the current lease."""
        self._lease: Lease | None = None
        self._keeper: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._watches: set[_Watch] = set()
        self._watch_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stats = dict.fromkeys(_STATS, 0)

    def __repr__(self) -> str:
        return f"EtcdRegistry({self.url!r}, prefix={self.prefix!r})"

    def __enter__(self) -> EtcdRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Counters of what went wrong and was survived (see `_STATS` in the source)."""
        with self._stats_lock:
            return dict(self._stats)

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self._stats[name] += 1

    # -- keys and values ------------------------------------------------------------

    def service_prefix(self, service: str) -> str:
        """``<prefix><service>/``: the range holding every entry of `service`."""
        return f"{self.prefix}{_check_service(service)}/"

    def _address_of(self, key: str, value: bytes) -> str | None:
        try:
            entry = json.loads(value)
            address = entry["address"]
            if not isinstance(address, str):
                raise TypeError("the address is not a string")
            parse_address(address)
        except (ValueError, KeyError, TypeError) as exc:
            self._count("malformed_entries")
            log.warning("etcd at %s: skipping the malformed entry %r: %s", self.url, key, exc)
            return None
        return address

    # -- etcd calls ---------------------------------------------------------------------

    def _call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one etcd3gw call; every way it can fail becomes an EtcdError naming it."""
        try:
            return function(*args, **kwargs)
        except Exception as exc:  # requests, etcd3gw and JSON errors alike
            raise EtcdError(f"etcd at {self.url}: {what} failed: {exc}") from exc

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        reply = self._call(path, lambda: self._client.post(self._client.get_url(path), json=body))
        if not isinstance(reply, dict):
            raise EtcdError(f"etcd at {self.url}: {path} answered {reply!r}")
        return reply

    def _range(self, prefix: str) -> tuple[dict[str, str], int]:
        """Every valid entry under `prefix` (key -> address) and the store's revision."""
        reply = self._post(
            "/kv/range", {"key": _b64(prefix), "range_end": _b64(_range_end(prefix))}
        )
        try:
            return read_range(reply, self._address_of)
        except EtcdError as exc:
            raise EtcdError(f"etcd at {self.url}: {exc}") from exc

    def _grant(self) -> Lease:
        lease: Lease = self._call("lease grant", self._client.lease, math.ceil(self.ttl))
        self._count("lease_grants")
        return lease

    # -- Announcer (resolver.py) --------------------------------------------------------

    def announce(self, services: Mapping[str, Sequence[str]], meta: Mapping[str, str]) -> None:
        """Register ``{service: [addresses]}`` with `meta` under this registry's lease.

        Adds to what was announced before. If etcd cannot be reached now, the failure
        is logged and the keeper thread keeps trying; the entries appear once it can.
        """
        entries = {}
        for service, addresses in services.items():
            for address in addresses:
                parse_address(address)
                value = json.dumps(
                    {"address": address, "service": service, "meta": dict(meta)},
                    sort_keys=True,
                )
                entries[self.service_prefix(service) + address] = (service, value)
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError(f"{self!r} is closed")
            for key, entry in entries.items():
                if self._entries.get(key) != entry:
                    self._entries[key] = entry
                    self._unwritten.add(key)
            try:
                self._sync(refresh=False)
            except EtcdError as exc:
                log.warning("%s; registering again in the background", exc)
                self._wake.set()  # retried by the keeper soon, not a keep-alive later
            if self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._keep, name="gopherpipe-etcd-keeper", daemon=True
                )
                self._keeper.start()

    def withdraw(self, services: Iterable[str]) -> None:
        """Delete the entries of these services now; never raises (an entry that
        cannot be deleted goes with the lease)."""
        names = set(services)
        with self._lock:
            keys = [key for key, (service, _) in self._entries.items() if service in names]
            for key in keys:
                del self._entries[key]
                self._unwritten.discard(key)
            lease = self._lease
            if lease is None:
                return  # nothing was written yet
            for key in keys:
                try:
                    self._delete_if_ours(key, lease)
                except EtcdError as exc:
                    log.warning("%s; the entry goes when the lease expires", exc)

    def _delete_if_ours(self, key: str, lease: Lease) -> None:
        encoded = _b64(key)
        txn = {
            "compare": [{"key": encoded, "result": "EQUAL", "target": "LEASE", "lease": lease.id}],
            "success": [{"request_delete_range": {"key": encoded}}],
            "failure": [],
        }
        self._call(f"deleting {key!r}", self._client.transaction, txn)

    def _sync(self, refresh: bool) -> None:
        """Make etcd hold every entry under a live lease (the lock is held)."""
        if (
            self._lease is not None
            and refresh
            and self._call("lease keep-alive", self._lease.refresh) <= 0
        ):
            log.warning("etcd at %s: the lease expired; registering again", self.url)
            self._lease = None
        if self._lease is None:
            if not self._entries:
                return
            self._lease = self._grant()
            self._unwritten = set(self._entries)
        for key in sorted(self._unwritten):
            _, value = self._entries[key]
            self._call(f"writing {key!r}", self._client.put, key, value, lease=self._lease)
            self._unwritten.discard(key)

    def _keep(self) -> None:
        interval = self.ttl / 3
        delay = interval
        failures = 0
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            if self._closed.is_set():
                return
            try:
                with self._lock:
                    if self._closed.is_set():
                        return
                    self._sync(refresh=True)
            except EtcdError as exc:
                failures += 1
                self._count("keepalive_failures")
                log.warning("%s; retrying", exc)
                delay = min(interval, _BACKOFF_FIRST * 2 ** min(failures - 1, 16))
            except Exception:  # a bug must not end keep-alives silently forever
                failures += 1
                self._count("keepalive_failures")
                log.exception("etcd at %s: keep-alive round failed", self.url)
                delay = interval
            else:
                failures = 0
                delay = interval

    # -- resolve and watch ----------------------------------------------------------------

    def resolve(self, service: str) -> list[str]:
        """The addresses registered for `service` now (sorted); raises EtcdError."""
        found, _ = self._range(self.service_prefix(service))
        return sorted(set(found.values()))

    def watch(self, service: str, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(addresses)` with the current list, then with every new one;
        returns a function that stops the watch.

        The first list is read before this returns (and `callback` is called with it
        here) unless etcd cannot be reached, in which case the watch's thread keeps
        trying. Later calls come from the watch's thread: `callback` must not block.
        """
        watch = _Watch(self, service, callback)
        with self._watch_lock:
            if self._closed.is_set():
                raise RuntimeError(f"{self!r} is closed")
            self._watches.add(watch)
        watch.start()
        return watch.cancel

    def _forget(self, watch: _Watch) -> None:
        with self._watch_lock:
            self._watches.discard(watch)

    def _watch_connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _watch_path(self) -> str:
        return str(self._call("finding the API path", lambda: self._client.get_url("/watch")))

    # -- close ----------------------------------------------------------------------------

    def close(self) -> None:
        """Revoke the lease (every entry goes at once) and stop every thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        keeper = self._keeper
        if keeper is not None and keeper is not threading.current_thread():
            keeper.join(self.timeout + 1)
        with self._lock:
            lease, self._lease = self._lease, None
            self._entries.clear()
            self._unwritten.clear()
            if lease is not None:
                try:
                    self._call("lease revoke", lease.revoke)
                except EtcdError as exc:
                    log.warning("%s; the entries go when the lease expires", exc)
        with self._watch_lock:
            watches = list(self._watches)
        for watch in watches:
            watch.cancel()


EntryReader = Callable[[str, bytes], "str | None"]
"""`read(key, value)` -> the entry's address, or None for an entry to skip."""


def read_range(reply: Any, read: EntryReader) -> tuple[dict[str, str], int]:
    """A decoded ``/kv/range`` reply -> ({key: address} of the readable entries, the
    store's revision); EtcdError if it is not a range reply at all."""
    try:
        revision = int(reply["header"]["revision"])
        raw = [
            (_unb64(kv["key"]).decode(), _unb64(kv.get("value", ""))) for kv in reply.get("kvs", [])
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EtcdError(f"malformed range reply ({type(exc).__name__}: {exc})") from exc
    found = {}
    for key, value in raw:
        address = read(key, value)
        if address is not None:
            found[key] = address
    return found, revision


class WatchState:
    """The sans-IO half of a watch: the entries of one range, kept current by the watch
    messages fed to it (no sockets, threads or clocks; tested on its own).

    `entries` is None until `reset` with a range read (and again after etcd compacted
    the revision to resume from); `start_revision` is where a watch stream must begin.
    `feed(line)` applies one line of the stream and says what it was:
      "created"   the watch is running
      "progress"  nothing changed up to a later revision
      "events"    entries were put or deleted (`endpoints()` may have changed)
      "resync"    etcd compacted the revision to resume from: read the range again
    A line that is not a watch response, an error, or a cancel for another reason
    raises EtcdError (the stream is then opened anew). An event that cannot be read is
    skipped and counted by `read` like a malformed value, so that one bad entry never
    stalls the watch.
    """

    def __init__(self, read: EntryReader) -> None:
        self._read = read
        self.entries: dict[str, str] | None = None
        self.revision = 0
        """The last revision whose changes `entries` reflects."""

    def reset(self, entries: dict[str, str], revision: int) -> None:
        self.entries, self.revision = dict(entries), revision

    @property
    def start_revision(self) -> int:
        return self.revision + 1

    def endpoints(self) -> list[str]:
        return sorted(set((self.entries or {}).values()))

    def feed(self, line: bytes) -> str:
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise EtcdError(f"the watch sent a line that is not JSON: {line[:200]!r}") from exc
        result = message.get("result") if isinstance(message, dict) else None
        if not isinstance(result, dict):
            raise EtcdError(f"the watch sent {str(message)[:200]}")
        if result.get("created"):
            return "created"
        if result.get("canceled"):
            if _int(result.get("compact_revision")):
                self.entries = None
                return "resync"
            raise EtcdError(f"etcd canceled the watch: {result.get('cancel_reason', '')}")
        events = result.get("events") or []
        if not isinstance(events, list):
            raise EtcdError(f"the watch sent events that are not a list: {str(events)[:200]}")
        if not events:
            header = result.get("header")
            revision = _int(header.get("revision")) if isinstance(header, dict) else 0
            self.revision = max(self.revision, revision)
            return "progress"
        if self.entries is None:
            raise EtcdError("the watch sent events before the range was read")
        for event in events:
            self._apply(event)
        return "events"

    def _apply(self, event: Any) -> None:
        assert self.entries is not None
        try:
            kv = event["kv"]
            key = _unb64(kv["key"]).decode()
            # Not the header's revision: a watch catching up gets its events in
            # batches, each headed by the store's revision, later than the batch's end.
            revision = int(kv["mod_revision"])
            deleted = event.get("type", "PUT") == "DELETE"
            value = b"" if deleted else _unb64(kv.get("value", ""))
        except (KeyError, TypeError, ValueError, AttributeError):
            self._read(f"(unreadable event {str(event)[:100]})", b"")  # counted, skipped
            return
        if deleted:
            self.entries.pop(key, None)
        else:
            address = self._read(key, value)
            if address is None:
                self.entries.pop(key, None)
            else:
                self.entries[key] = address
        self.revision = max(self.revision, revision)


def _int(value: Any) -> int:
    """etcd's JSON gateway writes 64-bit integers as strings, and leaves zeros out."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _probe_when_quiet(sock: socket.socket) -> None:
    sock.settimeout(_WATCH_IDLE)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE.items():
        option = getattr(socket, name, None)  # Linux names; other systems keep their defaults
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class _Watch:
    """One watched service: its thread, its stream, and its `WatchState`."""

    def __init__(self, registry: EtcdRegistry, service: str, callback: Subscriber) -> None:
        self._registry = registry
        self._service = service
        self._prefix = registry.service_prefix(service)
        self._callback = callback
        self.state = WatchState(registry._address_of)
        self._delivered: list[str] | None = None
        self._failures = 0
        self._stop = threading.Event()
        self._conn_lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"gopherpipe-etcd-watch-{service}", daemon=True
        )

    def start(self, read_first: bool = True) -> None:
        if read_first:
            try:
                self._read_range()
            except EtcdError as exc:
                log.warning("%s; watching %s in the background", exc, self._service)
        self._thread.start()

    def cancel(self) -> None:
        self._stop.set()
        with self._conn_lock:
            sock = self._conn.sock if self._conn is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed by its reader
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the reader; close() would not
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._registry.timeout + 1)
        self._registry._forget(self)

    def _read_range(self) -> None:
        self.state.reset(*self._registry._range(self._prefix))
        self._deliver()

    def _deliver(self) -> None:
        endpoints = self.state.endpoints()
        if endpoints == self._delivered or self._stop.is_set():
            return
        self._delivered = endpoints
        try:
            self._callback(list(endpoints))
        except Exception:
            self._registry._count("callback_errors")
            log.exception("a watch callback for %s failed", self._service)

    def _run(self) -> None:
        url = self._registry.url
        while not self._stop.is_set():
            try:
                if self.state.entries is None:
                    self._read_range()
                self._stream()
            except TimeoutError:
                log.info("etcd at %s: the watch of %s timed out; reopening", url, self._service)
            except Exception as exc:  # any failure reopens the watch; none ends it
                if self._stop.is_set():
                    return
                log.warning(
                    "etcd at %s: the watch of %s broke (%s: %s); reopening",
                    url,
                    self._service,
                    type(exc).__name__,
                    exc,
                )
            if self._stop.is_set():
                return
            self._registry._count("watch_reconnects")
            self._failures += 1
            delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** min(self._failures - 1, 16))
            self._stop.wait(delay * random.uniform(0.5, 1.0))

    def _stream(self) -> None:
        """Read one watch stream until it ends, fails, or asks for a resync."""
        path = self._registry._watch_path()
        conn = self._registry._watch_connection()
        with self._conn_lock:
            if self._stop.is_set():
                return
            self._conn = conn
        try:
            body = {
                "create_request": {
                    "key": _b64(self._prefix),
                    "range_end": _b64(_range_end(self._prefix)),
                    "start_revision": self.state.start_revision,
                    "progress_notify": True,
                }
            }
            conn.request(
                "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            if response.status != 200:
                raise EtcdError(f"watch answered HTTP {response.status}: {response.read(512)!r}")
            if conn.sock is not None:
                _probe_when_quiet(conn.sock)
            while not self._stop.is_set():
                line = response.readline(_MAX_WATCH_MESSAGE + 1)
                if not line:
                    return
                if len(line) > _MAX_WATCH_MESSAGE:
                    raise EtcdError(f"a watch message longer than {_MAX_WATCH_MESSAGE} bytes")
                if not line.strip():
                    continue
                what = self.state.feed(line)
                if what == "created":
                    self._failures = 0
                elif what == "events":
                    self._deliver()
                elif what == "resync":
                    self._registry._count("watch_resyncs")
                    return
        finally:
            with self._conn_lock:
                self._conn = None
            conn.close()


class EtcdResolver(Resolver):
    """The servers of one service in an etcd registry, kept current by a watch."""

    def __init__(self, registry: EtcdRegistry, service: str, *, own_registry: bool = False) -> None:
        self._registry = registry
        self._own_registry = own_registry
        self._watched = WatchedEndpoints()
        self._cancel = registry.watch(service, self._watched.update)

    def endpoints(self) -> list[str]:
        return self._watched.current()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        return self._watched.subscribe(callback)

    def close(self) -> None:
        self._cancel()
        if self._own_registry:
            self._registry.close()


def parse_etcd_address(text: str) -> tuple[str, str, str]:
    """``etcd://HOST:PORT[/prefix/...]/Service`` -> (etcd URL, prefix, service)."""
    example = "etcd://127.0.0.1:2379/Echo"
    scheme, sep, rest = text.partition("://")
    if scheme != "etcd" or not sep:
        raise ValueError(f"{text!r} is not an etcd address: {example}")
    host_port, slash, path = rest.partition("/")
    if not slash or not path:
        raise ValueError(f"etcd address {text!r} needs host, port and service: {example}")
    try:
        parse_address(f"tcp://{host_port}")
    except ValueError as exc:
        raise ValueError(f"etcd address {text!r} needs host and port: {example}") from exc
    if any(c in path for c in "?#"):
        raise ValueError(f"etcd address {text!r}: a service name has no '?' or '#'")
    *folders, service = path.split("/")
    if not service or any(not folder for folder in folders):
        raise ValueError(
            f"etcd address {text!r} must end with a service name, after an optional "
            "prefix: etcd://127.0.0.1:2379/Echo or etcd://127.0.0.1:2379/my/prefix/Echo"
        )
    prefix = "/" + "".join(f"{folder}/" for folder in folders) if folders else DEFAULT_PREFIX
    return f"http://{host_port}", prefix, service


def resolver_for_address(address: str, options: Mapping[str, Any]) -> Resolver:
    """resolver.py's factory for ``etcd://``: a started `EtcdResolver` that owns its
    registry (closing the resolver closes it). `options` are not used."""
    url, prefix, service = parse_etcd_address(address)
    return EtcdResolver(EtcdRegistry(url, prefix=prefix), service, own_registry=True)

"""Contracts written the way a new user would (tests/contracts/, one folder per domain):
each generates with `gopherpipe gen`, the stubs and implementations pass one
`mypy --strict` run, and every method round-trips through a real Server over a Unix
socket, on both codecs, with value and type checked all the way down (streams too)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from gopherpipe_runtime import Chan, Server

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = Path(__file__).parent / "contracts"
# Package name -> its contract module (dotted, from the copied contracts' root); ledger
# is a plain folder (its contract says `from models import ...`), imported with that
# folder on sys.path.
PACKAGES = {
    "accounts": "accounts",
    "orders": "orders",
    "uploads": "uploads",
    "scheduler": "scheduler",
    "kvstore": "kvstore",
    "geo": "geo",
    "search": "search",
    "metrics": "metrics",
    "notifications": "notifications",
    "inference": "inference",
    "shop": "shop.cart",
}
FLAT = ("service", "models", "impl", "service_client", "service_server")
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The contracts copied to a temporary folder, with stubs from `gopherpipe gen`."""
    root = tmp_path_factory.mktemp("user_contracts")
    shutil.copytree(
        CONTRACTS,
        root,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(
            "__pycache__", "README.md", "*_client.py", "*_server.py", "*_aio.py"
        ),
    )
    contracts = sorted(str(p) for p in root.rglob("service.py"))
    assert len(contracts) == len(PACKAGES) + 1
    gopherpipe = Path(sys.executable).parent / "gopherpipe"
    # With the asyncio stubs, so the mypy run below checks them over every contract too.
    subprocess.run(
        [str(gopherpipe), "gen", "--asyncio", *contracts], check=True, capture_output=True
    )
    return root


def test_every_contract_generates(generated: Path) -> None:
    for contract in generated.rglob("service.py"):
        assert (contract.parent / "service_client.py").exists()
        assert (contract.parent / "service_server.py").exists()
        assert (contract.parent / "service_aio.py").exists()


def test_stubs_and_implementations_pass_mypy_strict(generated: Path) -> None:
    # One run for all: the packages have distinct names, and ledger's flat modules
    # (service, models) are the only top-level ones, found through MYPYPATH.
    files = sorted(str(p.relative_to(generated)) for p in generated.rglob("*.py"))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(generated / ".mypy"),
         *files],
        cwd=generated,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MYPYPATH": str(generated / "ledger")},
        capture_output=True,
        text=True,
        timeout=110,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert sum(f.endswith("_client.py") for f in files) == len(PACKAGES) + 1
    assert sum(f.endswith("_aio.py") for f in files) == len(PACKAGES) + 1


@pytest.fixture(scope="module")
def api(generated: Path) -> Iterator[SimpleNamespace]:
    """Every contract's modules: `api.geo.service`, `api.geo.client`, `api.geo.impl`..."""
    paths = [str(generated), str(generated / "ledger")]
    # Other tests may have imported modules of the ledger's flat names (tests/e2e/impl.py):
    # set them aside while these are imported, and put them back after.
    shadowed = {name: sys.modules.pop(name) for name in FLAT if name in sys.modules}
    before = set(sys.modules)
    sys.path[:0] = paths
    try:
        found = SimpleNamespace()
        for name, dotted in [*PACKAGES.items(), ("ledger", "")]:
            prefix = f"{dotted}." if dotted else ""
            setattr(
                found,
                name,
                SimpleNamespace(
                    **{
                        part: importlib.import_module(prefix + module)
                        for part, module in [
                            ("service", "service"),
                            ("client", "service_client"),
                            ("server", "service_server"),
                            ("impl", "impl"),
                        ]
                    }
                ),
            )
        found.ledger.models = importlib.import_module("models")
        found.orders.models = importlib.import_module("orders.models")
        found.inference.types = importlib.import_module("inference.types")
        found.shop.common = importlib.import_module("shop.common")
        yield found
    finally:
        for path in paths:
            sys.path.remove(path)
        for module in set(sys.modules) - before:
            del sys.modules[module]
        sys.modules.update(shadowed)


@pytest.fixture(params=["msgpack", "json"])
def codec(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Tracked:
    """A client whose method calls are noted, to check every method was called."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.called: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self.called.add(name)
        return getattr(self.client, name)


@pytest.fixture
def serve(
    tmp_path_factory: pytest.TempPathFactory, codec: str
) -> Iterator[Callable[[SimpleNamespace, str, Any], Tracked]]:
    """`serve(domain, "Service", impl)`: a real Server for `impl` over a Unix socket, and
    a client for it speaking `codec`; afterwards, checks every method was called."""
    with contextlib.ExitStack() as stack:
        checks: list[tuple[Tracked, type]] = []

        def start(domain: SimpleNamespace, name: str, impl: Any) -> Tracked:
            folder = tmp_path_factory.mktemp("sock")
            server = Server(f"unix://{folder}/s.sock", max_workers=8)
            register = next(
                getattr(domain.server, f) for f in dir(domain.server) if f.startswith("register_")
            )
            register(server, impl)
            server.start()
            stack.callback(server.stop, 0.5)
            client = getattr(domain.client, f"{name}Client").dial(server.addresses[0], codec=codec)
            stack.enter_context(client)
            tracked = Tracked(client)
            checks.append((tracked, getattr(domain.service, name)))
            return tracked

        yield start
        for tracked, abc in checks:
            assert tracked.client.pipe.codec == codec
            assert tracked.called == set(abc.__abstractmethods__), "untested methods"


def exact(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down; times keep their offsets, Decimals
    their digits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dt.datetime | dt.time):
        return a.isoformat() == b.isoformat() and a.tzinfo == b.tzinfo
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, set | frozenset):
        return a == b and {type(x) for x in a} == {type(x) for x in b}
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(
            exact(a[k], b[k]) and type(next(x for x in a if x == k)) is type(k) for k in b
        )
    if hasattr(a, "__dataclass_fields__"):
        return all(exact(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return bool(a == b)


def check(got: Any, expected: Any) -> None:
    assert exact(got, expected), f"{got!r} != {expected!r}"


# -- one test per contract ----------------------------------------------------------------


def test_accounts(api: SimpleNamespace, serve: Any) -> None:
    s = api.accounts.service
    client = serve(api.accounts, "Accounts", api.accounts.impl.AccountsImpl())
    signed = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)
    ada = client.sign_up("ada@example.org", "Ada")
    ada_id = uuid.uuid5(uuid.NAMESPACE_URL, "mailto:ada@example.org")
    check(ada, s.User(ada_id, "ada@example.org", s.Profile("Ada"), s.Role.MEMBER, signed,
                      frozenset({"new"})))  # fmt: skip
    bob = client.sign_up("bob@example.org", "Bob", s.Role.ADMIN)
    check(client.get_user(bob.id), bob)
    check(client.get_user(uuid.UUID(int=0)), None)
    check(client.find_by_email(["bob@example.org", "eve@example.org"]), {"bob@example.org": bob.id})
    profile = s.Profile("Ada L.", "Countess ✓", bytes(range(256)))
    check(client.update_profile(ada_id, profile).profile, profile)
    check(client.set_roles({ada_id: s.Role.VIEWER, bob.id: s.Role.MEMBER}), 2)
    check(client.deactivate(ada_id, "spam"), True)
    check(client.deactivate(ada_id), False)
    users = client.list_users()
    check([u.role for u in users], [s.Role.VIEWER, s.Role.MEMBER])
    check([u.active for u in users], [False, True])
    check(client.list_users(s.Role.MEMBER, 1), [users[1]])


def test_orders(api: SimpleNamespace, serve: Any) -> None:
    m = api.orders.models
    client = serve(api.orders, "OrderService", api.orders.impl.OrderServiceImpl())
    tea = m.LineItem("TEA-01", 3, m.Money(Decimal("4.50"), "USD"))
    mug = m.LineItem("MUG-02", 1, m.Money(Decimal("12.990"), "USD"))
    order = client.place_order(m.CustomerId(77), (tea, mug), "USD")  # a tuple as a Sequence
    placed = dt.datetime(2024, 12, 24, 18, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    check(order, m.Order(1000, m.CustomerId(77), [tea, mug], m.OrderStatus.PENDING, placed))
    check(client.total(1000), m.Money(Decimal("26.490"), "USD"))
    check(client.set_status(1000, m.OrderStatus.PAID), m.OrderStatus.PENDING)
    check(client.refund(1000, m.Money(Decimal("0.49"), "USD"), "damaged mug"), Decimal("26.000"))
    check(client.orders_by_status(m.OrderStatus.PAID), {1000: m.Money(Decimal("26.490"), "USD")})
    check(client.orders_by_status(m.OrderStatus.SHIPPED), {})
    converted = client.convert([Decimal("10"), Decimal("-0.005"), Decimal("1E+3")],
                               Decimal("0.9235"), "JPY")  # fmt: skip
    check(converted, (m.Money(Decimal("9.24"), "JPY"), m.Money(Decimal("-0.00"), "JPY"),
                      m.Money(Decimal("923.50"), "JPY")))  # fmt: skip


def test_uploads(api: SimpleNamespace, serve: Any) -> None:
    client = serve(api.uploads, "FileStore", api.uploads.impl.FileStoreImpl())
    data = bytes(range(256)) * 700  # 179,200 bytes
    chunks = (data[i : i + 50_000] for i in range(0, len(data), 50_000))
    stored = client.upload("photo.jpg", chunks, "image/jpeg")
    file_id = uuid.uuid5(uuid.NAMESPACE_OID, "photo.jpg")
    expected = api.uploads.service.StoredFile(
        file_id, "photo.jpg", len(data), hashlib.sha256(data).digest(), "image/jpeg",
        dt.datetime(2024, 6, 1, 12, 0, 0, 123456),
    )  # fmt: skip
    check(stored, expected)
    check(client.stat(file_id), expected)
    pieces = list(client.download(file_id, 65_536))
    check([len(p) for p in pieces], [65_536, 65_536, 48_128])
    check(b"".join(pieces), data)
    assert all(type(p) is bytes for p in pieces)
    empty = client.upload("empty.txt", [])
    check((empty.size, empty.content_type), (0, "application/octet-stream"))
    check(list(client.download(empty.file_id)), [])
    check(client.delete([file_id, uuid.UUID(int=1)]), [file_id])
    check(client.stat(file_id), None)


def test_scheduler(api: SimpleNamespace, serve: Any) -> None:
    s = api.scheduler.service
    client = serve(api.scheduler, "Scheduler", api.scheduler.impl.SchedulerImpl())
    nightly_at = dt.datetime(2024, 5, 1, 2, 0, tzinfo=IST)
    nightly = client.submit("backup", nightly_at, dt.timedelta(days=1))
    check(nightly, s.Job(s.JobId(1), "backup", nightly_at, dt.timedelta(days=1), s.Priority.NORMAL))
    once = client.submit(
        "report", dt.datetime(2024, 5, 1, 9, tzinfo=dt.UTC), None, s.Priority.URGENT
    )
    check((once.priority, once.priority.value, once.every), (s.Priority.URGENT, 10, None))
    later = client.postpone(s.JobId(1), dt.timedelta(hours=-1, microseconds=5))
    check(later, nightly_at + dt.timedelta(hours=-1, microseconds=5))
    noon = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    check([j.name for j in client.due(noon)], ["backup", "report"])
    check(client.due(noon, s.Priority.HIGH), [once])
    retry = s.RetryPolicy(5, dt.timedelta(seconds=10))
    check(client.set_retry(s.JobId(2), retry).retry, retry)
    check(client.cancel({s.JobId(1), s.JobId(99)}), {1})
    days = [dt.date(2024, 6, 2), dt.date(2024, 6, 3), dt.date(2024, 6, 9)]
    windows = client.maintenance_windows(days)
    check(windows, [s.Window(d, dt.time(2), dt.time(4, 30)) for d in (days[0], days[2])])


def test_kvstore(api: SimpleNamespace, serve: Any) -> None:
    Entry = api.kvstore.service.Entry
    client = serve(api.kvstore, "KeyValue", api.kvstore.impl.KeyValueImpl())
    check(client.get(b"user:1"), None)
    check(client.set(b"user:1", b'{"name": "Ada"}'), 1)
    check(client.set(b"user:1", b"\x00\xff binary", 3600), 2)
    check(client.get(b"user:1"), b"\x00\xff binary")
    check(client.set_many(MappingProxyType({b"user:2": b"Bob", b"cfg": b""})), 2)
    check(client.get_many((b"user:1", b"nope")), {b"user:1": b"\x00\xff binary", b"nope": None})
    check(client.compare_and_set(b"user:2", 0, b"x"), (False, 1))
    check(client.compare_and_set(b"user:2", 1, b"Bobby"), (True, 2))
    entries = list(client.scan(b"user:"))
    check(entries, [Entry(b"user:1", b"\x00\xff binary", 2), Entry(b"user:2", b"Bobby", 2)])
    check(list(client.scan(limit=1)), [Entry(b"cfg", b"", 1)])
    check(client.delete(b"cfg"), True)
    check(client.delete(b"cfg"), False)


def test_geo(api: SimpleNamespace, serve: Any) -> None:
    s = api.geo.service
    client = serve(api.geo, "Geo", api.geo.impl.GeoImpl())
    vienna, stephansplatz = (48.2082, 16.3738), (48.2085, 16.3721)
    km = client.distance_km(vienna, stephansplatz)
    assert type(km) is float and 0.1 < km < 0.2
    check(client.distance_km((0, 0), (0, 0)), 0.0)  # ints where floats go
    cafe = s.Place("Café Sacher", (48.2039, 16.3694), s.PlaceKind.CAFE, 171.5)
    park = s.Place("Stadtpark", (48.2046, 16.3797), s.PlaceKind.PARK)
    check(client.nearby(vienna), [cafe, park])
    check(client.nearby(vienna, 0.8, frozenset({s.PlaceKind.PARK})), [park])
    check(client.route([(0.0, 0.0), (1.0, 2.0)]), [(0.0, 0.0), (0.5, 1.0), (1.0, 2.0)])
    check(client.route(()), [])
    check(client.geocode("stadtpark"), park)
    check(client.geocode("Atlantis"), None)
    check(client.bounds([cafe, park]), s.BoundingBox((48.2039, 16.3694), (48.2046, 16.3797)))


def test_search(api: SimpleNamespace, serve: Any) -> None:
    s = api.search.service
    client = serve(api.search, "Search", api.search.impl.SearchImpl())
    page = client.articles("engine", "newest", 1)
    grace, ada = s.Author("grace", "Grace Hopper"), s.Author("ada", "Ada Lovelace")
    cobol = s.Article("cobol", "COBOL for Engines", grace, dt.date(1959, 12, 17), 1.5, ["engine"])
    check(page, s.Page([cobol], "1", 2))
    rest = client.articles("engine", "newest", 1, page.next_cursor)
    check(rest.items[0].author, ada)
    check((rest.next_cursor, rest.items[0].published), (None, dt.date(1843, 9, 1)))
    check(client.authors("gr"), s.Page([grace], None, 1))
    check(client.authors("zz"), s.Page([], None, 0))
    check(client.counts_by_year("e"), s.Page([(1843, 1), (1952, 1), (1959, 1)], None, 3))
    check(client.facets("engine", ["author", "year"]), {"author": {"ada": 1, "grace": 1}})


def test_metrics(api: SimpleNamespace, serve: Any) -> None:
    s = api.metrics.service
    client = serve(api.metrics, "Metrics", api.metrics.impl.MetricsImpl())
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    samples = [
        s.Sample("http_requests_total", float(i), t0 + dt.timedelta(seconds=15 * i),
                 {"service": "api", "region": "eu-west-1", "instance": f"i-{i}"})
        for i in range(3)
    ] + [s.Sample("request_seconds", 0.125, t0, {"service": "api", "region": "us-east-1"})]  # fmt: skip
    check(client.record(samples), 4)
    info = client.describe("http_requests_total")
    check(info, s.MetricInfo("http_requests_total", s.MetricKind.COUNTER, "1",
                             frozenset({"service", "region"})))  # fmt: skip
    watched = list(client.watch(frozenset({"request_seconds", "cpu"}), dt.timedelta(seconds=5)))
    check(watched, [samples[3]])
    assert "instance" not in watched[0].labels
    check(client.series("http_requests_total", t0, t0 + dt.timedelta(seconds=30)),
          [(samples[0].at, 0.0), (samples[1].at, 1.0)])  # fmt: skip


def test_notifications(api: SimpleNamespace, serve: Any) -> None:
    s = api.notifications.service
    client = serve(api.notifications, "Notifications", api.notifications.impl.NotificationsImpl())
    hello = s.Notification(uuid.uuid4(), "ada", s.Channel.PUSH, "Hello", "Welcome aboard ✓")
    check(client.send(hello), hello.id)
    made = client.broadcast(["ada", "bob"], "Maintenance", {s.Channel.EMAIL, s.Channel.SMS})
    check([(n.recipient, n.channel) for n in made],
          [("ada", s.Channel.EMAIL), ("ada", s.Channel.SMS), ("bob", s.Channel.EMAIL),
           ("bob", s.Channel.SMS)])  # fmt: skip
    check(made[0].sent_at, dt.datetime(2024, 2, 29, 23, 59, 59, 999999))
    check(client.preferences("ada"),
          {s.Channel.EMAIL: True, s.Channel.SMS: False, s.Channel.PUSH: True})  # fmt: skip
    # Bidi: each notification received is acknowledged before the next one comes.
    acks: Chan[Any] = Chan(4)
    received = []
    for notification in client.inbox("ada", acks):
        received.append(notification)
        acks.send(s.Ack(notification.id, notification.channel != s.Channel.SMS))
    acks.close()
    check(received, [hello, made[0], made[1]])


def test_inference(api: SimpleNamespace, serve: Any) -> None:
    t = api.inference.types
    client = serve(api.inference, "Inference", api.inference.impl.InferenceImpl())
    model = client.load_model("sentiment", 3, t.Device.GPU)
    check(model, "sentiment@3")  # a NewType of str arrives as a str
    check(client.load_model("spam"), "spam@1")
    check(client.models(), [t.ModelInfo(t.ModelId("sentiment@3"), "sentiment", 3, 3, t.Device.GPU),
                            t.ModelInfo(t.ModelId("spam@1"), "spam", 1, 3)])  # fmt: skip
    positive = t.Prediction("positive", {"negative": 0.25, "positive": 0.75}, 1.5)
    neutral = t.Prediction("negative", {"negative": 0.5, "positive": 0.5}, 1.5)
    result = client.predict(model, [[0.5, -1e-9, 2.0], [-1.0, 0.0, 0.0], []])
    finished = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone(-dt.timedelta(hours=8)))
    check(result, t.BatchResult(model, [positive, neutral, neutral], finished))
    check(client.embed(model, ("hi there", "")), [[8.0, 1.0, -0.5], [0.0, 0.0, -0.5]])
    rows = ([float(i), 1.0, -2.0] for i in range(5))
    check(
        list(client.predict_stream(model, rows)), [neutral, neutral, positive, positive, positive]
    )


def test_shop_cart(api: SimpleNamespace, serve: Any) -> None:
    s, c = api.shop.service, api.shop.common
    client = serve(api.shop, "CartService", api.shop.impl.CartServiceImpl())
    tea, mug = c.Sku("TEA-01"), c.Sku("MUG-02")
    client.add("c1", tea, 2)
    cart = client.add("c1", mug)
    check(cart, s.Cart("c1", [s.CartLine(tea, 2, c.Price(Decimal("4.50"))),
                              s.CartLine(mug, 1, c.Price(Decimal("12.00")))]))  # fmt: skip
    check(client.apply_coupon("c1", "WELCOME5"), c.Price(Decimal("-5.00")))
    check(client.apply_coupon("c1", None), None)
    check(client.quote("c1", "express"), (c.Price(Decimal("21.00")), c.Price(Decimal("9.90"))))
    check(client.remove("c1", tea), s.Cart("c1", [s.CartLine(mug, 1, c.Price(Decimal("12.00")))]))
    check(client.quote("c1"), (c.Price(Decimal("12.00")), c.Price(Decimal("4.90"))))


def test_ledger(api: SimpleNamespace, serve: Any) -> None:
    m = api.ledger.models
    client = serve(api.ledger, "Ledger", api.ledger.impl.LedgerImpl())
    check(client.open_account("1000", "Cash", m.AccountType.ASSET),
          m.Account("1000", "Cash", m.AccountType.ASSET))  # fmt: skip
    client.open_account("4000", "Sales", m.AccountType.INCOME)
    day = dt.date(2024, 12, 31)
    # kw_only fields (Posting.note, all of ReversalEntry) are decoded by keyword.
    sale = [
        m.Posting("1000", Decimal("119.00"), note="till"),
        m.Posting("4000", Decimal("-119.00")),
    ]
    check(client.post(day, "invoice 17", sale), m.JournalEntry(1, day, "invoice 17", sale))
    reversal = client.reverse(1, dt.date(2025, 1, 2))
    check(reversal, m.ReversalEntry(2, dt.date(2025, 1, 2), "reversal",
                                    [m.Posting("1000", Decimal("-119.00"), note="reverses till"),
                                     m.Posting("4000", Decimal("119.00"), note="reverses ")],
                                    reverses=1))  # fmt: skip
    check(client.balances(day), {"1000": Decimal("119.00"), "4000": Decimal("-119.00")})
    check(client.balances(dt.date(2025, 1, 2)), {"1000": Decimal("0.00"), "4000": Decimal("0.00")})
    check(client.trial_balance(day), (Decimal("119.00"), Decimal("119.00")))

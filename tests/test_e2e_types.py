"""End to end over real sockets, both codecs: the contract types beyond the scalars come
back as exactly what was sent, value and type (the server is its own process)."""

from __future__ import annotations

import datetime
import importlib
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import pytest
from e2e_harness import ServerProcess, generate_stubs

from gopherpipe_runtime import InvalidArgumentError

CONTRACTS = ("e2e_alltypes.py", "e2e_moretypes.py")
IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_stubs(tmp_path_factory.mktemp("e2e_types"), *CONTRACTS)


@pytest.fixture(scope="module")
def api(stub_dir: Path) -> Iterator[tuple[ModuleType, ModuleType]]:
    sys.path.insert(0, str(stub_dir))
    try:
        yield (
            importlib.import_module("e2e_moretypes"),
            importlib.import_module("e2e_moretypes_client"),
        )
    finally:
        sys.path.remove(str(stub_dir))


@pytest.fixture(scope="module")
def server(stub_dir: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(stub_dir, "tcp://127.0.0.1:0")
    yield process
    process.stop()


@pytest.fixture(params=["msgpack", "json"])
def client(request: pytest.FixtureRequest, api: Any, server: ServerProcess) -> Iterator[Any]:
    _, stubs = api
    with stubs.MoreTypesClient.dial(server.address, codec=request.param) as client:
        yield client
        assert client.pipe.codec == request.param  # the connection spoke the codec asked for


def exact(a: Any, b: Any) -> bool:
    """Equal, of the same type, and for times and Decimals the same offset and digits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, datetime.datetime | datetime.time):
        return a.isoformat() == b.isoformat() and a.tzinfo == b.tzinfo
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(exact(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return all(exact(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return bool(a == b)


def test_stdlib_types_round_trip(api: Any, client: Any) -> None:
    contract, _ = api
    value = contract.Dated(
        when=datetime.datetime(2024, 2, 29, 23, 59, 59, 999999),
        day=datetime.date(1, 1, 1),
        clock=datetime.time(7, 30, 0, 5, tzinfo=IST),
        span=datetime.timedelta(days=-3, microseconds=7),
        amount=Decimal("19.990"),
        id=uuid.UUID("0190f5c4-7b1e-7a2b-9c3d-4e5f60718293"),
        by_day={datetime.date(2024, 1, 1): Decimal("-0.10"), datetime.date.max: Decimal("1E+9")},
        spans={datetime.timedelta(0): "zero", -datetime.timedelta(microseconds=1): "tick"},
        later=datetime.datetime(2024, 3, 1, 8, tzinfo=IST),
    )
    echoed = client.echo_dated(value)
    assert exact(echoed, value)
    assert echoed.later.utcoffset() == datetime.timedelta(hours=5, minutes=30)
    assert echoed.when.tzinfo is None
    assert str(echoed.amount) == "19.990"


def test_naive_and_aware_datetimes_keep_their_kind(client: Any) -> None:
    naive = datetime.datetime(2024, 1, 1, 12, 0, 0, 1)
    assert exact(client.echo_when(naive), naive)
    utc = datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.UTC)
    back = client.echo_when(utc)
    assert exact(back, utc) and back.utcoffset() == datetime.timedelta(0)


def test_decimals_keep_their_digits_and_special_values(client: Any) -> None:
    amounts = [Decimal(s) for s in ("19.990", "0E-7", "-0", "NaN", "-Infinity", "1" * 60)]
    echoed = client.echo_amounts(amounts)
    assert [str(a) for a in echoed] == [str(a) for a in amounts]
    assert all(type(a) is Decimal for a in echoed)


def test_literals_round_trip_and_are_checked(api: Any, client: Any) -> None:
    contract, _ = api
    ticket = contract.Ticket("sell", 100, {"a": True, "b": "maybe"})
    echoed = client.echo_ticket(ticket)
    assert exact(echoed, ticket) and echoed.flags["a"] is True
    with pytest.raises(InvalidArgumentError, match=r"'value'\.lots: 5 is not a valid"):
        client.echo_ticket(contract.Ticket("buy", 5, {}))


def test_abstract_collections_come_back_as_list_dict_frozenset(api: Any, client: Any) -> None:
    contract, _ = api
    shelf = contract.Shelf(("Dune", "Emma"), MappingProxyType({"D": (0,)}), frozenset({"sf"}))
    echoed = client.echo_shelf(shelf)
    assert exact(echoed, contract.Shelf(["Dune", "Emma"], {"D": [0]}, frozenset({"sf"})))
    assert type(echoed.genres) is frozenset
    assert exact(client.echo_sequence((1, 2.5)), [1.0, 2.5])


def test_aliases_and_newtypes_travel_as_their_underlying_types(api: Any, client: Any) -> None:
    contract, _ = api
    account = contract.Account(
        contract.UserId(42),
        {"EUR": contract.Money(Decimal("10.50")), "USD": contract.Money(Decimal("-0"))},
        frozenset({contract.UserId(1), contract.UserId(2)}),
    )
    echoed = client.echo_account(account)
    assert exact(echoed, account) and type(echoed.owner) is int
    assert str(echoed.balances["USD"]) == "-0"
    with pytest.raises(InvalidArgumentError, match=r"'value'\.balances key 'GBP'"):
        client.echo_account(contract.Account(contract.UserId(1), {"GBP": Decimal(1)}, frozenset()))


def test_ints_stop_at_64_bits_on_both_codecs(api: Any, client: Any) -> None:
    contract, _ = api
    edges = contract.Account(contract.UserId(2**64 - 1), {}, frozenset({contract.UserId(-(2**63))}))
    assert exact(client.echo_account(edges), edges)  # the bounds travel on either codec
    too_big = contract.Account(contract.UserId(1), {}, frozenset({contract.UserId(2**64)}))
    with pytest.raises(InvalidArgumentError, match=r"'value'\.friends\[0\]: int out of the 64-bit"):
        client.echo_account(too_big)  # refused alike, though JSON could carry it


def test_auto_enum_members_travel_as_their_resolved_values(api: Any, client: Any) -> None:
    contract, _ = api
    stages = {contract.Stage.REVIEW: [contract.Code.CREATED, contract.Code.OK]}
    echoed, scope = client.echo_stages(stages, contract.Scope.WRITE_ALL)
    assert exact(echoed, stages) and scope is contract.Scope.WRITE_ALL
    assert [contract.Stage.REVIEW.value, contract.Code.CREATED.value] == [2, 201]
    assert client.echo_stages({})[1] is contract.Scope.READ


def test_named_tuples_and_typed_dicts_round_trip(api: Any, client: Any) -> None:
    contract, _ = api
    booking = {"guest": "Ada", "span": contract.Span(datetime.date(2024, 5, 1)), "notes": []}
    guests = [{"name": "Ada", "vip": True}, {"name": "Bob"}]
    echoed, echoed_guests = client.echo_booking(booking, guests)
    assert exact(echoed, booking) and exact(echoed_guests, guests)
    assert type(echoed["span"]) is contract.Span and echoed["span"].days == 1
    assert exact(client.echo_booking({"guest": "x"}, [])[0], {"guest": "x"})
    with pytest.raises(InvalidArgumentError, match=r"'guests'\[0\]: Guest is missing the key"):
        client.echo_booking({"guest": "x"}, [{"vip": False}])


def test_generic_dataclasses_round_trip_with_their_arguments(api: Any, client: Any) -> None:
    contract, _ = api
    account = contract.Account(contract.UserId(1), {}, frozenset())
    accounts = contract.Page([account], "next")
    spans = contract.Page([contract.Span(datetime.date(2024, 1, 1), 3)])
    echoed_accounts, echoed_spans = client.echo_pages(accounts, spans)
    assert exact(echoed_accounts, accounts) and exact(echoed_spans, spans)
    assert type(echoed_spans.items[0]) is contract.Span
    with pytest.raises(InvalidArgumentError, match=r"'spans'\.items\[0\]: expected Span"):
        client.echo_pages(accounts, contract.Page([account]))


def test_defaults_that_are_the_contracts_constants_and_calls(api: Any, client: Any) -> None:
    contract, _ = api
    expected = (64 * 1024, datetime.timedelta(seconds=10), Decimal("19.990"), "EUR")
    assert exact(client.echo_defaults(), expected)
    assert exact(client.echo_defaults(5), (5, *expected[1:]))
    assert client.echo_defaults()[1] == contract.WAIT

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from etcd_server import EtcdServer, EtcdUnavailable, etcd_binary

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the expected files under tests/golden from the current generator",
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


def _copy_case(case: str, root: Path) -> Path:
    """Copy a golden case's hand-written files (not its expected stubs) to root/case."""
    target = root / case
    shutil.copytree(
        GOLDEN / case,
        target,
        ignore=lambda _folder, names: [
            n
            for n in names
            if n == "__pycache__" or n.endswith(("_client.py", "_server.py", "_aio.py"))
        ],
    )
    return target


@pytest.fixture(scope="session")
def copy_case() -> Callable[[str, Path], Path]:
    return _copy_case


@pytest.fixture(scope="session")
def etcd_bin() -> str:
    """The etcd binary (installed by scripts/ensure-etcd if missing); skips the test,
    saying why, only where etcd can be neither found nor installed."""
    pytest.importorskip("etcd3gw", reason="the etcd tests need etcd3gw: pip install -e '.[dev]'")
    try:
        return etcd_binary()
    except EtcdUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def etcd(etcd_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One real etcd server on free loopback ports, shared by the session's etcd tests."""
    server = EtcdServer(etcd_bin, tmp_path_factory.mktemp("etcd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()

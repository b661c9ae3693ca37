from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

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
            n for n in names if n == "__pycache__" or n.endswith(("_client.py", "_server.py"))
        ],
    )
    return target


@pytest.fixture(scope="session")
def copy_case() -> Callable[[str, Path], Path]:
    return _copy_case

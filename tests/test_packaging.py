"""A non-editable install works: the wheel carries the templates and py.typed, and
the installed `gopherpipe gen` generates stubs for a new contract in a temp folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CONTRACT = """
from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass
class Greeting:
    text: str
    shout: bool = False


class Greeter(ABC):
    @abstractmethod
    def greet(self, name: str, times: int = 1) -> list[Greeting]: ...
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel and installed (without deps) into a target dir."""
    build = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(build), str(ROOT)],
        check=True,
    )  # fmt: skip
    (wheel,) = build.glob("gopherpipe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gopherpipe_runtime/py.typed" in names
    assert any(n.startswith("gopherpipe_gen/templates/") for n in names)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    return target


def _run(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The installed copy comes first on the path, so neither the source tree nor an
    # editable install can stand in for it; dependencies come from this venv.
    env = {**os.environ, "PYTHONPATH": str(installed)}
    code = "import sys; from gopherpipe_gen.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, text=True, capture_output=True
    )


def test_installed_generator_writes_checks_and_detects_staleness(
    installed: Path, tmp_path: Path
) -> None:
    contract = tmp_path / "greeter.py"
    contract.write_text(CONTRACT)
    generated = _run(installed, tmp_path, "gen", "greeter.py")
    assert generated.returncode == 0, generated.stderr
    client = (tmp_path / "greeter_client.py").read_text()
    assert "class GreeterClient(Greeter" in client
    assert (tmp_path / "greeter_server.py").exists()

    assert _run(installed, tmp_path, "gen", "--check", "greeter.py").returncode == 0

    env = {**os.environ, "PYTHONPATH": f"{installed}{os.pathsep}{tmp_path}"}
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "greeter_client.py", "greeter_server.py"],
        cwd=tmp_path, env=env, text=True, capture_output=True,
    )  # fmt: skip
    assert mypy.returncode == 0, mypy.stdout

    contract.write_text(CONTRACT.replace("times: int = 1", "times: int = 2"))
    stale = _run(installed, tmp_path, "gen", "--check", "greeter.py")
    assert stale.returncode == 1
    assert "greeter_client.py" in stale.stdout + stale.stderr


def test_installed_generator_is_the_one_under_test(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    where = subprocess.run(
        [sys.executable, "-c", "import gopherpipe_gen; print(gopherpipe_gen.__file__)"],
        env=env, text=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    assert where.stdout.startswith(str(installed))

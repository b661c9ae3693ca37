"""`gopherpipe gen` over a project: [tool.gopherpipe] in pyproject.toml, folders and
globs as arguments, and the errors for each mistake (the CLI run as a subprocess, in
temporary projects, as a user runs it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_harness import E2E, ROOT, same_checkout_env

GOPHERPIPE = Path(sys.executable).parent / "gopherpipe"
CHAT = ROOT / "examples" / "chat" / "service.py"
STREAMS = E2E / "contract" / "e2e_streams.py"


def gen(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GOPHERPIPE), "gen", *args],
        cwd=cwd,
        env=same_checkout_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def project(root: Path, table: str | None) -> Path:
    """services/chat.py and services/e2e_streams.py (contracts), services/helpers.py
    (not one), and a pyproject.toml with `table` as its [tool.gopherpipe] body."""
    services = root / "services"
    services.mkdir(parents=True)
    shutil.copy(CHAT, services / "chat.py")
    shutil.copy(STREAMS, services / "e2e_streams.py")
    (services / "helpers.py").write_text("from abc import ABC\n\nLIMIT = 3\n")
    text = '[project]\nname = "demo"\n'
    if table is not None:
        text += f"\n[tool.gopherpipe]\n{table}\n"
    (root / "pyproject.toml").write_text(text)
    return root


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_no_arguments_generates_the_configured_contracts_into_out(tmp_path: Path) -> None:
    root = project(tmp_path / "demo", 'contracts = ["services/*.py"]\nout = "generated"')
    (root / "docs").mkdir()
    done = gen(root / "docs", ".")  # any folder inside the project: found upward
    assert done.returncode == 2  # "." is an argument: docs/ has no contract
    done = gen(root / "docs")
    assert done.returncode == 0, done.stderr
    assert names(root / "generated") == [
        "chat_client.py",
        "chat_server.py",
        "e2e_streams_client.py",
        "e2e_streams_server.py",
    ]
    assert names(root / "services") == ["chat.py", "e2e_streams.py", "helpers.py"]
    assert gen(root, "--check").returncode == 0
    # The stubs import the contract by its module name: they work with both folders
    # on the path.
    imported = subprocess.run(
        [sys.executable, "-c", "import chat_server, e2e_streams_client"],
        cwd=root,
        env={
            **same_checkout_env(),
            "PYTHONPATH": f"{root / 'services'}:{root / 'generated'}:{ROOT}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr

    chat = root / "services" / "chat.py"
    chat.write_text(chat.read_text().replace("limit: int = 50", "limit: int = 20"))
    stale = gen(root, "--check")
    assert stale.returncode == 1
    assert "chat_client.py: stale" in stale.stderr
    assert "e2e_streams" not in stale.stderr


def test_without_out_stubs_go_beside_the_contracts_and_are_not_contracts(
    tmp_path: Path,
) -> None:
    root = project(tmp_path, 'contracts = ["services/*.py"]')
    assert gen(root).returncode == 0
    assert gen(root).returncode == 0  # the glob now matches the stubs too: skipped
    assert names(root / "services") == [
        "chat.py",
        "chat_client.py",
        "chat_server.py",
        "e2e_streams.py",
        "e2e_streams_client.py",
        "e2e_streams_server.py",
        "helpers.py",
    ]
    assert gen(root, "--check").returncode == 0


def test_folder_and_glob_arguments(tmp_path: Path) -> None:
    root = project(tmp_path, None)
    done = gen(root, "services")
    assert done.returncode == 0, done.stderr
    assert "wrote services/chat_client.py" in done.stdout
    assert (root / "services" / "e2e_streams_server.py").exists()
    # A quoted glob (the shell leaves it to us), ** reaching into subfolders, and -o.
    (root / "services" / "more").mkdir()
    shutil.copy(CHAT, root / "services" / "more" / "rooms.py")
    done = gen(root, "services/**/r*.py", "-o", "out")
    assert done.returncode == 0, done.stderr
    assert names(root / "out") == ["rooms_client.py", "rooms_server.py"]


def test_option_out_wins_over_the_configured_one(tmp_path: Path) -> None:
    root = project(tmp_path, 'contracts = ["services/chat.py"]\nout = "generated"')
    assert gen(root, "-o", "elsewhere").returncode == 0
    assert names(root / "elsewhere") == ["chat_client.py", "chat_server.py"]
    assert not (root / "generated").exists()
    # Arguments use the configured out as well.
    assert gen(root, "services/e2e_streams.py").returncode == 0
    assert names(root / "generated") == ["e2e_streams_client.py", "e2e_streams_server.py"]


def test_the_nearest_pyproject_with_a_table_is_used(tmp_path: Path) -> None:
    root = project(tmp_path, 'contracts = ["services/chat.py"]')
    inner = root / "services" / "pkg"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[tool.black]\nline-length = 100\n")
    assert gen(inner).returncode == 0
    assert (root / "services" / "chat_client.py").exists()


def test_asyncio_in_the_table_adds_the_asyncio_stubs(tmp_path: Path) -> None:
    root = project(tmp_path / "demo", 'contracts = ["services/*.py"]\nasyncio = true')
    done = gen(root)
    assert done.returncode == 0, done.stderr
    assert names(root / "services") == [
        "chat.py",
        "chat_aio.py",
        "chat_client.py",
        "chat_server.py",
        "e2e_streams.py",
        "e2e_streams_aio.py",
        "e2e_streams_client.py",
        "e2e_streams_server.py",
        "helpers.py",
    ]
    # The asyncio stubs (class XAsync(ABC)) are not taken for contracts the next time.
    assert gen(root, "--check").returncode == 0
    # It applies to arguments too; --no-asyncio leaves the asyncio stub out (and alone).
    (root / "services" / "chat_aio.py").unlink()
    assert gen(root, "--check", "services/chat.py").returncode == 1
    assert gen(root, "--check", "--no-asyncio", "services/chat.py").returncode == 0
    assert gen(root, "--no-asyncio", "services/chat.py").returncode == 0
    assert not (root / "services" / "chat_aio.py").exists()


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('contract = ["services/*.py"]', "unknown key 'contract'; did you mean 'contracts'?"),
        ('contracts = "services/*.py"', "contracts must be a non-empty list"),
        ("contracts = []", "contracts must be a non-empty list"),
        ('contracts = ["services/*.py"]\nout = 3', "out must be a folder"),
        ('contracts = ["services/*.py"]\nasyncio = "yes"', "asyncio must be true or false"),
        ('contracts = ["nowhere/*.py"]', "'nowhere/*.py': the pattern matches nothing"),
        ('contracts = ["services/h*.py"]', "matches 1 files, none a contract"),
        ('contracts = ["services/gone.py"]', "no such file or folder"),
        ('contracts = ["."]', "no contract in folder"),
        (
            'contracts = ["services/chat.py", "other/chat.py"]\nout = "generated"',
            "would both write",
        ),
        ("contracts = [", "cannot read it"),
    ],
)
def test_configuration_errors_exit_2(tmp_path: Path, table: str, expected: str) -> None:
    root = project(tmp_path, table)
    (root / "other").mkdir()
    shutil.copy(CHAT, root / "other" / "chat.py")
    for args in ((), ("--check",)):
        done = gen(root, *args)
        assert done.returncode == 2, done
        assert expected in done.stderr
        assert str(root) in done.stderr  # the file (or the contracts) named
        assert "Traceback" not in done.stderr
    assert not (root / "generated").exists()
    assert not (root / "services" / "chat_client.py").exists()


def test_no_arguments_and_no_table_exits_2(tmp_path: Path) -> None:
    root = project(tmp_path, None)
    done = gen(root)
    assert done.returncode == 2
    assert "no contracts given, and no pyproject.toml with a [tool.gopherpipe] table" in (
        done.stderr
    )
    assert 'contracts = ["services/*.py"]' in done.stderr


def test_a_glob_argument_that_matches_nothing_exits_2(tmp_path: Path) -> None:
    root = project(tmp_path, None)
    done = gen(root, "services/*.pyi")
    assert done.returncode == 2
    assert "argument 'services/*.pyi': the pattern matches nothing" in done.stderr

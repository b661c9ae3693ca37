"""gen formats stubs with the black settings of the project they land in, and --check
still calls them current after the user's own black run, whatever its settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from black.mode import Mode, Preview, TargetVersion
from typer.testing import CliRunner

from gopherpipe_gen.cli import app
from gopherpipe_gen.render import FormatConfigError, black_mode

STUBS = ("defaults/service_client.py", "defaults/service_server.py")
LINE_LENGTH_79 = "[tool.black]\nline-length = 79\n"

CopyCase = Callable[[str, Path], Path]


@pytest.fixture
def project(tmp_path: Path, copy_case: CopyCase) -> Iterator[Path]:
    """A user's repository holding a contract whose stubs have long lines; cwd inside."""
    root = tmp_path / "repo"
    # .git marks the project root for black, so nothing above the temp folder counts.
    (root / ".git").mkdir(parents=True)
    copy_case("defaults", root)
    before = Path.cwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(before)


def gen(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["gen", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def black(*args: str) -> subprocess.CompletedProcess[str]:
    """The user's black: the real command, run in the project like `black .` would be."""
    return subprocess.run(
        [sys.executable, "-m", "black", *args], capture_output=True, text=True, check=True
    )


def stubs(root: Path) -> dict[str, str]:
    return {name: (root / name).read_text(encoding="utf-8") for name in STUBS}


# -- the settings gen finds ---------------------------------------------------------------


def test_black_defaults_without_a_config(project: Path) -> None:
    assert black_mode(project / "defaults") == Mode()


def test_black_settings_of_the_project(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        "[tool.black]\n"
        "line-length = 79\n"
        'target-version = ["py311", "py312"]\n'
        "skip-string-normalization = true\n"
        "skip-magic-trailing-comma = true\n"
        "preview = true\n"
        'enable-unstable-feature = ["string_processing"]\n'
        'extend-exclude = "ignored, as it selects files, not formatting"\n'
    )
    assert black_mode(project / "defaults") == Mode(
        line_length=79,
        target_versions={TargetVersion.PY311, TargetVersion.PY312},
        string_normalization=False,
        magic_trailing_comma=False,
        preview=True,
        enabled_features={Preview.string_processing},
    )


def test_settings_are_found_the_way_black_finds_them(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\nrequires-python = ">=3.12"\n\n' + LINE_LENGTH_79
    )
    # A pyproject.toml without [tool.black] does not stop the walk up, as in black.
    (project / "defaults" / "pyproject.toml").write_text("[tool.ruff]\nline-length = 60\n")
    # An output folder that does not exist yet (gen -o new/dir) is looked up all the same.
    mode = black_mode(project / "defaults" / "new" / "dir")
    assert mode.line_length == 79
    # Black infers the target versions from requires-python when the table names none.
    assert TargetVersion.PY311 not in mode.target_versions
    assert TargetVersion.PY312 in mode.target_versions
    # The project root (here .git) ends the walk: a config above it is not this project's.
    # (A folder not asked about before: black caches the root it found for each path.)
    (project / "pyproject.toml").unlink()
    (project.parent / "pyproject.toml").write_text(LINE_LENGTH_79)
    assert black_mode(project / "defaults" / "elsewhere").line_length == Mode().line_length


def test_a_bad_config_is_an_error_not_a_traceback(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.black]\nline-length = "wide"\n')
    with pytest.raises(FormatConfigError, match="line-length: expected int, got str"):
        black_mode(project)
    code, _, stderr = gen("defaults/service.py")
    assert code == 2
    assert "pyproject.toml: [tool.black] line-length: expected int, got str" in stderr
    assert not (project / STUBS[0]).exists()


# -- the user's black run -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "line_length"), [(None, 88), (LINE_LENGTH_79, 79)], ids=["defaults", "ll79"]
)
def test_stubs_survive_the_users_black(project: Path, config: str | None, line_length: int) -> None:
    if config is not None:
        (project / "pyproject.toml").write_text(config)
    assert gen("defaults/service.py")[0] == 0
    generated = stubs(project)
    # Not this repo's line length 100, which formats the goldens.
    golden = Path(__file__).parent / "golden"
    assert all(generated[name] != (golden / name).read_text() for name in STUBS)
    assert sum(len(line) > line_length for line in "".join(generated.values()).splitlines()) < 5

    # The user's `black .` leaves them exactly as gen wrote them...
    black("--check", *STUBS)
    black(".")
    assert stubs(project) == generated
    # ...and --check agrees.
    assert gen("--check", "defaults/service.py") == (0, "", "")

    # A change of the contract is still reported, and gen's rewrite survives black again.
    contract = project / "defaults" / "service.py"
    contract.write_text(contract.read_text().replace("def submit(", "def enqueue("))
    code, _, stderr = gen("--check", "defaults/service.py")
    assert code == 1
    assert stderr.splitlines() == [
        f"{name}: stale; run gopherpipe gen to update it" for name in STUBS
    ]
    assert gen("defaults/service.py")[0] == 0
    black("--check", *STUBS)
    assert gen("--check", "defaults/service.py") == (0, "", "")


@pytest.mark.parametrize(
    ("config", "black_args", "changed_config"),
    [
        (None, ["-l", "79"], None),
        (None, ["-l", "120", "--skip-magic-trailing-comma", "-S"], None),
        # Generated at 79, then the project drops its setting and black joins what fits
        # in 88 (keeping, as magic trailing commas, the splits it no longer needs).
        (LINE_LENGTH_79, [], ""),
        (None, [], "[tool.black]\nline-length = 60\nskip-magic-trailing-comma = true\n"),
    ],
    ids=["cli-79", "cli-120-no-magic-comma", "config-79-to-default", "config-default-to-60"],
)
def test_check_accepts_stubs_black_reformatted_with_other_settings(
    project: Path, config: str | None, black_args: list[str], changed_config: str | None
) -> None:
    if config is not None:
        (project / "pyproject.toml").write_text(config)
    assert gen("defaults/service.py")[0] == 0
    generated = stubs(project)
    if changed_config is not None:
        (project / "pyproject.toml").write_text(changed_config)
    black(*black_args, ".")
    reformatted = stubs(project)
    assert all(reformatted[name] != generated[name] for name in STUBS), "black changed nothing"

    assert gen("--check", "defaults/service.py") == (0, "", "")
    # gen does not fight the user's formatter: the reformatted stubs are current.
    assert gen("defaults/service.py") == (0, "", "")
    assert stubs(project) == reformatted

    contract = project / "defaults" / "service.py"
    contract.write_text(contract.read_text().replace("def submit(", "def enqueue("))
    assert gen("--check", "defaults/service.py")[0] == 1


def test_a_stub_edited_by_hand_is_stale(project: Path) -> None:
    assert gen("defaults/service.py")[0] == 0
    client = project / STUBS[0]
    # Comments survive black, so they are not formatting.
    client.write_text(client.read_text() + "# local tweak\n")
    assert gen("--check", "defaults/service.py")[0] == 1
    client.write_text("def broken(:\n")  # black cannot parse it: stale, not a crash
    assert gen("--check", "defaults/service.py")[0] == 1

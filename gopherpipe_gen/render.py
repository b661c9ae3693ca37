"""Fill the templates with a compiled context and format the result with black.

A contract gives two files, ``<stem>_client.py`` and ``<stem>_server.py``, and with
``--asyncio`` a third, ``<stem>_aio.py``; the client stub defines the converters, the
server stub imports the ones it calls from it, and the asyncio stub imports what it needs
from both (see `gopherpipe_gen.compiler`), so no converter is written twice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import black
import jinja2
from black.files import find_pyproject_toml, parse_pyproject_toml
from black.mode import Mode, Preview, TargetVersion
from black.parsing import InvalidInput

from .compiler import AioContext, StubContext, compile_contract
from .model import Contract

_T = TypeVar("_T")


class FormatConfigError(Exception):
    """A black configuration the generator cannot turn into black settings."""


@cache
def _environment() -> jinja2.Environment:
    # PackageLoader reads through importlib.resources, so the templates are found in
    # a wheel install as well as in a source checkout.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gopherpipe_gen", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def black_mode(out_dir: Path) -> Mode:
    """The black settings `black OUT_DIR` would use, or black's defaults if it finds none.

    The stubs are formatted the way the user's own `black .` will format them, so that
    run leaves them alone. Black's own lookup is reused, quirks included: the project
    root is the nearest folder with .git, .hg or a pyproject.toml that has a [tool.black]
    table; a root pyproject.toml without that table, or the user-level config when the
    root has no pyproject.toml at all, is what black then reads.
    """
    found = find_pyproject_toml((str(out_dir),))
    if found is None:
        return Mode()
    try:
        config = parse_pyproject_toml(found)
    except (OSError, ValueError) as exc:
        raise FormatConfigError(f"{found}: cannot read black's settings: {exc}") from None
    return _mode_from_config(config, found)


def _mode_from_config(config: dict[str, Any], source: str) -> Mode:
    # Only the keys that change the formatted text; the file selection keys (include,
    # exclude, ...) do not apply to files gen writes.
    defaults = Mode()

    def get(key: str, kind: type[_T], default: _T) -> _T:
        value = config.get(key, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            name = key.replace("_", "-")
            got = type(value).__name__
            raise FormatConfigError(
                f"{source}: [tool.black] {name}: expected {kind.__name__}, got {got}"
            )
        return value

    try:
        targets = {TargetVersion[v.upper()] for v in get("target_version", list, [])}
        features = {Preview[v] for v in get("enable_unstable_feature", list, [])}
    except (KeyError, AttributeError) as exc:
        raise FormatConfigError(f"{source}: [tool.black] unknown value {exc}") from None
    return Mode(
        target_versions=targets,
        line_length=get("line_length", int, defaults.line_length),
        string_normalization=not get("skip_string_normalization", bool, False),
        magic_trailing_comma=not get("skip_magic_trailing_comma", bool, False),
        preview=get("preview", bool, False),
        unstable=get("unstable", bool, False),
        enabled_features=features,
    )


def render(template: str, context: StubContext | AioContext, mode: Mode) -> str:
    source = _environment().get_template(template).render(context.as_dict())
    return black.format_str(source, mode=mode)


def same_code(on_disk: str, generated: str, mode: Mode) -> bool:
    """True if the two differ at most in what a black run with other settings changes.

    Both are formatted with `mode` made blind to magic trailing commas and quote style.
    That undoes line breaks, trailing commas and quotes chosen by a black run with other
    settings (another line length, another black version), which exact comparison would
    report as stale forever; names, values, types, docstrings and comments still count.
    """
    normal = dataclasses.replace(mode, magic_trailing_comma=False, string_normalization=True)
    try:
        return black.format_str(on_disk, mode=normal) == black.format_str(generated, mode=normal)
    except InvalidInput:
        return False  # a hand-broken stub is stale, not a crash


@dataclass(frozen=True)
class Output:
    path: Path
    text: str
    mode: Mode  # what `text` was formatted with; --check compares under it too


def render_contract(contract: Contract, out_dir: Path, asyncio: bool = False) -> list[Output]:
    """The stub files for a contract, as (path, text), not yet written: client and
    server, and the asyncio stub if `asyncio`."""
    client, server, aio = compile_contract(contract, out_dir, asyncio)
    stem = contract.path.stem
    mode = black_mode(out_dir)
    outputs = [
        Output(out_dir / f"{stem}_client.py", render("client.py.jinja2", client, mode), mode),
        Output(out_dir / f"{stem}_server.py", render("server.py.jinja2", server, mode), mode),
    ]
    if aio is not None:
        outputs.append(Output(out_dir / f"{stem}_aio.py", render("aio.py.jinja2", aio, mode), mode))
    return outputs

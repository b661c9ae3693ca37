"""Fill the templates with a compiled context and format the result with black."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import black
import jinja2
from black.mode import Mode, TargetVersion

from .compiler import StubContext, compile_contract
from .model import Contract

BLACK_MODE = Mode(line_length=100, target_versions={TargetVersion.PY311})


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


def render(template: str, context: StubContext) -> str:
    source = _environment().get_template(template).render(context.as_dict())
    return black.format_str(source, mode=BLACK_MODE)


@dataclass(frozen=True)
class Output:
    path: Path
    text: str


def render_contract(contract: Contract, out_dir: Path) -> list[Output]:
    """The two stub files for a contract, as (path, text), not yet written."""
    client, server = compile_contract(contract, out_dir)
    stem = contract.path.stem
    return [
        Output(out_dir / f"{stem}_client.py", render("client.py.jinja2", client)),
        Output(out_dir / f"{stem}_server.py", render("server.py.jinja2", server)),
    ]

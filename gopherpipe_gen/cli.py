"""The ``gopherpipe`` command line: ``gopherpipe gen PATH... [-o DIR] [--check]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .errors import SpecError, SpecErrors
from .parse import parse_contract
from .render import FormatConfigError, Output, render_contract, same_code

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="GopherPipe code generator: typed client and server stubs from service contracts.",
)

EXIT_STALE = 1
EXIT_SPEC_ERROR = 2
EXIT_CONFIG_ERROR = 2


@app.callback()
def _root() -> None:
    """Keeps `gen` a real subcommand (typer would otherwise promote a lone command)."""


def generate(paths: list[Path], out_dir: Path | None) -> list[Output]:
    """Every stub for `paths`; raises SpecErrors listing the problems of all of them."""
    errors: list[SpecError] = []
    outputs: list[Output] = []
    for path in paths:
        try:
            contract = parse_contract(path)
            outputs.extend(render_contract(contract, out_dir or path.parent))
        except SpecErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise SpecErrors(errors)
    return outputs


@app.command()
def gen(
    paths: Annotated[
        list[Path], typer.Argument(help="Contract files (service.py).", show_default=False)
    ],
    out: Annotated[
        Path | None,
        typer.Option("-o", "--out", help="Write stubs here instead of next to each contract."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing; exit 1 if any stub is missing or stale. A stub is stale"
            " only if it still differs after both it and the fresh output are run through"
            " black, so one your black (other line length, trailing commas, quotes)"
            " reformatted is current.",
        ),
    ] = False,
) -> None:
    """Write <stem>_client.py and <stem>_server.py for each contract.

    The stubs are formatted with the black settings of the project they land in, found
    as black finds them from the output folder ([tool.black] in pyproject.toml), or
    black's defaults. A stub that differs from the fresh output only in formatting is
    left as it is.
    """
    try:
        outputs = generate(paths, out)
    except SpecErrors as exc:
        for error in exc.errors:
            typer.echo(str(error), err=True)
        raise typer.Exit(EXIT_SPEC_ERROR) from None
    except FormatConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    if check:
        stale = False
        for output in outputs:
            current = _current(output)
            if current is not True:
                state = "missing" if current is None else "stale"
                typer.echo(f"{output.path}: {state}; run gopherpipe gen to update it", err=True)
                stale = True
        raise typer.Exit(EXIT_STALE if stale else 0)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for output in outputs:
        if _current(output) is not True:
            output.path.write_text(output.text, encoding="utf-8", newline="\n")
            typer.echo(f"wrote {output.path}")


def _current(output: Output) -> bool | None:
    """True if the file on disk is `output` up to formatting, False if not, None if absent.

    Up to formatting, so that a user's formatter run over the stubs (or a change of their
    black settings since) does not make --check fail forever, nor gen rewrite the files
    and fight that formatter.
    """
    try:
        on_disk = output.path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return on_disk == output.text or same_code(on_disk, output.text, output.mode)


def main() -> None:
    app()

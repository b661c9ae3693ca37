"""The ``gopherpipe`` command line: ``gopherpipe gen PATH... [-o DIR] [--check]``,
``gopherpipe health ADDRESS [SERVICE]``, and ``gopherpipe breaking NEW.py --against
OLD.py`` (or ``--against-git REF``), which compares two parsed contracts (`breaking`).

The generator's stack (libcst, jinja2, black) is imported by `gen` only, when it runs:
``gopherpipe health`` imports the runtime and nothing else of ours, so a health probe
starts in a fraction of the time (it may run every few seconds in every container).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .errors import SpecError, SpecErrors

if TYPE_CHECKING:
    import ssl

    from .render import Output

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="GopherPipe: typed client and server stubs from service contracts (gen), and a"
    " health probe for running servers (health).",
)

EXIT_STALE = 1
EXIT_SPEC_ERROR = 2
EXIT_CONFIG_ERROR = 2


@app.callback()
def _root() -> None:
    """Keeps `gen` a real subcommand (typer would otherwise promote a lone command)."""


def generate(paths: list[Path], out_dir: Path | None) -> list[Output]:
    """Every stub for `paths`; raises SpecErrors listing the problems of all of them."""
    from .parse import parse_contract
    from .render import render_contract

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

    The stubs are formatted with the black settings of the project they land
    in, found as black finds them from the output folder (the tool.black table
    of pyproject.toml), or black's defaults. A stub that differs from the fresh
    output only in formatting is left as it is.
    """
    from .render import FormatConfigError

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
    from .render import same_code

    try:
        on_disk = output.path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return on_disk == output.text or same_code(on_disk, output.text, output.mode)


_HEALTH_HELP = """Print the health of a server or one of its services: SERVING or NOT_SERVING.

The server's built-in Health service ("gopherpipe.Health") answers, for
the server overall or for SERVICE. A stopping server answers NOT_SERVING
through its grace period.

Exit codes: 0 SERVING; 1 NOT_SERVING; 2 bad arguments; 3 the server has
no service SERVICE; 4 unreachable, or no answer within --timeout; 5 the
server answered with another error (e.g. it has no Health service). Only
0 means healthy.

Examples:
  gopherpipe health tcp://127.0.0.1:7070
  gopherpipe health tcp://127.0.0.1:7070 ChatService
  gopherpipe health tls://api.internal:7443 --ca ca.pem --timeout 2

As a Kubernetes exec probe (in the server's container):

  readinessProbe:
    exec:
      command: ["gopherpipe", "health", "tcp://127.0.0.1:7070"]
    periodSeconds: 10
    timeoutSeconds: 5

For tls:// and wss:// without --ca/--cert/--key, GOPHERPIPE_TLS_CA,
GOPHERPIPE_TLS_CERT and GOPHERPIPE_TLS_KEY are used when set (else the
system's CAs)."""


@app.command(help=_HEALTH_HELP)
def health(
    address: Annotated[
        str,
        typer.Argument(
            help="tcp://HOST:PORT, unix:///PATH, tls://, ws://, wss://", show_default=False
        ),
    ],
    service: Annotated[
        str,
        typer.Argument(help="A service's name (its contract's class name); none: the server."),
    ] = "",
    timeout: Annotated[
        float,
        typer.Option(help="Seconds for the whole check, connecting included.", min=0.001),
    ] = 3.0,
    ca: Annotated[
        Path | None,
        typer.Option("--ca", help="CA file (PEM) the server's certificate must chain to."),
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option("--cert", help="Our certificate (PEM), for servers that require one."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="The key of --cert, if not in the same file."),
    ] = None,
) -> None:
    # The runtime only: see the module docstring.
    from gopherpipe_runtime import health as runtime_health
    from gopherpipe_runtime.transport.tls import client_context, context_from_env

    if key is not None and cert is None:
        typer.echo("error: --key needs --cert", err=True)
        raise typer.Exit(runtime_health.EXIT_USAGE)
    tls: ssl.SSLContext | None
    try:
        if ca is not None or cert is not None:
            tls = client_context(
                None if ca is None else str(ca),
                certfile=None if cert is None else str(cert),
                keyfile=None if key is None else str(key),
            )
        else:
            tls = context_from_env(server_side=False)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        typer.echo(f"error: TLS files: {exc}", err=True)
        raise typer.Exit(runtime_health.EXIT_USAGE) from None
    code, line = runtime_health.probe(address, service, timeout=timeout, tls=tls)
    typer.echo(line, err=code not in (runtime_health.EXIT_SERVING, runtime_health.EXIT_NOT_SERVING))
    raise typer.Exit(code)


_BREAKING_HELP = """List the wire-breaking changes from an older generation of a contract to NEW.

Both generations are parsed, never imported. Each change is printed
as PATH:LINE:COL: PART: WHAT, located in NEW where the part still
exists there (else in the old contract), breaking changes first, then
the safe ones. The rules (README "Evolving a contract", RFC 11.1):
arguments and dataclass fields travel by position, so a removed,
renamed or reordered parameter or field, a changed type, a new one
without a default, a changed Enum value (an auto() renumbered), a
removed member, method or service, a changed call shape are breaking;
an added method, service or Enum member, a parameter or field added at
the end with a default, T widened to T | None are safe.

Exit codes: 0 no breaking change; 1 breaking changes; 2 a contract
has errors, or git could not give the old one.

Examples:
  gopherpipe breaking service.py --against old/service.py
  gopherpipe breaking service.py --against-git main
  gopherpipe breaking api/service.py --against-git v1.2.0   # a tag
  gopherpipe breaking service.py --against-git HEAD~1

With --against-git REF the old contract is NEW's path in its
repository as it is at REF (modules it imports from beside it are
read at REF too)."""


@app.command(help=_BREAKING_HELP)
def breaking(
    new: Annotated[Path, typer.Argument(help="The contract as it is now.", show_default=False)],
    against: Annotated[
        Path | None, typer.Option("--against", help="The older contract file.")
    ] = None,
    against_git: Annotated[
        str | None,
        typer.Option("--against-git", help="A git ref (branch, tag, commit) to read it at."),
    ] = None,
) -> None:
    import tempfile

    from .breaking import GitError, checkout_from_git, compare, relocate
    from .parse import parse_contract

    if (against is None) == (against_git is None):
        typer.echo("error: give one of --against OLD.py and --against-git REF", err=True)
        raise typer.Exit(EXIT_SPEC_ERROR)
    with tempfile.TemporaryDirectory(prefix="gopherpipe-breaking-") as folder:
        try:
            if against_git is not None:
                old_path = checkout_from_git(new, against_git, Path(folder))
            else:
                assert against is not None
                old_path = against
            old = parse_contract(old_path)
            current = parse_contract(new)
        except GitError as exc:
            typer.echo(f"error: git: {exc}", err=True)
            raise typer.Exit(EXIT_SPEC_ERROR) from None
        except SpecErrors as exc:
            for error in exc.errors:
                typer.echo(str(error), err=True)
            raise typer.Exit(EXIT_SPEC_ERROR) from None
        changes = compare(old, current)
        if against_git is not None:
            changes = relocate(changes, Path(folder), f"{against_git}:")
    broken = [c for c in changes if c.breaking]
    for change in broken:
        typer.echo(f"breaking: {change}")
    for change in changes:
        if not change.breaking:
            typer.echo(f"safe: {change}")
    typer.echo(f"{len(broken)} breaking, {len(changes) - len(broken)} safe")
    raise typer.Exit(1 if broken else 0)


def main() -> None:
    app()

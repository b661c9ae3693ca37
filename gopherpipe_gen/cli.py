"""The ``gopherpipe`` command line: ``gopherpipe gen [PATH...] [-o DIR] [--check]
[--asyncio]``,
``gopherpipe health ADDRESS [SERVICE]``, ``gopherpipe describe ADDRESS [SERVICE]`` and
``gopherpipe call ADDRESS SERVICE.METHOD [ARGS]`` (the last two are clients of the
built-in Reflection service, gopherpipe_runtime/reflection.py), and ``gopherpipe
breaking NEW.py --against OLD.py`` (or ``--against-git REF``), which compares two
parsed contracts (breaking.py). ``gopherpipe map members|services --seed HOST:PORT``
lists a GopherMap cluster as one member sees it, with a read-only pull
(discovery/gophermap.py's `pull_members`): the CLI never joins.

Which contracts `gen` reads (files, folders, globs, or the ``[tool.gopherpipe]``
table of pyproject.toml) is project.py.

The generator's stack (libcst, jinja2, black) is imported by `gen` only, when it runs:
``gopherpipe health`` (and ``describe``, ``call``, ``map``) imports the runtime and nothing else of ours, so a health probe
starts in a fraction of the time (it may run every few seconds in every container).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .errors import SpecError, SpecErrors

if TYPE_CHECKING:
    import ssl

    from .render import Output

app = typer.Typer(
    add_completion=True,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="GopherPipe: typed client and server stubs from service contracts (gen), a"
    " health probe for running servers (health), a look into and a call of any"
    " running server (describe, call), the wire-breaking changes between two"
    " generations of a contract (breaking), and the members and services of a"
    " GopherMap cluster (map). Shell completion: gopherpipe"
    " --install-completion.",
)

EXIT_STALE = 1
EXIT_SPEC_ERROR = 2
EXIT_CONFIG_ERROR = 2


@app.callback()
def _root() -> None:
    """Keeps `gen` a real subcommand (typer would otherwise promote a lone command)."""


def generate(paths: list[Path], out_dir: Path | None, asyncio: bool = False) -> list[Output]:
    """Every stub for `paths` (with the asyncio stubs if `asyncio`); raises SpecErrors
    listing the problems of all of them."""
    from .parse import parse_contract
    from .render import render_contract

    errors: list[SpecError] = []
    outputs: list[Output] = []
    for path in paths:
        try:
            contract = parse_contract(path)
            outputs.extend(render_contract(contract, out_dir or path.parent, asyncio))
        except SpecErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise SpecErrors(errors)
    return outputs


_GEN_HELP = """Write <stem>_client.py and <stem>_server.py for each contract, and
<stem>_aio.py with --asyncio.

PATH is a contract file, a folder (the contracts directly in it) or a glob
in quotes ('services/**/*.py'); a contract is a .py file with a top-level
class deriving from ABC, and stubs gen wrote are skipped. With no PATH,
the \\[tool.gopherpipe] table of the nearest pyproject.toml (from the current
folder upward) names them; its paths are relative to that file:

\b
  \\[tool.gopherpipe]
  contracts = ["services/*.py"]   # files, folders or globs
  out = "generated"               # optional; default: beside each contract
  asyncio = true                  # optional; default: false

out and asyncio apply to PATHs too, unless -o or --asyncio/--no-asyncio
is given.

With --asyncio, <stem>_aio.py holds, for each service X, the interface
XAsync (async methods; server streams are async generators), the client
XAsyncClient and register_x_async(server, impl) for
gopherpipe_runtime.aio.Server. It imports the other two stubs.

The stubs are formatted with the black settings of the project they land
in, found as black finds them from the output folder (the tool.black table
of pyproject.toml), or black's defaults. A stub that differs from the fresh
output only in formatting is left as it is.

Exit codes: 0 done (or, with --check, every stub current); 1 --check found
a stub missing or stale; 2 a contract error or a configuration error.

\b
Examples:
  gopherpipe gen                      # every contract the project names
  gopherpipe gen --check              # in CI: fail if a stub is stale
  gopherpipe gen service.py
  gopherpipe gen --asyncio service.py # also service_aio.py
  gopherpipe gen services/ -o generated
  gopherpipe gen 'services/**/*.py'
"""


@app.command(help=_GEN_HELP)
def gen(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Contract files, folders or globs; none: \\[tool.gopherpipe] contracts.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            help="Write stubs here instead of \\[tool.gopherpipe] out or next to each contract.",
        ),
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
    asyncio: Annotated[
        bool | None,
        typer.Option(
            "--asyncio/--no-asyncio",
            help="Also write <stem>_aio.py, the asyncio stubs (default: \\[tool.gopherpipe]"
            " asyncio, else no). --check then checks it too.",
            show_default=False,
        ),
    ] = None,
) -> None:
    from .project import ConfigError, plan

    try:
        contracts, out, asyncio = plan([str(p) for p in paths or ()], out, Path.cwd(), asyncio)
    except ConfigError as exc:
        if not paths:  # a bare `gopherpipe gen` outside a configured project
            typer.echo(ctx.get_usage() + "\n", err=True)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    from .render import FormatConfigError

    try:
        outputs = generate(contracts, out, asyncio)
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


# -- describe and call: the Reflection service's clients (runtime imports only) ---------

EXIT_RPC_BASE = 10
"""`gopherpipe call`/`describe` exit with 10 + the status code of a failed call."""
EXIT_BAD_INPUT = 2

_ADDRESS_HELP = "tcp://HOST:PORT, unix:///PATH, tls://, ws://, wss://"
_TLS_ENV_HELP = """For tls:// and wss:// without --ca/--cert/--key, GOPHERPIPE_TLS_CA,
GOPHERPIPE_TLS_CERT and GOPHERPIPE_TLS_KEY are used when set (else the
system's CAs)."""

_DESCRIBE_HELP = f"""Print the services a running server offers, as Python-like signatures.

The server's built-in Reflection service ("gopherpipe.Reflection") answers
with each registered service's methods, call shapes, parameters (types and
defaults), results, docstrings and the dataclasses, Enums and other types
they use. A server started with Server(..., reflection=False) does not answer
it.

Exit codes: 0 described; 2 bad arguments; 10 + the status code when the
call fails (15 NOT_FOUND: no service SERVICE; 22 UNIMPLEMENTED: the server
has reflection off; 24 UNAVAILABLE: unreachable; 14 DEADLINE_EXCEEDED).

Examples:
  gopherpipe describe tcp://127.0.0.1:7070
  gopherpipe describe tcp://127.0.0.1:7070 ChatService
  gopherpipe describe tcp://127.0.0.1:7070 --json
  gopherpipe describe tls://api.internal:7443 --ca ca.pem

{_TLS_ENV_HELP}"""

_CALL_HELP = f"""Call a method of a running server, with arguments as JSON.

The types come from the server's Reflection service: JSON is converted to
what the method expects (datetime, date, time: ISO 8601 strings; UUID: a
string; Decimal: a string or number; timedelta: seconds; bytes: base64; an
Enum: a member's name or value; a dataclass: an object by field name, or an
array) and the result back to JSON (Enum members by name).

ARGS is a JSON object (arguments by name) or array (by position); none: {{}}.
A unary or client-stream result is printed as pretty JSON. A server
stream's items (server-stream and bidi methods) are printed one JSON value a
line as they arrive. A client stream (client-stream and bidi methods) is
read from stdin, one JSON value a line, until end of input.

Exit codes: 0 OK; 2 bad arguments (unknown method, JSON that does not fit
the method's types); 10 + the status code when the call fails, e.g. 11
CANCELLED, 12 UNKNOWN, 13 INVALID_ARGUMENT, 14 DEADLINE_EXCEEDED,
15 NOT_FOUND, 17 PERMISSION_DENIED, 18 RESOURCE_EXHAUSTED, 22
UNIMPLEMENTED, 23 INTERNAL, 24 UNAVAILABLE, 26 UNAUTHENTICATED. The error
is printed to stderr as CODE: message.

Examples:
  gopherpipe call tcp://127.0.0.1:7070 ChatService.history '{{"room_id": "go"}}'
  gopherpipe call tcp://127.0.0.1:7070 ChatService.history '["go", 10]'
  gopherpipe call tcp://127.0.0.1:7070 ChatService.tail '{{"room_id": "go"}}'
  printf '"hi"\\n"bye"\\n' | \\
      gopherpipe call tcp://127.0.0.1:7070 ChatService.upload
  gopherpipe call tcp://127.0.0.1:7070 ChatService.join_room '["go"]' \\
      --metadata user=ann < lines.jsonl
  gopherpipe call tls://api.internal:7443 Billing.charge \\
      '{{"amount": "19.99", "when": "2024-05-01T12:00:00Z"}}' \\
      --ca ca.pem --timeout 5

{_TLS_ENV_HELP}"""


def _client_tls(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The TLS context of --ca/--cert/--key, else of the environment; exits on bad files."""
    from gopherpipe_runtime.transport.tls import client_context, context_from_env

    if key is not None and cert is None:
        typer.echo("error: --key needs --cert", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        if ca is not None or cert is not None:
            return client_context(
                None if ca is None else str(ca),
                certfile=None if cert is None else str(cert),
                keyfile=None if key is None else str(key),
            )
        return context_from_env(server_side=False)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        typer.echo(f"error: TLS files: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _rpc_exit(exc: Exception) -> typer.Exit:
    """Print an RpcError as CODE: message; the exit code is 10 + its status code."""
    code = getattr(exc, "code", None)
    name = getattr(code, "name", "UNKNOWN")
    typer.echo(f"{name}: {getattr(exc, 'message', exc)}", err=True)
    return typer.Exit(EXIT_RPC_BASE + int(getattr(code, "value", 2)))


def _metadata(pairs: list[str]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            typer.echo(f"error: --metadata {pair!r}: write KEY=VALUE", err=True)
            raise typer.Exit(EXIT_BAD_INPUT)
        metadata[key] = value
    return metadata


def _check_address(address: str) -> None:
    from gopherpipe_runtime.address import parse_address

    try:
        parse_address(address)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


_Ca = Annotated[
    Path | None, typer.Option("--ca", help="CA file (PEM) the server's certificate must chain to.")
]
_Cert = Annotated[
    Path | None,
    typer.Option("--cert", help="Our certificate (PEM), for servers that require one."),
]
_Key = Annotated[
    Path | None, typer.Option("--key", help="The key of --cert, if not in the same file.")
]
_Metadata = Annotated[
    list[str] | None,
    typer.Option("--metadata", "-m", help="KEY=VALUE sent with the call; repeatable."),
]


@app.command(help=_DESCRIBE_HELP)
def describe(
    address: Annotated[
        str, typer.Argument(metavar="ADDRESS", help=_ADDRESS_HELP, show_default=False)
    ],
    service: Annotated[
        str,
        typer.Argument(
            metavar="SERVICE", help="One service's name (its contract's class name); none: all."
        ),
    ] = "",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the schemas as JSON instead.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds for the whole call.", min=0.001)] = 5.0,
    metadata: _Metadata = None,
    ca: _Ca = None,
    cert: _Cert = None,
    key: _Key = None,
) -> None:
    import json

    from gopherpipe_runtime import reflection
    from gopherpipe_runtime.status import RpcError

    _check_address(address)
    tls = _client_tls(ca, cert, key)
    try:
        schemas = reflection.describe(
            address, service, timeout=timeout, tls=tls, metadata=_metadata(metadata or [])
        )
    except RpcError as exc:
        raise _rpc_exit(exc) from None
    if as_json:
        typer.echo(json.dumps(schemas, indent=2, ensure_ascii=False))
        return
    typer.echo("\n\n".join(reflection.format_service(schema) for schema in schemas), nl=False)


@app.command(help=_CALL_HELP)
def call(
    address: Annotated[
        str, typer.Argument(metavar="ADDRESS", help=_ADDRESS_HELP, show_default=False)
    ],
    target: Annotated[
        str,
        typer.Argument(
            metavar="SERVICE.METHOD", help="e.g. ChatService.history", show_default=False
        ),
    ],
    arguments: Annotated[
        str,
        typer.Argument(metavar="ARGS", help="JSON object (by name) or array (by position)."),
    ] = "{}",
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds for the call (none: no deadline).", min=0.001),
    ] = None,
    metadata: _Metadata = None,
    ca: _Ca = None,
    cert: _Cert = None,
    key: _Key = None,
) -> None:
    import json
    import sys

    from gopherpipe_runtime import reflection
    from gopherpipe_runtime.jsonwire import JsonWireError
    from gopherpipe_runtime.pipe import Pipe
    from gopherpipe_runtime.status import NotFoundError, RpcError

    service, dot, method = target.rpartition(".")
    if not dot or not service or not method:
        typer.echo(f"error: {target!r}: write SERVICE.METHOD", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        args = json.loads(arguments)
    except ValueError as exc:
        typer.echo(f"error: ARGS is not JSON: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    _check_address(address)
    tls = _client_tls(ca, cert, key)
    headers = _metadata(metadata or [])

    def inputs() -> Iterable[object]:
        for number, line in enumerate(sys.stdin, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise JsonWireError(f"input line {number} is not JSON: {exc}") from None

    def show(item: object) -> None:
        typer.echo(json.dumps(item, ensure_ascii=False))
        sys.stdout.flush()

    try:
        with Pipe(address, tls=tls, connect_timeout=timeout or 10.0) as pipe:
            try:
                schema = reflection.describe(pipe, service, timeout=timeout, metadata=headers)[0]
            except NotFoundError as exc:
                raise JsonWireError(
                    f"the server has no service {service!r} ({exc.message})"
                ) from None
            try:
                reflection.find_method(schema, method)
            except NotFoundError as exc:
                raise JsonWireError(exc.message) from None
            result = reflection.call(
                pipe, schema, method, args, inputs=inputs(), on_item=show, timeout=timeout,
                metadata=headers,
            )  # fmt: skip
    except JsonWireError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except RpcError as exc:
        raise _rpc_exit(exc) from None
    kind = reflection.find_method(schema, method)["kind"]
    if kind in ("unary", "client_stream"):
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


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


# -- map: a look at a GopherMap cluster (runtime imports only) ---------------------------

map_app = typer.Typer(
    no_args_is_help=True,
    help="Look at a GopherMap cluster through one member: its members (members) and"
    " the services they announce (services).",
)
app.add_typer(map_app, name="map")

EXIT_MAP_UNREACHABLE = 4
EXIT_MAP_REFUSED = 5

_MAP_HELP_TAIL = """The member at --seed is asked for everything it knows with a read-only
pull over its TCP port (the CLI does not join the cluster: it is not a
member, so nothing is left behind and nobody has to notice it leaving).
With a keyed cluster, --key-file holds its key (64 hex digits, or 32 raw
bytes); the member checks that we have it (a challenge) and we check its
answer is signed with it.

Exit codes: 0 listed; 2 bad arguments (seed, key file); 4 the member is
unreachable or did not answer within --timeout; 5 it refused (wrong or
missing key) or its answer was not signed with our key."""

_MAP_MEMBERS_HELP = f"""List the members of a GopherMap cluster, as one member sees them.

Columns: name, gossip address (UDP and TCP, host:port), state (ALIVE,
SUSPECT, DEAD, LEFT; dead and left members are remembered for a while),
incarnation, and the services each announces.

Examples:
  gopherpipe map members --seed 127.0.0.1:7946
  gopherpipe map members --seed 10.0.0.5:7946 --key-file cluster.key --json

{_MAP_HELP_TAIL}"""

_MAP_SERVICES_HELP = f"""List the services announced in a GopherMap cluster: one row per address.

Columns: service, address (what gophermap://SERVICE resolves to), the
member announcing it, and its metadata (e.g. version, zone). Members that
are dead or left are not listed (clients do not use them).

Examples:
  gopherpipe map services --seed 127.0.0.1:7946
  gopherpipe map services --seed 10.0.0.5:7946 --key-file cluster.key

{_MAP_HELP_TAIL}"""

_SeedOption = Annotated[
    str, typer.Option("--seed", help="HOST:PORT of any member.", show_default=False)
]
_KeyFileOption = Annotated[
    Path | None,
    typer.Option("--key-file", help="The cluster's key: 64 hex digits or 32 raw bytes."),
]
_TimeoutOption = Annotated[
    float, typer.Option(help="Seconds for the whole look, connecting included.", min=0.001)
]
_JsonOption = Annotated[bool, typer.Option("--json", help="One JSON array instead of a table.")]


def _pull(seed: str, key_file: Path | None, timeout: float) -> list[Any]:
    """Every member the seed knows; exits with the documented codes on failure."""
    from gopherpipe_runtime.discovery import gophermap

    try:
        gophermap.split_host_port(seed)
        key = None if key_file is None else gophermap.load_key(key_file)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_SPEC_ERROR) from None
    try:
        return gophermap.pull_members(seed, key, timeout)
    except gophermap.PullRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_MAP_REFUSED) from None
    except OSError as exc:
        typer.echo(f"error: {seed} unreachable: {exc or type(exc).__name__}", err=True)
        raise typer.Exit(EXIT_MAP_UNREACHABLE) from None
    except ValueError as exc:
        typer.echo(f"error: {seed} answered with a state we cannot accept: {exc}", err=True)
        raise typer.Exit(EXIT_MAP_REFUSED) from None


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns as wide as their widest cell, two spaces apart; "-" for an empty cell."""
    cells = [header] + [[cell or "-" for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


@map_app.command("members", help=_MAP_MEMBERS_HELP)
def map_members(
    seed: _SeedOption,
    key_file: _KeyFileOption = None,
    timeout: _TimeoutOption = 3.0,
    as_json: _JsonOption = False,
) -> None:
    members = sorted(_pull(seed, key_file, timeout), key=lambda m: m.name)
    if as_json:
        import json

        rows: list[dict[str, Any]] = [
            {
                "name": m.name,
                "address": m.address,
                "state": m.state.name,
                "incarnation": m.incarnation,
                "services": sorted(m.services),
            }
            for m in members
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    header = ["NAME", "ADDRESS", "STATE", "INCARNATION", "SERVICES"]
    table = [
        [m.name, m.address, m.state.name, str(m.incarnation), ",".join(sorted(m.services))]
        for m in members
    ]
    typer.echo(format_table(header, table))


@map_app.command("services", help=_MAP_SERVICES_HELP)
def map_services(
    seed: _SeedOption,
    key_file: _KeyFileOption = None,
    timeout: _TimeoutOption = 3.0,
    as_json: _JsonOption = False,
) -> None:
    from gopherpipe_runtime.discovery.swim import MemberState

    rows: list[tuple[str, str, str, dict[str, str]]] = []
    for member in _pull(seed, key_file, timeout):
        if member.state not in (MemberState.ALIVE, MemberState.SUSPECT):
            continue
        for service, entry in member.services.items():
            for address in entry.addresses:
                rows.append((service, address, member.name, dict(entry.meta)))
    rows.sort()
    if as_json:
        import json

        typer.echo(
            json.dumps(
                [{"service": s, "address": a, "member": m, "meta": meta} for s, a, m, meta in rows],
                indent=2,
            )
        )
        return
    header = ["SERVICE", "ADDRESS", "MEMBER", "META"]
    table = [
        [s, a, m, ",".join(f"{k}={v}" for k, v in sorted(meta.items()))] for s, a, m, meta in rows
    ]
    typer.echo(format_table(header, table))


def main() -> None:
    app()

"""The built-in Reflection service, "gopherpipe.Reflection", and its client side.

Server side: `reflection_service` is the service as a generated stub would hand it
to `Server.add_service` (written by hand, like health.py's), with one method:

  describe(service: str = "") -> list[dict]   the schemas of the named service, or
                                              of every registered one ("")

A service's schema is the plain literal gopherpipe gen writes into its server stub
(``_<Service>_schema``), passed as ``ServiceDef.schema``; the runtime stores and
sends it as it is. Built-in services are not described; a name the server does not
serve is NOT_FOUND. A service registered from a stub that predates reflection (no
schema) is described by its methods' names and call shapes only, with
``"partial": True``. `Server(reflection=False)` leaves the service out (its calls
get UNIMPLEMENTED). Format (version 1; RFC-TCP_LITE section 13.3):

  {"version": 1, "name": "ChatService", "doc": "...",
   "methods": [{"name": "history", "kind": "unary" | "client_stream" |
                "server_stream" | "bidi",
                "params": [{"name": "room_id", "type": "str"},
                           {"name": "limit", "type": "int", "default": "50"},
                           {"name": "lines", "type": "str", "stream": True}],
                "returns": "list[Message]", "idempotent": True, "doc": "..."}],
   "types": {"Message": {"kind": "dataclass" | "namedtuple" | "typeddict",
                         "doc": "...", "fields": [{"name", "type"[, "default"]}]},
             "Mood": {"kind": "enum", "doc": "...", "members": [["HAPPY", 1], ...]},
             "UserId": {"kind": "newtype", "type": "int"}}}

Types are spelled as the contract spells them. A streamed parameter
(``"stream": True``) and a streaming method's ``returns`` give the item type (the
contract's ``Chan[T]``'s T). A ``default`` is the contract's source text ("" when a
TypedDict key may be left out).

Client side: `describe` (one call over a new or given `Pipe`), `format_service`
(the Python-like text ``gopherpipe describe`` prints) and `call`, the whole of
``gopherpipe call``: JSON arguments converted through the schema (jsonwire.py), any
call shape, results handed back as JSON values as they arrive.
"""

from __future__ import annotations

import json
import ssl
import textwrap
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .chan import Chan
from .jsonwire import JsonWire, JsonWireError, args_to_wire
from .pipe import CallOptions, Pipe
from .service import MethodDef, MethodKind, ServiceDef
from .status import NotFoundError, RpcError
from .wire.convert import check_args, check_list, check_str

REFLECTION_SERVICE = "gopherpipe.Reflection"
SCHEMA_VERSION = 1
_KINDS = {
    "unary": MethodKind.UNARY,
    "client_stream": MethodKind.CLIENT_STREAM,
    "server_stream": MethodKind.SERVER_STREAM,
    "bidi": MethodKind.BIDI,
}


def schema_of(service: ServiceDef) -> Mapping[str, Any]:
    """What Reflection tells of `service`."""
    if service.schema is not None:
        return service.schema
    return {
        "version": SCHEMA_VERSION,
        "name": service.name,
        "doc": "",
        "methods": [{"name": name, "kind": m.kind.value} for name, m in service.methods.items()],
        "types": {},
        "partial": True,
    }


def reflection_service(services: Mapping[str, ServiceDef]) -> ServiceDef:
    """The service as `Server.add_service` takes it, describing `services` (the
    server's own table, read at each call: services registered later are included)."""

    def describe(name: str) -> list[Mapping[str, Any]]:
        # A copy: add_service may add to the table while a call reads it.
        current = list(services.items())
        if name:
            for known, service in current:
                if known == name and "." not in known:
                    return [schema_of(service)]
            raise NotFoundError(f"{REFLECTION_SERVICE}: unknown service {name!r}")
        return [schema_of(service) for known, service in current if "." not in known]

    return ServiceDef(
        REFLECTION_SERVICE,
        {"describe": MethodDef(MethodKind.UNARY, _describe_args, describe, _encode_schemas)},
    )


def _describe_args(value: Any) -> tuple[Any, ...]:
    args = check_args(value, "describe", 0, 1)
    return (check_str(args[0], "describe(): argument 'service'"),) if args else ("",)


def _encode_schemas(value: Any) -> list[Any]:
    return check_list(value, "describe(): result")


# -- client side ------------------------------------------------------------------------


def describe(
    target: str | Pipe,
    service: str = "",
    *,
    timeout: float | None = 5.0,
    tls: ssl.SSLContext | None = None,
    metadata: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The schemas of `service` ("": every service) at `target`, an address or a Pipe.

    Raises NotFoundError for a service the server does not have, UnimplementedError
    for a server without reflection, and any other RpcError of the call."""
    options = CallOptions(timeout=timeout, metadata=dict(metadata or {}))
    if isinstance(target, Pipe):
        result = target.unary(REFLECTION_SERVICE, "describe", [service], options)
    else:
        with Pipe(target, tls=tls, connect_timeout=timeout or 5.0) as pipe:
            result = pipe.unary(REFLECTION_SERVICE, "describe", [service], options)
    schemas = check_list(result, f"{REFLECTION_SERVICE}: result")
    return [s for s in schemas if isinstance(s, dict)]


def find_method(schema: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for method in schema.get("methods", ()):
        if method.get("name") == name:
            return method  # type: ignore[no-any-return]
    known = ", ".join(m.get("name", "?") for m in schema.get("methods", ()))
    raise NotFoundError(f"service {schema.get('name')!r} has no method {name!r} (it has: {known})")


def call(
    pipe: Pipe,
    schema: Mapping[str, Any],
    method_name: str,
    arguments: Any,
    *,
    inputs: Iterable[Any] = (),
    on_item: Callable[[Any], None],
    timeout: float | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Any:
    """Call `method_name` of the service `schema` describes with `arguments` (a JSON
    object or array, as `jsonwire.args_to_wire` takes them).

    A client-streaming or bidi method streams `inputs` (JSON values, converted as
    they are taken). A server-streaming or bidi method's items go to `on_item` as
    JSON values as they arrive, and the call returns None; the other shapes return
    the result as a JSON value. Raises JsonWireError for arguments or items that do
    not fit the schema, RpcError for the call's failure."""
    if schema.get("partial"):
        raise JsonWireError(
            f"service {schema.get('name')!r} was generated before reflection schemas: its"
            " parameter types are unknown (regenerate its stubs with gopherpipe gen)"
        )
    method = find_method(schema, method_name)
    codec = JsonWire(schema.get("types", {}))
    kind = _KINDS[method["kind"]]
    args = args_to_wire(method, codec, arguments)
    returns = method["returns"]
    options = CallOptions(timeout=timeout, metadata=dict(metadata or {}))
    service = schema["name"]
    if kind is MethodKind.UNARY:
        return codec.to_json(returns, pipe.unary(service, method_name, args, options), "result")
    streamed = [p for p in method["params"] if p.get("stream")]
    source: Chan[Any] | None = None
    bad_input: list[JsonWireError] = []
    if streamed:
        item_type = streamed[0]["type"]
        source = _feed(
            inputs, lambda v, i: codec.to_wire(item_type, v, f"input {i + 1}"), bad_input
        )

    def decode(value: Any) -> Any:
        return codec.to_json(returns, value, "item")

    stream = pipe.stream(
        service,
        method_name,
        args,
        options,
        source=source,
        encode_item=None if source is None else _identity,
        decode_item=decode if kind in (MethodKind.SERVER_STREAM, MethodKind.BIDI) else None,
    )
    try:
        if kind is MethodKind.CLIENT_STREAM:
            return codec.to_json(returns, stream.result(), "result")
        for item in stream.take_output():
            on_item(item)
    except RpcError:
        # A bad input line ends our stream with an error, which cancels the call: the
        # line is the news, not the CANCELLED that follows.
        if bad_input:
            raise bad_input[0] from None
        raise
    return None


def _identity(value: Any) -> Any:
    return value


def _feed(
    inputs: Iterable[Any], convert: Callable[[Any, int], Any], bad: list[JsonWireError]
) -> Chan[Any]:
    """A channel of `inputs` converted, filled by a thread of its own: they may come
    from a terminal, at the pace a person types. A bad input ends the stream with its
    JsonWireError, noted in `bad` (the call is then cancelled)."""
    chan: Chan[Any] = Chan(16)

    def pump() -> None:
        try:
            for index, value in enumerate(inputs):
                chan.send(convert(value, index))
        except JsonWireError as exc:
            bad.append(exc)
            chan.close(exc)
            return
        except Exception as exc:  # the stream ended under us (ChanClosed), or stdin broke
            chan.close(exc)
            return
        chan.close()

    threading.Thread(target=pump, name="gopherpipe-call-input", daemon=True).start()
    return chan


# -- describe's text ----------------------------------------------------------------------


def _docstring(doc: str, indent: str) -> list[str]:
    if not doc:
        return []
    if "\n" not in doc:
        return [f'{indent}"""{doc}"""']
    body = textwrap.indent(doc, indent)
    return [f'{indent}"""{body[len(indent):]}', f'{indent}"""']


def _signature(method: Mapping[str, Any]) -> str:
    parts = ["self"]
    for p in method.get("params", ()):
        kind = f"Chan[{p['type']}]" if p.get("stream") else p["type"]
        text = f"{p['name']}: {kind}"
        if "default" in p:
            text += f" = {p['default']}"
        parts.append(text)
    returns = method.get("returns", "?")
    if method.get("kind") in ("server_stream", "bidi"):
        returns = f"Chan[{returns}]"
    return f"def {method['name']}({', '.join(parts)}) -> {returns}:"


def format_service(schema: Mapping[str, Any]) -> str:
    """`schema` as Python-like source: the service class, then the types it uses."""
    lines = [f"class {schema.get('name')}:"]
    lines += _docstring(schema.get("doc", ""), "    ")
    if schema.get("partial"):
        lines.append("    # generated before reflection schemas: only names and call shapes")
        for method in schema.get("methods", ()):
            lines.append(f"    def {method['name']}(...)  # {method['kind']}")
        return "\n".join(lines) + "\n"
    for method in schema.get("methods", ()):
        lines.append("")
        if method.get("idempotent"):
            lines.append("    @idempotent")
        lines.append(f"    {_signature(method)}  # {method['kind']}")
        lines += _docstring(method.get("doc", ""), "        ") or ["        ..."]
    for name, named in schema.get("types", {}).items():
        lines += ["", ""]
        kind = named.get("kind")
        if kind == "newtype":
            lines.append(f'{name} = NewType("{name}", {named["type"]})')
            continue
        if kind == "enum":
            lines.append(f"class {name}(Enum):")
            lines += _docstring(named.get("doc", ""), "    ")
            lines += [f"    {m} = {json.dumps(v)}" for m, v in named["members"]]
            continue
        if kind == "dataclass":
            lines += ["@dataclass", f"class {name}:"]
        else:
            lines.append(f"class {name}({'NamedTuple' if kind == 'namedtuple' else 'TypedDict'}):")
        lines += _docstring(named.get("doc", ""), "    ")
        for f in named.get("fields", ()):
            if kind == "typeddict":
                spelled = f"NotRequired[{f['type']}]" if "default" in f else f["type"]
                lines.append(f"    {f['name']}: {spelled}")
            elif "default" in f:
                lines.append(f"    {f['name']}: {f['type']} = {f['default']}")
            else:
                lines.append(f"    {f['name']}: {f['type']}")
    return "\n".join(lines) + "\n"

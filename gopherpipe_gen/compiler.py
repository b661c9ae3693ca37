"""Turn a parsed `Contract` into the template context of the client and server stubs
(and of the asyncio stub, with ``--asyncio``).

Every decision about the generated code is made here, in Python; the templates only
lay out what this module computes.

Converters. Each distinct composite type gets one encode function (Python value ->
wire form) and one decode function (wire form -> the exact Python type), named after
the type's structure (``_enc_list_Point``, ``_dec_dict_str_opt_int``), shared by every
use. Scalars need no function: they are one `gopherpipe_runtime.convert` check. Every
converter takes ``(value, path)`` where `path` names the argument (``repeat(): argument
'text'``). Containers and records first convert with the
container's own path, which costs no string building; only if that raises do they hand
the same value to a table-driven routine of `gopherpipe_runtime.convert`
(``convert_items``, ``decode_fields``, ...) that converts it again naming each part's path
(``...'msg'.items[3].sender``). So the error names the exact field, the common,
successful call builds no paths at all, and each converter's body is written once.
The first attempt hands the generated converters of its parts `FAST_PATH` instead of
its own path (runtime checks, which never retry, keep the path): a part that fails
under it re-raises at once instead of naming its own parts, since the container
retrying around it will convert it again with its real path. Otherwise every level
of nesting would convert what is below it twice, each part again twice, and a bad
value 30 levels down a recursive dataclass would take 2**30 conversions to refuse.
Records are the innermost loop of a stream's decoding, so their fast path does the
least it can: a full record passes the wire-form test in line (``check_record`` sees
the rest), a scalar field that already is exactly its type passes on a type test with
no call (``check_X`` sees anything else, so what is accepted does not change), and a
dataclass is built by position (by keyword only if a field is ``kw_only``).

Where converters live: once, in the client stub (``<stem>_client.py``), which holds
every converter the contract's services need in both directions (a client encodes
arguments and decodes results; a server does the reverse, so most types need both). The
server stub (``<stem>_server.py``) defines only its registration, argument decoders and
result encoders, and imports the converters they call from the client stub, by the
import rule below for a module written next to the stubs: ``from .service_client import
_dec_Point`` in a package, ``from service_client import _dec_Point`` in a plain folder.
So a server ships both files (gen always writes both); a client needs only its own.

The asyncio stub (``<stem>_aio.py``, ``gen --asyncio``) defines no converter and no
per-method function either. Its interface ``XAsync`` and client ``XAsyncClient`` spell the
same signatures with async shapes (`_aio_method`); the client's calls are the threaded
client's expressions (`_client_call`: AsyncClientBase takes ClientBase's arguments), with
the converters and result/item decoders imported from the client stub by name; its
``register_x_async`` builds the threaded server stub's MethodDef table (`_method_def`)
with the server stub's argument decoders, encoders and schema, reached as
``_gp_server.NAME`` (``import service_server as _gp_server``, or ``from . import ...`` in
a package) since the two stubs define functions of the same names for opposite
directions. Only ``call`` differs: the implementation's coroutine or async generator.

Reflection schema. The server stub also holds, per service, a plain literal (dicts,
lists, strings) describing it -- methods, call shapes, parameters with their types
and defaults as the contract spells them, docstrings, and a table of the named types
they reach -- that the register function passes to the runtime as
``ServiceDef.schema`` for the built-in Reflection service (`_schema`; the format is in
``gopherpipe_runtime/reflection.py`` and RFC-TCP_LITE section 13.3). Being a literal,
it imports nothing.

Import rule (how the stubs import the contract's classes):
- stubs written next to the contract, in a package (``__init__.py`` beside it):
  ``from .service import EchoService``;
- stubs written next to the contract in a plain folder: ``from service import
  EchoService`` (run with that folder on ``sys.path``, as the examples do);
- stubs written elsewhere (``-o DIR``): an absolute import of the contract's dotted
  module name, found by walking up the folders that hold an ``__init__.py``.
Types imported by the contract from a neighbouring module follow the same rule for
that module's file.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SpecError, SpecErrors
from .model import (
    Contract,
    Dataclass,
    DictOf,
    ListOf,
    LiteralOf,
    Method,
    Named,
    NewTypeOf,
    OptionalOf,
    Param,
    Scalar,
    Service,
    SetOf,
    Stdlib,
    TupleOf,
    TypeRef,
    key_of,
)
from .parse import iter_types, spell

# What a client method's name may shadow in the annotations after it (see _Emitter.annotate).
BUILTIN_TYPES = frozenset(
    {"bool", "int", "float", "str", "bytes", "list", "dict", "set", "frozenset", "tuple"}
)
# Names the stubs import or define besides the contract's own.
STUB_NAMES = frozenset(
    {"Any", "Callable", "ClientBase", "InvalidArgumentError", "MethodDef", "MethodKind"}
    | {"Server", "ServiceDef", "fail", "bad_enum", "Chan", "Iterable", "no_result"}
    | {"FAST_PATH"}
)
# Names the asyncio stub imports or defines besides those (checked with --asyncio only).
AIO_STUB_NAMES = frozenset(
    {"ABC", "abstractmethod", "AsyncClientBase", "AsyncIterable", "AsyncIterator", "Iterable"}
    | {"MethodDef", "MethodKind", "Server", "ServiceDef", "no_result"}
)
AIO_SERVER = "_gp_server"
"""The name the asyncio stub imports the server stub under (module docstring)."""
FAST = "FAST_PATH"
"""What a converter's first attempt passes as the path of its parts (see above)."""


@dataclass(frozen=True)
class Converter:
    """One generated ``def NAME(value: object, path: str) -> RETURNS``.

    The body, in order: `check` (a statement binding ``items``), `guard_cond` /
    `guard_fail`, `shortcut_cond` -> ``return shortcut``, then ``return fast``
    (retried as ``return precise`` when `fast` raises InvalidArgumentError: `precise` is
    a call of a path-naming runtime routine, never a second copy of `fast`).
    Enums use `enum` instead.
    """

    name: str
    returns: str
    fast: str = ""
    precise: str | None = None
    check: str | None = None
    guard_cond: str | None = None
    guard_fail: str | None = None
    shortcut_cond: str | None = None
    shortcut: str | None = None
    enum: str | None = None
    enum_value_type: str | None = None
    table: str | None = None
    literal_guard: str | None = None
    """For a Literal: the type test before the `table` lookup (an unhashable wire value
    must not reach dict.get)."""
    literal_name: str | None = None
    encode: bool = True


@dataclass(frozen=True)
class Table:
    """A module-level constant the converters look things up in."""

    name: str
    annotation: str
    value: str


@dataclass(frozen=True)
class ParamView:
    name: str
    annotation: str
    default: str | None
    positional_only: bool
    encode: str
    """Client side: the expression that encodes the argument."""
    decode: str
    """Server side: the expression that decodes ``args[i]``."""
    decoder: str
    """Server side: the (value, path) function that decodes it, for short argument lists."""
    path: str


@dataclass(frozen=True)
class FunctionView:
    """A one-argument module-level function: ``def name(value: Any) -> returns``."""

    name: str
    returns: str
    expr: str
    returns_none: bool = False


@dataclass(frozen=True)
class SignatureParam:
    """A parameter as the client method's signature spells it."""

    name: str
    annotation: str
    default: str | None
    slash_after: bool
    """Whether the positional-only marker ``/`` follows this parameter."""


@dataclass(frozen=True)
class MethodView:
    name: str
    kind: str
    params: tuple[ParamView, ...]
    """The parameters that travel in the CALL frame (not a Chan parameter)."""
    signature: tuple[SignatureParam, ...]
    """Every parameter, in the contract's order, as the client spells it."""
    returns: str
    returns_none: bool
    client_call: str
    """The expression a client method evaluates (and returns, unless returns_none)."""
    client_functions: tuple[FunctionView, ...]
    server_functions: tuple[FunctionView, ...]
    method_def: str
    """The MethodDef(...) expression the server registers."""
    required: int
    args_decoder: str
    params_table: str | None
    defaults_table: str | None
    """The contract's defaults of the parameters after the required ones."""
    decoded_args: str


@dataclass(frozen=True)
class ServiceView:
    name: str
    client_name: str
    register_name: str
    methods: tuple[MethodView, ...]
    schema_name: str
    schema: str
    """The reflection schema as a Python literal (see the module docstring)."""


@dataclass(frozen=True)
class AioMethodView:
    """A method of the asyncio stub: the interface's abstract method, the client's."""

    name: str
    is_async: bool
    """Unary and client-stream methods are coroutines (``async def``). Server-stream and
    bidi methods are plain ``def``s returning an AsyncIterator: an implementation written
    as an async generator (``async def`` that yields) has exactly that type, where an
    abstract ``async def ... -> AsyncIterator[T]`` would be a coroutine of an iterator."""
    interface: tuple[SignatureParam, ...]
    """The interface's parameters: a Chan[T] parameter arrives as AsyncIterator[T]."""
    client: tuple[SignatureParam, ...]
    """The client's: a Chan[T] parameter takes AsyncIterable[T] | Iterable[T]."""
    returns: str
    returns_none: bool
    doc: str | None
    """The contract's docstring as a literal, indented for the method's body."""
    client_call: str
    method_def: str


@dataclass(frozen=True)
class AioServiceView:
    name: str
    interface_name: str
    client_name: str
    register_name: str
    doc: str
    """The interface's docstring literal."""
    methods: tuple[AioMethodView, ...]
    schema: str
    """The server stub's reflection schema, which the asyncio registration reuses."""


@dataclass
class _Emitter:
    """Collects the converters, tables and helper imports one stub file needs.

    With `shared` set (the server's emitter), converters are built by `shared` (the
    client's emitter) and only their names are noted here, in `from_shared`, for the
    stub to import; scalar and standard-library checks stay this stub's own imports.
    """

    contract: Contract
    shared: _Emitter | None = None
    from_shared: set[str] = field(default_factory=set)
    """The converters this stub uses from the client stub, which defines them."""
    contract_names: set[str] = field(default_factory=set)
    """The contract's classes (dataclasses, enums, NewTypes, ...) this stub's own code
    spells; the services are imported in any case."""
    helpers: set[str] = field(default_factory=set)
    converters: dict[str, Converter] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    names: dict[str, object] = field(default_factory=dict)
    uses_callable: bool = False
    needs_none: bool = False
    uses_iterable: bool = False
    uses_chan: bool = False
    uses_builtins: bool = False
    in_class: frozenset[str] = frozenset()
    """Built-in type names that the current service's methods take (see `annotate`)."""
    abc_names: set[str] = field(default_factory=set)
    """What annotations spell from collections.abc (Callable and Iterable aside)."""
    std_names: dict[str, set[str]] = field(default_factory=lambda: {"typing": {"Any"}})
    """What this stub imports from standard-library modules (but collections.abc), by
    module: the classes and typing forms its annotations spell."""

    def helper(self, name: str) -> str:
        self.helpers.add(name)
        return name

    def fast_path(self) -> str:
        """The path a converter that retries passes its parts on its first attempt."""
        return self.helper(FAST)

    def spell(self, ref: TypeRef) -> str:
        """`ref` as this stub's annotations write it; notes what that makes it import."""
        for part in _spelled_parts(ref):
            if isinstance(part, Named | NewTypeOf):
                self.contract_names.add(part.name)
            if isinstance(part, Stdlib):
                self.std_names.setdefault(part.module, set()).add(part.name)
            elif isinstance(part, LiteralOf):
                self.std_names["typing"].add("Literal")
            elif isinstance(part, ListOf | DictOf) and part.abstract:
                self.abc_names.add("Sequence" if isinstance(part, ListOf) else "Mapping")
        return annotation(ref)

    def annotate(self, ref: TypeRef) -> str:
        """`ref` as the client class's method signatures write it: built-in names that the
        class's own methods take (a method ``list``) are spelled ``builtins.list``."""
        text = self.spell(ref)
        qualified = spell(ref, self.in_class)
        if qualified != text:
            self.uses_builtins = True
        return qualified

    def mangle(self, ref: TypeRef, hashed: bool = False) -> str:
        # The converter of a hashed value (see `fn`) is named apart: _dec_hashable_...
        base = f"hashable_{_mangle(ref)}" if hashed else _mangle(ref)
        owner: object = ("hashable", ref) if hashed else ref
        name = base
        counter = 1
        while self.names.setdefault(name, owner) != owner:
            counter += 1
            name = f"{base}_{counter}"
        return name

    def scalar_fn(self, ref: Scalar) -> str:
        if ref.name == "None":
            # check_none is typed as returning None, which mypy will not let a stub
            # use as a value; this wrapper returns Any.
            self.needs_none = True
            self.helper("check_none")
            return "_none"
        return self.helper(f"check_{ref.name}")

    def fn(self, ref: TypeRef, encode: bool, hashed: bool = False) -> str:
        """The name of a (value, path) function converting `ref` in this direction.

        `hashed`: the value decoded becomes a set item or a dict key (or part of one). Only
        a Decimal cares (Python cannot hash sNaN): a type holding one gets a converter of
        its own there, which refuses sNaN; every other type's converter is the same."""
        hashed = hashed and not encode and _holds_decimal(ref)
        if isinstance(ref, Scalar) and (ref.name != "None" or self.shared is None):
            return self.scalar_fn(ref)
        if isinstance(ref, Stdlib):
            if hashed:
                return self.helper("dec_decimal_key")
            return self.helper(f"{'enc' if encode else 'dec'}_{ref.name.lower()}")
        if isinstance(ref, NewTypeOf) and encode:
            return self.fn(ref.inner, True)  # a NewType's value is its underlying type's
        if self.shared is not None:
            name = self.shared.fn(ref, encode, hashed)
            self.from_shared.add(name)
            return name
        mangled = self.mangle(ref, hashed)
        name = f"_{'enc' if encode else 'dec'}_{mangled}"
        if name not in self.converters:
            # Placeholder first: recursive dataclasses refer to themselves.
            self.converters[name] = Converter(name, "")
            self.converters[name] = self.build(name, ref, encode, hashed)
        return name

    def call(self, ref: TypeRef, encode: bool, value: str, path: str, hashed: bool = False) -> str:
        fn = self.fn(ref, encode, hashed)
        if path == FAST and not fn.startswith("_"):
            # A runtime check never retries: it may as well name the real path (and the
            # line stays as long as it was before FAST_PATH, for black's sake).
            path = "path"
        return f"{fn}({value}, {path})"

    def in_line(self, ref: TypeRef, encode: bool, value: str, index: int, path: str) -> str:
        """A record field's conversion as an expression. A scalar already exactly of its
        type (nearly always) passes on a type test, with no call: a record's fields are
        the innermost loop of a stream's decoding. Anything else goes through the
        check_X call as before, so what is accepted and refused does not change."""
        exact = _exact_check(ref, "\0") if isinstance(ref, Scalar) and ref.name != "None" else None
        if exact is None:
            return self.call(ref, encode, value, path)
        var = f"_{index}"
        test = exact.replace("\0", f"{var} := {value}", 1).replace("\0", var)
        return f"{var} if {test} else {self.call(ref, encode, var, path)}"

    def build(self, name: str, ref: TypeRef, encode: bool, hashed: bool = False) -> Converter:
        returns = "Any" if encode else self.spell(ref)
        if isinstance(ref, ListOf | SetOf) or (isinstance(ref, TupleOf) and ref.variadic):
            item = ref.items[0] if isinstance(ref, TupleOf) else ref.item
            return self.sequence(name, ref, item, encode, returns, hashed)
        if isinstance(ref, TupleOf):
            return self.fixed_tuple(name, ref, encode, returns, hashed)
        if isinstance(ref, DictOf):
            return self.mapping(name, ref, encode, returns)
        if isinstance(ref, OptionalOf):
            return Converter(
                name,
                returns,
                fast=self.call(ref.inner, encode, "value", "path"),
                shortcut_cond="value is None",
                shortcut="None",
                encode=encode,
            )
        if isinstance(ref, LiteralOf):
            return self.literal(name, ref, encode, returns)
        if isinstance(ref, NewTypeOf):
            return Converter(
                name,
                returns,
                fast=f"{ref.name}({self.call(ref.inner, False, 'value', 'path', hashed)})",
                encode=False,
            )
        assert isinstance(ref, Named)
        if ref.kind == "enum":
            enum = self.contract.enums[key_of(ref)]
            table = None
            if encode:
                self.helper("fail")
            else:
                self.helper("bad_enum")
                table = f"_{self.mangle(ref)}_by_value"
                self.tables.append(
                    Table(
                        table,
                        f"dict[object, {ref.name}]",
                        f"{{member.value: member for member in {ref.name}}}",
                    )
                )
            return Converter(
                name,
                returns,
                enum=ref.name,
                enum_value_type=enum.value_type,
                table=table,
                encode=encode,
            )
        return self.record(name, ref, self.contract.dataclasses[key_of(ref)], encode, returns)

    def typed_dict(self, name: str, record: Dataclass, encode: bool, returns: str) -> Converter:
        return _typed_dict_converter(self, name, record, encode, returns)

    def literal(self, name: str, ref: LiteralOf, encode: bool, returns: str) -> Converter:
        # Keyed by (type, value) so that True is not taken for 1, nor 1.0 for 1.
        self.helper("bad_enum")
        table = f"_{self.mangle(ref)}_values"
        if table not in {t.name for t in self.tables}:
            entries = ", ".join(f"({kind}, {value!r}): {value!r}" for kind, value in ref.values)
            self.tables.append(
                Table(table, f"dict[tuple[object, object], {self.spell(ref)}]", f"{{{entries}}}")
            )
        kinds = sorted({kind for kind, _ in ref.values})
        return Converter(
            name,
            returns,
            literal_guard=" or ".join(f"type(value) is {kind}" for kind in kinds),
            table=table,
            literal_name=repr(ref.spelled),
            encode=encode,
        )

    def sequence(
        self, name: str, ref: TypeRef, item: TypeRef, encode: bool, returns: str, hashed: bool
    ) -> Converter:
        hashed = hashed or isinstance(ref, SetOf)  # a set's items, or a tuple that is hashed
        fast_item = self.call(item, encode, "item", self.fast_path(), hashed)
        precise = f"{self.helper('convert_items')}(items, path, {self.fn(item, encode, hashed)})"
        loop = "for item in items"
        if isinstance(ref, SetOf) and ref.frozen and not encode:
            fast, precise = f"frozenset([{fast_item} {loop}])", f"frozenset({precise})"
        elif isinstance(ref, SetOf) and not encode:
            fast, precise = f"{{{fast_item} {loop}}}", f"set({precise})"
        elif isinstance(ref, TupleOf) and not encode:
            fast, precise = f"tuple([{fast_item} {loop}])", f"tuple({precise})"
        else:
            fast = f"[{fast_item} {loop}]"
        if encode:
            if isinstance(ref, SetOf):
                check = f"items = {self.helper('check_set')}(value, path)"
            elif isinstance(ref, TupleOf):
                check = f"items = {self.helper('check_tuple')}(value, path, None)"
            elif isinstance(ref, ListOf) and ref.abstract:
                check = f"items = {self.helper('check_sequence')}(value, path)"
            else:
                check = f"items = {self.helper('check_list')}(value, path)"
        elif isinstance(ref, TupleOf):
            check = f"items = {self.helper('check_wire_tuple')}(value, path, None)"
        else:
            check = f"items = {self.helper('check_list')}(value, path)"
        shortcut_cond = shortcut = None
        exact = _exact_check(item, "item")
        if exact is not None:
            shortcut_cond = f"all({exact} {loop})"
            if isinstance(ref, ListOf):
                # A Sequence may be a tuple, which a codec need not take for a list.
                shortcut = "list(items)" if encode and ref.abstract else "items"
            elif isinstance(ref, SetOf):
                shortcut = (
                    "list(items)" if encode else "frozenset(items)" if ref.frozen else "set(items)"
                )
            else:
                shortcut = "list(items)" if encode else "tuple(items)"
        return Converter(
            name,
            returns,
            fast=fast,
            precise=precise,
            check=check,
            shortcut_cond=shortcut_cond,
            shortcut=shortcut,
            encode=encode,
        )

    def fixed_tuple(
        self, name: str, ref: TupleOf, encode: bool, returns: str, hashed: bool
    ) -> Converter:
        size = len(ref.items)
        checker = self.helper("check_tuple" if encode else "check_wire_tuple")
        check = f"{'items = ' if size else ''}{checker}(value, path, {size})"
        path = self.fast_path() if size else "path"
        fast_items = [
            self.call(item, encode, f"items[{i}]", path, hashed) for i, item in enumerate(ref.items)
        ]
        converts = (
            _tuple_display([self.fn(item, encode, hashed) for item in ref.items]) if size else ""
        )
        precise = f"{self.helper('convert_positions')}(items, path, {converts})"
        fast = f"[{', '.join(fast_items)}]" if encode else _tuple_display(fast_items)
        return Converter(
            name,
            returns,
            fast=fast,
            precise=(precise if encode else f"tuple({precise})") if size else None,
            check=check,
            encode=encode,
        )

    def mapping(self, name: str, ref: DictOf, encode: bool, returns: str) -> Converter:
        tuple_keys = _array_form(ref.key)
        path = self.fast_path()
        key_fast = self.call(ref.key, encode, "key", path, hashed=True)
        value_fast = self.call(ref.value, encode, "item", path)
        converts = f"{self.fn(ref.key, encode, hashed=True)}, {self.fn(ref.value, encode)}"
        shortcut_cond = shortcut = None
        if encode or not tuple_keys:
            checker = "check_mapping" if encode and ref.abstract else "check_dict"
            check = f"items = {self.helper(checker)}(value, path)"
            loop = "for key, item in items.items()"
            if tuple_keys:
                # msgpack cannot use an array as a map key: tuple-keyed dicts travel as
                # a list of [key, value] pairs (RFC-TCP_LITE section 7).
                fast = f"[[{key_fast}, {value_fast}] {loop}]"
                precise = f"{self.helper('convert_pairs')}(items, path, {converts})"
            else:
                fast = f"{{{key_fast}: {value_fast} {loop}}}"
                precise = f"{self.helper('convert_entries')}(items, path, {converts})"
                exact_key = _exact_check(ref.key, "key")
                exact_value = _exact_check(ref.value, "item")
                if exact_key is not None and exact_value is not None:
                    shortcut_cond = f"all({exact_key} and {exact_value} {loop})"
                    shortcut = "dict(items)" if encode and ref.abstract else "items"
        else:
            check = f"items = {self.helper('check_list')}(value, path)"
            pair = self.helper("check_wire_tuple")
            fast = (
                f"{{{key_fast}: {value_fast} for entry in items "
                f"for key, item in ({pair}(entry, path, 2),)}}"
            )
            precise = f"{self.helper('convert_wire_pairs')}(items, path, {converts})"
        return Converter(
            name,
            returns,
            fast=fast,
            precise=precise,
            check=check,
            shortcut_cond=shortcut_cond,
            shortcut=shortcut,
            encode=encode,
        )

    def record(
        self, name: str, ref: Named, record: Dataclass, encode: bool, returns: str
    ) -> Converter:
        if record.form == "typeddict":
            return self.typed_dict(name, record, encode, returns)
        cls = record.name
        total = len(record.fields)
        # (name, converter) of every field, in order: what the path-naming retry and the
        # decoding of a short record go through.
        table = f"_{self.mangle(ref)}_{'enc' if encode else 'dec'}_fields"
        if total:
            entries = ", ".join(f'("{f.name}", {self.fn(f.type, encode)})' for f in record.fields)
            self.uses_callable = True
            self.tables.append(
                Table(
                    table,
                    "tuple[tuple[str, Callable[[object, str], Any]], ...]",
                    f"({entries},)",
                )
            )
        path = self.fast_path() if total else "path"
        if encode:
            fast = [
                self.in_line(f.type, True, f"value.{f.name}", index, path)
                for index, f in enumerate(record.fields)
            ]
            return Converter(
                name,
                returns,
                fast=f"[{', '.join(fast)}]",
                precise=f"{self.helper('encode_fields')}(value, path, {table})" if total else None,
                guard_cond=f"not isinstance(value, {cls})",
                guard_fail=f'{self.helper("fail")}(path, "{cls}", value)',
                encode=True,
            )
        check = f'{self.helper("check_record")}(value, path, "{cls}", {record.required}, {total})'
        if total:
            # A full record passes on a test in line; check_record sees the rest (and a
            # short record, which the shortcut below then decodes).
            check = f"items = value if type(value) is list and len(value) == {total} else {check}"
        # By position: a dataclass's generated __init__ binds positional arguments about
        # twice as fast as keywords (unless a field is keyword-only).
        fast_args = [
            (f"{f.name}=" if record.keyword_only else "")
            + self.in_line(f.type, False, f"items[{i}]", i, path)
            for i, f in enumerate(record.fields)
        ]
        by_table = f"{cls}(**{self.helper('decode_fields')}(items, path, {table}))"
        shortcut_cond = shortcut = None
        if record.required < total:
            # An older peer may leave trailing defaulted fields out; rare, so this path
            # goes through the table instead of one more specialised branch.
            shortcut_cond = f"len(items) < {total}"
            shortcut = by_table
        return Converter(
            name,
            returns,
            fast=f"{cls}({', '.join(fast_args)})",
            precise=by_table if total else None,
            check=check,
            shortcut_cond=shortcut_cond,
            shortcut=shortcut,
            encode=False,
        )


def _spelled_parts(ref: TypeRef) -> list[TypeRef]:
    """The types an annotation of `ref` spells: a NewType is spelled by its name alone."""
    if isinstance(ref, NewTypeOf):
        return [ref]
    parts: list[TypeRef] = [ref]
    if isinstance(ref, ListOf | SetOf):
        parts += _spelled_parts(ref.item)
    elif isinstance(ref, DictOf):
        parts += _spelled_parts(ref.key) + _spelled_parts(ref.value)
    elif isinstance(ref, TupleOf):
        for item in ref.items:
            parts += _spelled_parts(item)
    elif isinstance(ref, OptionalOf):
        parts += _spelled_parts(ref.inner)
    elif isinstance(ref, Named):
        for arg in ref.args:
            parts += _spelled_parts(arg)
    return parts


def _typed_dict_converter(
    emitter: _Emitter, name: str, record: Dataclass, encode: bool, returns: str
) -> Converter:
    """A TypedDict: a map with its keys as str, converted key by key through a table."""
    table = f"_{emitter.mangle(Named(record.name, 'typeddict', record.module))}_" + (
        "enc_keys" if encode else "dec_keys"
    )
    entries = ", ".join(f'"{f.name}": {emitter.fn(f.type, encode)}' for f in record.fields)
    emitter.uses_callable = True
    emitter.tables.append(Table(table, "dict[str, Callable[[object, str], Any]]", f"{{{entries}}}"))
    required = [f'"{f.name}"' for f in record.fields if not f.has_default]
    check = (
        f"items = {emitter.helper('check_typed_dict')}(value, path, \"{record.name}\", "
        f"({', '.join(required)}{',' if len(required) == 1 else ''}), {table})"
    )
    loop = "for key, item in items.items()"
    path = emitter.fast_path() if record.fields else "path"
    fast = f"{{key: {table}[key](item, {path}) {loop}}}"
    precise = f"{emitter.helper('convert_keys')}(items, path, {table})"
    if not encode:
        # The dict built is the TypedDict: at run time one is a plain dict.
        emitter.std_names["typing"].add("cast")
        fast, precise = f"cast({record.name}, {fast})", f"cast({record.name}, {precise})"
    return Converter(
        name,
        returns,
        fast=fast,
        precise=precise if record.fields else None,
        check=check,
        encode=encode,
    )


def _holds_decimal(ref: TypeRef) -> bool:
    """Whether a hashable type holds a Decimal, which may be sNaN and then has no hash."""
    if isinstance(ref, Stdlib):
        return ref.name == "Decimal"
    if isinstance(ref, TupleOf):
        return any(_holds_decimal(item) for item in ref.items)
    if isinstance(ref, NewTypeOf):
        return _holds_decimal(ref.inner)
    return False


def _array_form(ref: TypeRef) -> bool:
    """Whether `ref` travels as an array, which msgpack cannot use as a map key."""
    if isinstance(ref, NewTypeOf):
        return _array_form(ref.inner)
    return isinstance(ref, TupleOf) or (isinstance(ref, Stdlib) and ref.name == "timedelta")


def _exact_check(ref: TypeRef, var: str) -> str | None:
    """A condition true when `var` already is its own wire form (and Python form)."""
    if isinstance(ref, NewTypeOf):
        return _exact_check(ref.inner, var)  # NewType(...) returns its argument itself
    if isinstance(ref, Scalar):
        if ref.name == "None":
            return f"{var} is None"
        if ref.name == "int":
            # The 64-bit range both codecs share (check_int refuses the rest).
            return f"type({var}) is int and -(2**63) <= {var} < 2**64"
        return f"type({var}) is {ref.name}"
    return None


def _mangle(ref: TypeRef) -> str:
    # Prefix notation with fixed arities, so distinct types get distinct names.
    if isinstance(ref, Named) and ref.args:
        return "_".join([ref.name, *(_mangle(arg) for arg in ref.args)])
    if isinstance(ref, Scalar | Stdlib | Named | NewTypeOf):
        return ref.name
    if isinstance(ref, LiteralOf):
        # Readable where the values allow; Emitter.mangle numbers any clash.
        return "_".join(["lit", *(_mangle_value(value) for _, value in ref.values)])
    if isinstance(ref, ListOf):
        return f"{'seq' if ref.abstract else 'list'}_{_mangle(ref.item)}"
    if isinstance(ref, SetOf):
        return f"{'fset' if ref.frozen else 'set'}_{_mangle(ref.item)}"
    if isinstance(ref, DictOf):
        return f"{'map' if ref.abstract else 'dict'}_{_mangle(ref.key)}_{_mangle(ref.value)}"
    if isinstance(ref, OptionalOf):
        return f"opt_{_mangle(ref.inner)}"
    if ref.variadic:
        return f"tuplev_{_mangle(ref.items[0])}"
    return "_".join([f"tuple{len(ref.items)}", *(_mangle(i) for i in ref.items)])


def _mangle_value(value: bool | int | str) -> str:
    if isinstance(value, str):
        return value if value.isidentifier() and value.isascii() else "s"
    return f"m{-value}" if value < 0 else str(value)


def annotation(ref: TypeRef) -> str:
    return spell(ref)


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def module_ref(module_file: Path, out_dir: Path) -> str:
    """What ``from X import ...`` must say in a stub in `out_dir` (see the module docstring)."""
    source = module_file.resolve()
    folder = source.parent
    parts = [] if source.name == "__init__.py" else [source.stem]
    if folder == out_dir.resolve():
        if (folder / "__init__.py").exists():
            return "." + ".".join(parts)
        return ".".join(parts)
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def _closure(contract: Contract) -> list[Named | NewTypeOf]:
    """Every dataclass, enum and NewType the services reach, in first-use order."""
    seen: dict[str, Named | NewTypeOf] = {}

    def visit(ref: TypeRef) -> None:
        for named in iter_types(ref):
            if not isinstance(named, Named | NewTypeOf):
                continue
            key = key_of(named)
            if key in seen:
                continue
            seen[key] = named
            if isinstance(named, Named) and named.kind != "enum":
                for item in contract.dataclasses[key].fields:
                    visit(item.type)

    for service in contract.services:
        for method in service.methods:
            for param in method.params:
                visit(param.type)
            visit(method.returns)
            if method.stream_param is not None:
                visit(method.stream_param.type)
            if method.stream_returns is not None:
                visit(method.stream_returns)
    return list(seen.values())


SCHEMA_VERSION = 1


def _schema(contract: Contract, service: Service) -> dict[str, object]:
    """The reflection schema of `service` (format: gopherpipe_runtime/reflection.py)."""
    types: dict[str, dict[str, object]] = {}

    def visit(ref: TypeRef) -> None:
        for part in iter_types(ref):
            if not isinstance(part, Named | NewTypeOf):
                continue
            name = spell(part)
            if name in types:
                continue
            if isinstance(part, NewTypeOf):
                types[name] = {"kind": "newtype", "type": spell(part.inner)}
                continue
            key = key_of(part)
            if part.kind == "enum":
                enum = contract.enums[key]
                types[name] = {
                    "kind": "enum",
                    "doc": enum.doc,
                    "members": [[member, value] for member, value in enum.members],
                }
                continue
            record = contract.dataclasses[key]
            fields: list[dict[str, object]] = []
            types[name] = {"kind": record.form, "doc": record.doc, "fields": fields}
            for item in record.fields:
                entry: dict[str, object] = {"name": item.name, "type": spell(item.type)}
                if item.has_default:
                    entry["default"] = item.default or ""
                fields.append(entry)
            for item in record.fields:
                visit(item.type)

    methods: list[dict[str, object]] = []
    for method in service.methods:
        params: list[dict[str, object]] = []
        for param in method.params:
            entry: dict[str, object] = {"name": param.name, "type": spell(param.type)}
            if param.default is not None:
                entry["default"] = param.default.text
            params.append(entry)
            visit(param.type)
        if method.stream_param is not None and method.stream_index is not None:
            stream = {"name": method.stream_param.name, "type": spell(method.stream_param.type)}
            params.insert(method.stream_index, {**stream, "stream": True})
            visit(method.stream_param.type)
        if method.stream_returns is not None:
            returns = spell(method.stream_returns)
            visit(method.stream_returns)
        else:
            returns = spell(method.returns)
            visit(method.returns)
        methods.append(
            {
                "name": method.name,
                "kind": method.kind.lower(),
                "params": params,
                "returns": returns,
                "idempotent": method.idempotent,
                "doc": method.doc,
            }
        )
    return {
        "version": SCHEMA_VERSION,
        "name": service.name,
        "doc": service.doc,
        "methods": methods,
        "types": types,
    }


@dataclass(frozen=True)
class StubContext:
    header: str
    source_name: str
    abc_names: tuple[str, ...]
    """What the stub imports from collections.abc."""
    std_imports: tuple[tuple[str, tuple[str, ...]], ...]
    """The other standard-library imports, (module, names)."""
    imports: tuple[tuple[str, tuple[str, ...]], ...]
    client_module: str
    """How the server stub imports the client stub (the rule for the contract module)."""
    client_names: tuple[str, ...]
    """What the server stub imports from the client stub: the converters it calls."""
    helpers: tuple[str, ...]
    uses_chan: bool
    uses_builtins: bool
    call_defaults: bool
    """A signature's default is a call (``timedelta(seconds=10)``): ruff's B008 is waived,
    only then, since an unused waiver is itself a finding (RUF100)."""
    needs_none: bool
    needs_invalid: bool
    tables: tuple[Table, ...]
    converters: tuple[Converter, ...]
    services: tuple[ServiceView, ...]

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class AioContext:
    """What the asyncio stub (``<stem>_aio.py``) template lays out."""

    header: str
    source_name: str
    abc_names: tuple[str, ...]
    std_imports: tuple[tuple[str, tuple[str, ...]], ...]
    imports: tuple[tuple[str, tuple[str, ...]], ...]
    client_module: str
    client_names: tuple[str, ...]
    """What it imports from the client stub: converters and the per-method functions."""
    server_package: bool
    """The server stub is imported relatively (``from . import x_server as ...``)."""
    server_stem: str
    server_alias: str
    helpers: tuple[str, ...]
    uses_builtins: bool
    call_defaults: bool
    services: tuple[AioServiceView, ...]

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _path_literal(text: str) -> str:
    # Paths embed user names only, which are identifiers: plain double quotes suffice.
    return f'"{text}"'


def _methods(service_name: str, method: Method, client: _Emitter, server: _Emitter) -> MethodView:
    params: list[ParamView] = []
    prefix = f"_{service_name}_{method.name}"
    for index, param in enumerate(method.params):
        path = _path_literal(f"{method.name}(): argument '{param.name}'")
        params.append(_param_view(param, index, path, client, server))
    signature = _signature(method, params, client)
    returns_none = isinstance(method.returns, Scalar) and method.returns.name == "None"
    result_path = _path_literal(f"{method.name}(): result")
    client_functions: list[FunctionView] = []
    server_functions: list[FunctionView] = []
    kind = method.kind
    encoded_args = f"[{', '.join(p.encode for p in params)}]"
    if method.stream_returns is None:
        # A result value: decoded by the client, encoded by the server.
        returns = client.annotate(method.returns)
        if returns_none:
            result_decode = f"{client.helper('check_none')}(value, {result_path})"
            result_encode = f"{server.helper('check_none')}(value, {result_path})"
        else:
            result_decode = client.call(method.returns, False, "value", result_path)
            result_encode = server.call(method.returns, True, "value", result_path)
        client_functions.append(
            FunctionView(f"{prefix}_result", returns, result_decode, returns_none)
        )
        server_functions.append(
            FunctionView(f"{prefix}_result", "Any", result_encode, returns_none)
        )
    else:
        item_type = client.annotate(method.stream_returns)
        returns = f"Chan[{item_type}]"
        returns_none = False
        client.uses_chan = True
        item_path = _path_literal(f"{method.name}(): item of the result stream")
        client_functions.append(
            _item_function(client, f"{prefix}_item_in", method.stream_returns, False, item_path)
        )
        server_functions.append(
            _item_function(server, f"{prefix}_item_out", method.stream_returns, True, item_path)
        )
        server.helper("no_result")
    if method.stream_param is not None:
        stream = method.stream_param
        client.uses_iterable = True
        item_path = _path_literal(f"{method.name}(): item of '{stream.name}'")
        client_functions.append(
            _item_function(client, f"{prefix}_item_out", stream.type, True, item_path)
        )
        server_functions.append(
            _item_function(server, f"{prefix}_item_in", stream.type, False, item_path)
        )
    client_call = _client_call(method, prefix, encoded_args)
    params_table = defaults_table = None
    if method.required < len(method.params):
        params_table = f"{prefix}_params"
        server.uses_callable = True
        entries = ", ".join(f"({p.decoder}, {p.path})" for p in params)
        server.tables.append(
            Table(
                params_table,
                "tuple[tuple[Callable[[object, str], Any], str], ...]",
                f"({entries},)",
            )
        )
        # A CALL that leaves trailing arguments out gets the contract's defaults, which
        # the client saw, not whatever the implementation's signature says. Defaults are
        # immutable literals, so one shared tuple serves every call.
        defaults_table = f"{prefix}_defaults"
        defaults: list[str] = []
        for view in params[method.required :]:
            # Python lets no parameter without a default follow one with a default.
            assert view.default is not None
            defaults.append(view.default)
            server.contract_names |= _names_in(view.default)
        server.tables.append(Table(defaults_table, "tuple[Any, ...]", _tuple_display(defaults)))
    server.helper("check_args")
    method_def = _method_def(method, prefix, "", "no_result")
    return MethodView(
        name=method.name,
        kind=kind,
        params=tuple(params),
        signature=signature,
        returns=returns,
        returns_none=returns_none,
        client_call=client_call,
        client_functions=tuple(client_functions),
        server_functions=tuple(server_functions),
        method_def=method_def,
        required=method.required,
        args_decoder=f"{prefix}_args",
        params_table=params_table,
        defaults_table=defaults_table,
        decoded_args=_tuple_display([p.decode for p in params]),
    )


def _client_call(method: Method, prefix: str, encoded_args: str) -> str:
    """The expression a client method evaluates: the same in the threaded and the asyncio
    client, whose bases (ClientBase, aio.AsyncClientBase) take the same arguments."""
    # The contract's @idempotent lets the runtime retry the call (gopherpipe_runtime.retry).
    retry = ", idempotent=True" if method.idempotent else ""
    kind = method.kind
    if kind == "UNARY":
        return f'self._gp_unary("{method.name}", {encoded_args}, {prefix}_result{retry})'
    if kind == "SERVER_STREAM":
        return f'self._gp_server_stream("{method.name}", {encoded_args}, {prefix}_item_in{retry})'
    assert method.stream_param is not None
    if kind == "CLIENT_STREAM":
        return (
            f'self._gp_client_stream("{method.name}", {encoded_args}, '
            f"{method.stream_param.name}, {prefix}_item_out, {prefix}_result{retry})"
        )
    return (
        f'self._gp_bidi("{method.name}", {encoded_args}, '
        f"{method.stream_param.name}, {prefix}_item_out, {prefix}_item_in{retry})"
    )


def _method_def(method: Method, prefix: str, module: str, no_result: str) -> str:
    """The MethodDef(...) a register function builds: the server stub's own functions,
    spelled ``module`` + name (the asyncio stub reaches them through the server stub).
    `no_result` is the result encoder (stream methods have none)."""
    parts = [
        f"MethodKind.{method.kind}",
        f"{module}{prefix}_args",
        f"impl.{method.name}",
        no_result if method.stream_returns is not None else f"{module}{prefix}_result",
    ]
    if method.stream_param is not None:
        parts += [f"stream_param={method.stream_index}", f"decode_item={module}{prefix}_item_in"]
    if method.stream_returns is not None:
        parts.append(f"encode_item={module}{prefix}_item_out")
    return f"MethodDef({', '.join(parts)})"


def _aio_method(service_name: str, method: Method, aio: _Emitter) -> AioMethodView:
    """One method of the asyncio stub. Its client encodes arguments with the expressions
    the threaded client uses (the same converters, imported from the client stub) and
    decodes with the client stub's per-method functions; its registration calls the
    server stub's (see the module docstring)."""
    prefix = f"_{service_name}_{method.name}"
    wire: list[tuple[str, str, str | None, bool]] = []
    encodes: list[str] = []
    for param in method.params:
        path = _path_literal(f"{method.name}(): argument '{param.name}'")
        if param.default is not None:
            for module, name in param.default.stdlib:
                aio.std_names.setdefault(module, set()).add(name)
        default = None if param.default is None else param.default.text
        wire.append((param.name, aio.annotate(param.type), default, param.positional_only))
        encodes.append(aio.call(param.type, True, param.name, path))
    if method.stream_param is not None:
        aio.abc_names |= {"AsyncIterator", "AsyncIterable", "Iterable"}
        aio.from_shared.add(f"{prefix}_item_out")
    returns_none = False
    if method.stream_returns is None:
        returns = aio.annotate(method.returns)
        returns_none = isinstance(method.returns, Scalar) and method.returns.name == "None"
        aio.from_shared.add(f"{prefix}_result")
        no_result = ""
    else:
        aio.abc_names.add("AsyncIterator")
        returns = f"AsyncIterator[{aio.annotate(method.stream_returns)}]"
        aio.from_shared.add(f"{prefix}_item_in")
        no_result = aio.helper("no_result")
    return AioMethodView(
        name=method.name,
        is_async=method.stream_returns is None,
        interface=_with_stream(method, wire, "AsyncIterator[{}]", aio),
        client=_with_stream(method, wire, "AsyncIterable[{}] | Iterable[{}]", aio),
        returns=returns,
        returns_none=returns_none,
        doc=_docstring(method.doc, "        ") if method.doc else None,
        client_call=_client_call(method, prefix, f"[{', '.join(encodes)}]"),
        method_def=_method_def(method, prefix, f"{AIO_SERVER}.", no_result),
    )


def _docstring(text: str, indent: str) -> str:
    """`text` as a triple-quoted literal whose later lines are indented by `indent`."""
    # A quote that ends the text would close the literal early: escape it apart. (Black
    # then adds a space after it in a one-line docstring, as in any: its only change.)
    tail = ""
    if text.endswith('"'):
        text, tail = text[:-1], '\\"'
    escaped = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') + tail
    escaped = "".join(
        f"\\x{ord(char):02x}" if ord(char) < 32 and char not in "\n\t" else char for char in escaped
    )
    lines = escaped.split("\n")
    body = "\n".join([lines[0], *(indent + line if line else "" for line in lines[1:])])
    if len(lines) > 1:
        body += "\n" + indent
    return f'"""{body}"""'


def _item_function(
    emitter: _Emitter, name: str, ref: TypeRef, encode: bool, path: str
) -> FunctionView:
    """One stream item's converter: (Python -> wire) if `encode`, else (wire -> Python)."""
    returns = "Any" if encode else emitter.spell(ref)
    if isinstance(ref, Scalar) and ref.name == "None":
        # Returning check_none's (or _none's) value would be returning Any (or None)
        # from a function typed None, which mypy --strict refuses.
        return FunctionView(name, returns, f"{emitter.helper('check_none')}(value, {path})", True)
    return FunctionView(name, returns, emitter.call(ref, encode, "value", path))


def _signature(
    method: Method, params: list[ParamView], client: _Emitter
) -> tuple[SignatureParam, ...]:
    """The client's parameters: the wire ones, with a Chan parameter put back in its place.

    A client may pass any iterable where the contract says Chan[T]: the annotation
    widens to Iterable[T], which still satisfies the abstract method.
    """
    spelled = [(p.name, p.annotation, p.default, p.positional_only) for p in params]
    return _with_stream(method, spelled, "Iterable[{}]", client)


def _with_stream(
    method: Method,
    spelled: list[tuple[str, str, str | None, bool]],
    stream_form: str,
    emitter: _Emitter,
) -> tuple[SignatureParam, ...]:
    """`spelled` (the wire parameters as (name, annotation, default, positional-only)),
    with the Chan parameter put back in its place, annotated `stream_form` of its item
    type, as SignatureParams."""
    if method.stream_param is not None and method.stream_index is not None:
        stream = method.stream_param
        item = emitter.annotate(stream.type)
        spelled = [*spelled]
        spelled.insert(
            method.stream_index,
            (stream.name, stream_form.format(item, item), None, stream.positional_only),
        )
    result = []
    for index, (name, spelled_type, default, positional_only) in enumerate(spelled):
        following = spelled[index + 1] if index + 1 < len(spelled) else None
        slash = positional_only and (following is None or not following[3])
        result.append(SignatureParam(name, spelled_type, default, slash))
    return tuple(result)


def _param_view(
    param: Param, index: int, path: str, client: _Emitter, server: _Emitter
) -> ParamView:
    if param.default is not None:
        for emitter in (client, server):
            for module, name in param.default.stdlib:
                emitter.std_names.setdefault(module, set()).add(name)
    return ParamView(
        name=param.name,
        annotation=client.annotate(param.type),
        default=None if param.default is None else param.default.text,
        positional_only=param.positional_only,
        encode=client.call(param.type, True, param.name, path),
        decode=server.call(param.type, False, f"args[{index}]", path),
        decoder=server.fn(param.type, False),
        path=path,
    )


def _names_in(expression: str) -> set[str]:
    """The names a default's source text refers to (``Mode`` in ``Mode.FAST``)."""
    return {
        node.id
        for node in ast.walk(ast.parse(expression, mode="eval"))
        if isinstance(node, ast.Name)
    }


def _has_call(expression: str) -> bool:
    return any(isinstance(node, ast.Call) for node in ast.walk(ast.parse(expression, mode="eval")))


def _tuple_display(parts: list[str]) -> str:
    if len(parts) == 1:
        return f"({parts[0]},)"
    return f"({', '.join(parts)})"


def compile_contract(
    contract: Contract, out_dir: Path, asyncio: bool = False
) -> tuple[StubContext, StubContext, AioContext | None]:
    """The (client, server, asyncio) template contexts for one contract; the asyncio one
    only if asked for (``gen --asyncio``)."""
    client = _Emitter(contract)
    server = _Emitter(contract, shared=client)
    # The asyncio stub defines no converter: like the server stub, it imports them.
    aio = _Emitter(contract, shared=client, std_names={"typing": set()})
    services: list[ServiceView] = []
    aio_services: list[AioServiceView] = []
    for service in contract.services:
        client.in_class = frozenset(m.name for m in service.methods) & BUILTIN_TYPES
        methods = tuple(_methods(service.name, m, client, server) for m in service.methods)
        client.in_class = frozenset()
        services.append(
            ServiceView(
                service.name,
                f"{service.name}Client",
                f"register_{snake_case(service.name)}",
                methods,
                f"_{service.name}_schema",
                repr(_schema(contract, service)),
            )
        )
        if asyncio:
            aio.in_class = frozenset(m.name for m in service.methods) & BUILTIN_TYPES
            aio_methods = tuple(_aio_method(service.name, m, aio) for m in service.methods)
            aio.in_class = frozenset()
            doc = service.doc or (
                f"{service.name} on asyncio: implementations subclass it, "
                f"{service.name}AsyncClient calls one."
            )
            aio_services.append(
                AioServiceView(
                    service.name,
                    f"{service.name}Async",
                    f"{service.name}AsyncClient",
                    f"register_{snake_case(service.name)}_async",
                    _docstring(doc, "    "),
                    aio_methods,
                    f"{AIO_SERVER}._{service.name}_schema",
                )
            )
    _check_names(contract, asyncio)
    contract_module = module_ref(contract.path, out_dir)
    client_module = module_ref(out_dir / f"{contract.path.stem}_client.py", out_dir)
    source_name = contract.path.name
    header = f"# Generated by gopherpipe gen from {source_name}. DO NOT EDIT."
    call_defaults = any(
        p.default is not None and _has_call(p.default.text)
        for service in contract.services
        for m in service.methods
        for p in m.params
    )

    def imports(emitter: _Emitter) -> tuple[tuple[str, tuple[str, ...]], ...]:
        # The client stub defines every converter, so it uses every class they reach;
        # the server stub, only the services and what its own code spells; the asyncio
        # stub, only what it spells (its interfaces are its own classes).
        by_module: dict[str, set[str]] = {}
        if emitter is not aio:
            by_module[contract_module] = {s.name for s in contract.services}
        for named in _closure(contract):
            if emitter.shared is None or named.name in emitter.contract_names:
                by_module.setdefault(module_ref(named.module, out_dir), set()).add(named.name)
        for module_file, name in _default_imports(contract):
            # Every stub spells defaults: the clients' signatures (and the asyncio
            # interface's) and the server's table refer to the contract's own constant
            # or class (see defaults.py).
            by_module.setdefault(module_ref(module_file, out_dir), set()).add(name)
        return tuple((module, tuple(sorted(names))) for module, names in sorted(by_module.items()))

    def abc_imports(emitter: _Emitter) -> tuple[str, ...]:
        abc_names = set(emitter.abc_names)
        if emitter.uses_callable:
            abc_names.add("Callable")
        if emitter.uses_iterable:
            abc_names.add("Iterable")
        return tuple(sorted(abc_names))

    def std_imports(emitter: _Emitter) -> tuple[tuple[str, tuple[str, ...]], ...]:
        std = emitter.std_names
        return tuple((module, tuple(sorted(std[module]))) for module in sorted(std) if std[module])

    def context(emitter: _Emitter) -> StubContext:
        return StubContext(
            header=header,
            source_name=source_name,
            abc_names=abc_imports(emitter),
            std_imports=std_imports(emitter),
            imports=imports(emitter),
            client_module=client_module,
            client_names=tuple(sorted(emitter.from_shared)),
            helpers=tuple(sorted(emitter.helpers)),
            uses_chan=emitter.uses_chan,
            uses_builtins=emitter.uses_builtins,
            call_defaults=emitter.shared is None and call_defaults,
            needs_none=emitter.needs_none,
            needs_invalid=any(c.precise for c in emitter.converters.values()),
            tables=tuple(emitter.tables),
            converters=tuple(emitter.converters.values()),
            services=tuple(services),
        )

    emitters = (client, server, aio) if asyncio else (client, server)
    imported = {name for emitter in emitters for names in emitter.std_names.values()
                for name in names} | {name for e in emitters for name in e.abc_names}  # fmt: skip
    own = _declared(contract) | {named.name for named in _closure(contract)}
    own |= {name for _, name in _default_imports(contract)}
    clashes = imported & own
    if clashes:
        raise SpecErrors(
            [
                SpecError(
                    contract.path,
                    1,
                    1,
                    f"the contract's class {name!r} has the name of the standard library's "
                    f"{name}, which the stubs import too: rename the class",
                )
                for name in sorted(clashes)
            ]
        )
    aio_context = None
    if asyncio:
        server_module = module_ref(out_dir / f"{contract.path.stem}_server.py", out_dir)
        aio_context = AioContext(
            header=header,
            source_name=source_name,
            abc_names=abc_imports(aio),
            std_imports=std_imports(aio),
            imports=imports(aio),
            client_module=client_module,
            client_names=tuple(sorted(aio.from_shared)),
            server_package=server_module.startswith("."),
            server_stem=server_module.lstrip("."),
            server_alias=AIO_SERVER,
            helpers=tuple(sorted(aio.helpers)),
            uses_builtins=aio.uses_builtins,
            call_defaults=call_defaults,
            services=tuple(aio_services),
        )
    return context(client), context(server), aio_context


def _default_imports(contract: Contract) -> list[tuple[Path, str]]:
    """The contract's constants and classes that parameter defaults name, in order."""
    found: dict[tuple[Path, str], None] = {}
    for service in contract.services:
        for method in service.methods:
            for param in method.params:
                if param.default is not None:
                    found.update(dict.fromkeys(param.default.imports))
    return list(found)


def _declared(contract: Contract) -> set[str]:
    return {d.name for d in contract.dataclasses.values()} | {
        e.name for e in contract.enums.values()
    }


def _check_names(contract: Contract, asyncio: bool = False) -> None:
    """Generated names must not collide with the contract's own."""
    declared = _declared(contract)
    stub_names = STUB_NAMES | AIO_STUB_NAMES if asyncio else STUB_NAMES
    errors = [
        SpecError(
            contract.path,
            1,
            1,
            f"the name {name!r} is used by the generated stubs: rename the contract's class",
        )
        for name in sorted((declared | {s.name for s in contract.services}) & stub_names)
    ]
    constants = {name for _, name in _default_imports(contract)} - declared
    errors += [
        SpecError(
            contract.path,
            1,
            1,
            f"a default names the constant {name!r}, a name the generated stubs use "
            "themselves: rename the constant",
        )
        for name in sorted(constants)
        if name in STUB_NAMES or name.startswith(("check_", "enc_", "dec_", "_gp_"))
    ]
    modules_by_name: dict[str, set[Path]] = {}
    for named in _closure(contract):
        modules_by_name.setdefault(named.name, set()).add(named.module)
    for module_file, name in _default_imports(contract):
        modules_by_name.setdefault(name, set()).add(module_file)
    errors += [
        SpecError(
            contract.path,
            1,
            1,
            f"two different classes named {name!r} are used (from {len(modules)} modules): "
            "the stubs import both by name, so rename one",
        )
        for name, modules in sorted(modules_by_name.items())
        if len(modules) > 1
    ]
    errors += [
        SpecError(
            contract.path,
            1,
            1,
            f"class {service.name}Client would clash with the generated client of "
            f"{service.name}: rename one of them",
        )
        for service in contract.services
        if f"{service.name}Client" in declared
    ]
    if asyncio:
        # The asyncio stub imports the contract's classes beside its own: XAsync and
        # XAsyncClient must be none of them.
        taken = declared | {named.name for named in _closure(contract)}
        taken |= {name for _, name in _default_imports(contract)}
        errors += [
            SpecError(
                contract.path,
                1,
                1,
                f"class {generated} would clash with the generated asyncio stub of "
                f"{service.name}: rename one of them",
            )
            for service in contract.services
            for generated in (f"{service.name}Async", f"{service.name}AsyncClient")
            if generated in taken
        ]
    if errors:
        raise SpecErrors(errors)

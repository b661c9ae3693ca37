"""The contract as plain data: what `parse` reads from a service file and `compiler` renders.

Everything here is a frozen dataclass so a parsed contract can be compared, hashed
(type references are used as dictionary keys to share one converter per distinct
type) and never mutated by a later stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

SCALARS = ("None", "bool", "int", "float", "str", "bytes")
ScalarName = Literal["None", "bool", "int", "float", "str", "bytes"]
# The wire's int range (msgpack's), enforced at run time on both sides: an int in the
# contract outside it could never travel, so gen refuses it.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
INT_RANGE = "-2**63..2**64-1"


@dataclass(frozen=True)
class Scalar:
    name: ScalarName


STDLIB_TYPES: dict[str, str] = {
    "datetime": "datetime",
    "date": "datetime",
    "time": "datetime",
    "timedelta": "datetime",
    "Decimal": "decimal",
    "UUID": "uuid",
}
"""The standard-library value types a contract may use, by class name -> module."""
StdlibName = Literal["datetime", "date", "time", "timedelta", "Decimal", "UUID"]


@dataclass(frozen=True)
class Stdlib:
    """A standard-library value type: a canonical string on the wire, or for timedelta
    three ints (RFC-TCP_LITE section 7); the runtime has one converter per direction."""

    name: StdlibName

    @property
    def module(self) -> str:
        return STDLIB_TYPES[self.name]


LiteralValue = bool | int | str


@dataclass(frozen=True)
class LiteralOf:
    """``Literal[...]``: the value itself travels, checked against `values` on both sides."""

    values: tuple[tuple[Literal["bool", "int", "str"], LiteralValue], ...]
    """(kind, value) pairs: with the kind, ``Literal[True]`` and ``Literal[1]`` stay
    distinct types (True == 1 would otherwise make them share one converter)."""

    @property
    def spelled(self) -> str:
        return f"Literal[{', '.join(repr(value) for _, value in self.values)}]"


@dataclass(frozen=True)
class ListOf:
    item: TypeRef
    abstract: bool = False
    """``Sequence[T]``: any sequence is sent (a tuple too), a list comes back."""


@dataclass(frozen=True)
class SetOf:
    item: TypeRef
    frozen: bool = False
    """``frozenset[T]``: comes back as a frozenset."""


@dataclass(frozen=True)
class DictOf:
    key: TypeRef
    value: TypeRef
    abstract: bool = False
    """``Mapping[K, V]``: any mapping is sent, a dict comes back."""


@dataclass(frozen=True)
class TupleOf:
    items: tuple[TypeRef, ...]
    """The item types; for ``tuple[T, ...]`` the single item type."""
    variadic: bool = False


@dataclass(frozen=True)
class OptionalOf:
    inner: TypeRef


NamedKind = Literal["dataclass", "enum", "namedtuple", "typeddict"]
RecordForm = Literal["dataclass", "namedtuple", "typeddict"]


@dataclass(frozen=True)
class Named:
    """A dataclass, enum, NamedTuple or TypedDict, by the name it is declared under in
    `module`. All but enums are records, in `Contract.dataclasses`."""

    name: str
    kind: NamedKind
    module: Path
    """The file the class is declared in (resolved), so stubs can import it from there."""
    args: tuple[TypeRef, ...] = ()
    """A generic dataclass's type arguments (``Page[User]``): each use with other
    arguments is a record of its own, its fields' type variables replaced."""


@dataclass(frozen=True)
class NewTypeOf:
    """``UserId = NewType("UserId", int)``: `inner`'s wire form; the stubs annotate with
    the NewType itself, imported from `module` like a dataclass."""

    name: str
    module: Path
    inner: TypeRef


TypeRef = (
    Scalar | Stdlib | LiteralOf | ListOf | SetOf | DictOf | TupleOf | OptionalOf | Named | NewTypeOf
)


@dataclass(frozen=True)
class Default:
    """A parameter's default as the stubs write it: the contract's own expression,
    referring to the contract's own objects (never a copy of a constant's value)."""

    text: str
    """The expression, each name spelled as the stubs import it (an aliased import's
    original name: ``Color.RED`` for ``C.RED``, ``UUID(...)`` for ``UID(...)``)."""
    imports: tuple[tuple[Path, str], ...] = ()
    """(module file, name) of the contract's constants and classes that `text` names."""
    stdlib: tuple[tuple[str, str], ...] = ()
    """(module, name) of the standard-library classes `text` calls."""


@dataclass(frozen=True)
class Param:
    name: str
    type: TypeRef
    default: Default | None = None
    positional_only: bool = False


@dataclass(frozen=True)
class Method:
    """`params` are the arguments that travel in the CALL frame. A Chan parameter
    does not: it is `stream_param` (typed by its item type) at `stream_index` among
    all parameters. `stream_returns` is the item type of a Chan result (`returns`
    is then None's type). Together they decide the MethodKind."""

    name: str
    params: tuple[Param, ...]
    returns: TypeRef
    stream_param: Param | None = None
    stream_returns: TypeRef | None = None
    stream_index: int | None = None
    idempotent: bool = False
    """Marked ``@idempotent`` in the contract: the client may retry its calls."""
    doc: str = field(default="", compare=False)
    """The method's docstring (cleaned), for the reflection schema."""

    @property
    def kind(self) -> str:
        if self.stream_param is not None:
            return "BIDI" if self.stream_returns is not None else "CLIENT_STREAM"
        return "SERVER_STREAM" if self.stream_returns is not None else "UNARY"

    @property
    def required(self) -> int:
        """How many leading parameters a call must send (the rest have defaults)."""
        return sum(1 for p in self.params if p.default is None)


@dataclass(frozen=True)
class Service:
    name: str
    methods: tuple[Method, ...]
    doc: str = field(default="", compare=False)


@dataclass(frozen=True)
class Field:
    name: str
    type: TypeRef
    has_default: bool
    """For a TypedDict: whether the key may be left out (total=False, NotRequired)."""
    default: str | None = field(default=None, compare=False)
    """The default's source text (``Mood.HAPPY``, ``field(default_factory=list)``), for
    the reflection schema; None without one."""


@dataclass(frozen=True)
class Dataclass:
    """A record: a dataclass or NamedTuple (an array of its fields on the wire) or a
    TypedDict (a map with str keys)."""

    name: str
    module: Path
    fields: tuple[Field, ...]
    form: RecordForm = "dataclass"
    keyword_only: bool = False
    """Some field is keyword-only in ``__init__`` (``kw_only``), so decoders construct
    the record by keyword rather than by position."""
    doc: str = field(default="", compare=False)

    @property
    def required(self) -> int:
        """Fields a wire record must carry: up to the last one without a default."""
        last = 0
        for index, item in enumerate(self.fields):
            if not item.has_default:
                last = index + 1
        return last


@dataclass(frozen=True)
class EnumDef:
    name: str
    module: Path
    members: tuple[tuple[str, int | str], ...]
    value_type: Literal["int", "str"]
    doc: str = field(default="", compare=False)


@dataclass(frozen=True)
class Contract:
    path: Path
    """The contract file as the user named it (relative paths stay relative)."""
    services: tuple[Service, ...]
    dataclasses: dict[str, Dataclass] = field(default_factory=dict, hash=False)
    """Every dataclass reachable from the services, keyed by (module, name) string."""
    enums: dict[str, EnumDef] = field(default_factory=dict, hash=False)
    positions: dict[str, tuple[Path, int, int]] = field(
        default_factory=dict, hash=False, compare=False
    )
    """Where each part is declared, (file as displayed, line, column), 1-based, for
    tools that point at a part (`breaking`); keys are `position_key`'s. Not compared:
    moving a declaration changes nothing on the wire."""


def key_of(ref: Named | NewTypeOf) -> str:
    """The lookup key of a named type in `Contract.dataclasses` / `Contract.enums`."""
    if isinstance(ref, Named) and ref.args:
        return f"{ref.module}:{ref.name}{list(ref.args)!r}"
    return f"{ref.module}:{ref.name}"


def position_key(*parts: str) -> str:
    """A key of `Contract.positions`: a service ``("Svc",)``, a method ``("Svc", "m")``,
    its parameter ``("Svc", "m", "p")`` or result ``("Svc", "m", "->")``; a record or
    Enum ``(key_of(ref),)``, its field or member ``(key_of(ref), "name")``."""
    return "\x00".join(parts)

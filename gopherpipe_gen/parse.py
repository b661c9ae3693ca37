"""Read a contract file with libcst and build the `model`, collecting every SpecError.

The user's file is never imported or executed: a contract may import things that are
not installed where stubs are generated, and generating code must not run code.

Names are resolved the way Python would for a flat module: a type name is a class
declared at the top level of the contract, or a name brought in with
``from .models import X`` / ``from models import X`` where ``models.py`` sits next to
the contract (each leading dot beyond the first goes one folder up). Such modules are
parsed the same way, never imported. The standard library's value types are known by
where they come from (``from datetime import date``, or ``import datetime`` and
``datetime.date``), never by looking for ``datetime.py``.

Streams: a name is gopherpipe_runtime's ``Chan`` by where it comes from (``from
gopherpipe_runtime import Chan [as X]`` or ``gopherpipe_runtime.Chan``), not by its
spelling, since the stubs annotate with the runtime's class and a look-alike would
not type-check against the contract. ``@idempotent`` is recognised the same way
(``from gopherpipe_runtime import idempotent [as X]``, ``import gopherpipe_runtime
[as gp]`` then ``@gp.idempotent``); it may mark an RPC method only, and the contract
file is searched for it anywhere else (`idempotent_elsewhere`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from .defaults import DefaultReader
from .errors import SpecError, SpecErrors
from .model import (
    INT_MAX,
    INT_MIN,
    INT_RANGE,
    SCALARS,
    STDLIB_TYPES,
    Contract,
    Dataclass,
    Default,
    DictOf,
    EnumDef,
    Field,
    ListOf,
    LiteralOf,
    LiteralValue,
    Method,
    Named,
    NamedKind,
    NewTypeOf,
    OptionalOf,
    Param,
    Scalar,
    ScalarName,
    Service,
    SetOf,
    Stdlib,
    StdlibName,
    TupleOf,
    TypeRef,
    key_of,
    position_key,
)

TYPE_HELP = (
    "use None, bool, int, float, str, bytes, list[T], dict[K, V], tuple[...], set[T], "
    "frozenset[T], Sequence[T], Mapping[K, V], Literal[...], "
    "T | None, datetime, date, time, timedelta, Decimal, UUID, a dataclass, Enum, "
    "NamedTuple or TypedDict declared in the contract, or a type alias or NewType of those"
)
STDLIB_MODULES = frozenset(STDLIB_TYPES.values())
STDLIB_HELP = (
    "datetime, date, time and timedelta (from datetime), Decimal (from decimal) "
    "and UUID (from uuid)"
)
CHAN_NESTED = (
    "Chan[T] cannot be nested in another type: a stream is the whole annotation of one "
    "parameter (x: Chan[T], a client stream) or of the return value (-> Chan[T], a server "
    "stream); to send a batch as one value, write list[T]"
)
CHAN_OPTIONAL = (
    "a stream cannot be optional: write Chan[T] without None (a stream closed at once "
    "stands for 'no items')"
)
CHAN_IMPORT = "from gopherpipe_runtime import Chan"
IDEMPOTENT_IMPORT = "from gopherpipe_runtime import idempotent"
CHAN_OF_CHAN = (
    "Chan[Chan[T]] is not supported: a stream's items are values; write Chan[T] with a "
    "non-Chan item type, e.g. Chan[list[T]]"
)
# ClientBase owns these attribute names; an RPC method with one of them would hide it.
RESERVED_METHODS = frozenset({"dial", "with_options", "close", "pipe"})
# The generated client methods call these helpers by name, so a parameter may not shadow them.
RESERVED_PARAMS = frozenset(
    {
        "fail",
        "bad_enum",
        "check_none",
        "check_bool",
        "check_int",
        "check_float",
        "check_str",
        "check_bytes",
        "check_list",
        "check_tuple",
        "check_wire_tuple",
        "check_set",
        "check_dict",
        "check_record",
        "check_args",
        "check_sequence",
        "check_mapping",
        "check_typed_dict",
        *(f"{way}_{name.lower()}" for way in ("enc", "dec") for name in STDLIB_TYPES),
    }
)
TYPING_ALIASES = {"List": "list", "Dict": "dict", "Tuple": "tuple", "Set": "set"}
# The generic forms, by where they come from (`origin`): a `Sequence` or `Literal` from
# another module is not one, whatever its last name.
TYPING_MODULES = ("typing", "typing_extensions")
FORM_HOMES = {
    **{name: ("collections.abc", *TYPING_MODULES) for name in ("Sequence", "Mapping")},
    **{name: TYPING_MODULES for name in ("Literal", "Optional", "Union")},
    **{name: ("typing",) for name in TYPING_ALIASES},
    **{name: ("builtins",) for name in ("list", "dict", "set", "frozenset", "tuple")},
}
FORMS = {f"{home}.{name}": name for name, homes in FORM_HOMES.items() for home in homes}
# Forms that name code rather than data: what to send instead says more than "unsupported".
_FUNCTION_HELP = (
    "a function cannot cross the wire, only data: send a value that says what to do "
    "(an Enum or Literal naming the operation, or a dataclass with its parameters), or "
    "make it a method of the service"
)
_CLASS_HELP = (
    "a class object cannot cross the wire, only values: send an Enum or Literal naming "
    "the kind, and map it to the class on each side"
)
NOT_DATA = {
    "collections.abc.Callable": _FUNCTION_HELP,
    "typing.Callable": _FUNCTION_HELP,
    "builtins.type": _CLASS_HELP,
    "typing.Type": _CLASS_HELP,
}
ENUM_BASES = frozenset({"Enum", "IntEnum", "StrEnum"})
FUNCTIONAL_RECORDS = frozenset({"NamedTuple", "TypedDict", "namedtuple"})


class _Invalid(Exception):
    """Raised inside the parser to abandon one construct after its error is recorded."""


def _tail_name(node: cst.BaseExpression) -> str | None:
    """`X` for ``X`` and ``mod.X``: contracts may spell ``abc.ABC`` or ``ABC``."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return None


def _decorator_name(decorator: cst.Decorator) -> str | None:
    node = decorator.decorator
    if isinstance(node, cst.Call):
        node = node.func
    return _tail_name(node)


_Runtime = Literal["runtime", "lookalike", "other"]


def _is_docstring_or_filler(statement: cst.BaseStatement | cst.BaseSmallStatement) -> bool:
    smalls: Sequence[cst.BaseSmallStatement]
    if isinstance(statement, cst.SimpleStatementLine):
        smalls = statement.body
    elif isinstance(statement, cst.BaseSmallStatement):
        smalls = [statement]
    else:
        return False
    for small in smalls:
        if isinstance(small, cst.Pass):
            continue
        if isinstance(small, cst.Expr) and isinstance(
            small.value, cst.SimpleString | cst.ConcatenatedString | cst.Ellipsis
        ):
            continue
        return False
    return True


@dataclass
class _Module:
    display: Path
    resolved: Path
    module: cst.Module
    positions: dict[cst.CSTNode, CodeRange]
    classes: dict[str, cst.ClassDef]
    imports: dict[str, tuple[str, int, str, cst.CSTNode]]
    """local name -> (module name, leading dots, name in that module, node)."""
    module_imports: dict[str, str] = field(default_factory=dict)
    """local name -> module, for ``import datetime`` / ``import datetime as dt``."""
    bindings: dict[str, cst.Assign | cst.AnnAssign | cst.TypeAlias] = field(default_factory=dict)
    """Top-level assignments by name: type aliases and NewTypes (or plain variables)."""


class _Parser:
    def __init__(self, contract: Path) -> None:
        self.path = contract
        self.errors: list[SpecError] = []
        self.modules: dict[Path, _Module] = {}
        self.dataclasses: dict[str, Dataclass] = {}
        self.enums: dict[str, EnumDef] = {}
        self.in_progress: set[str] = set()
        self.refused: set[str] = set()
        self.env: list[dict[str, TypeRef]] = []
        """The type arguments of the generic dataclass being read, innermost last."""
        """Declared types whose own error is already reported (no follow-on errors)."""
        self.aliases: dict[str, TypeRef | None] = {}
        """Type aliases and NewTypes read so far, by (module, name); None if broken."""
        self.anchor: list[cst.CSTNode] = []
        """Nodes whose position stands in for nodes that have none (inside a string type)."""
        self.chan_context: list[str] = []
        """The dataclass fields being read, innermost last, so a Chan in one is
        reported as a field's problem wherever the dataclass is used."""
        self.defaults = DefaultReader(self)
        self.default_uses: list[tuple[_Module, cst.CSTNode, Default]] = []
        """Parameter defaults read so far, to check their names against method names."""
        self.positions: dict[str, tuple[Path, int, int]] = {}
        """`Contract.positions`, noted as parts are read."""

    # -- errors -------------------------------------------------------------------------

    def error(self, mod: _Module, node: cst.CSTNode, message: str) -> None:
        where = mod.positions.get(node)
        if where is None and self.anchor:
            where = mod.positions.get(self.anchor[-1])
        line, column = (where.start.line, where.start.column + 1) if where else (1, 1)
        self.errors.append(SpecError(mod.display, line, column, message))

    def mark(self, mod: _Module, node: cst.CSTNode, *key: str) -> None:
        """Note where the part `key` (see `position_key`) is declared."""
        where = mod.positions.get(node)
        if where is not None:
            self.positions[position_key(*key)] = (
                mod.display,
                where.start.line,
                where.start.column + 1,
            )

    def mark_class(self, mod: _Module, cls: cst.ClassDef) -> None:
        """Note where a record or Enum declared as `cls` in `mod` and its fields or members are."""
        key = f"{mod.resolved}:{cls.name.value}"
        self.mark(mod, cls.name, key)
        for statement in cls.body.body:
            if not isinstance(statement, cst.SimpleStatementLine):
                continue
            for small in statement.body:
                if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                    self.mark(mod, small.target, key, small.target.value)
                elif isinstance(small, cst.Assign) and isinstance(
                    small.targets[0].target, cst.Name
                ):
                    self.mark(mod, small.targets[0].target, key, small.targets[0].target.value)

    def fail(self, mod: _Module, node: cst.CSTNode, message: str) -> _Invalid:
        self.error(mod, node, message)
        return _Invalid()

    # -- modules ------------------------------------------------------------------------

    def load(self, display: Path, at: tuple[_Module, cst.CSTNode] | None = None) -> _Module:
        resolved = display.resolve()
        if resolved in self.modules:
            return self.modules[resolved]
        try:
            source = display.read_bytes()
        except OSError as exc:
            if at is None:
                self.errors.append(SpecError(display, 1, 1, f"cannot read file: {exc.strerror}"))
            else:
                self.error(*at, f"cannot read {display}: {exc.strerror}")
            raise _Invalid() from None
        try:
            tree = cst.parse_module(source)
        except cst.ParserSyntaxError as exc:
            # libcst's message lists every token it expected: too long to help.
            self.errors.append(
                SpecError(
                    display,
                    exc.editor_line,
                    exc.editor_column,
                    "invalid Python syntax: the contract must be a module Python can parse",
                )
            )
            raise _Invalid() from None
        wrapper = MetadataWrapper(tree, unsafe_skip_copy=True)
        positions = dict(wrapper.resolve(PositionProvider))
        mod = _Module(display, resolved, wrapper.module, positions, {}, {})
        for statement in wrapper.module.body:
            if isinstance(statement, cst.ClassDef):
                mod.classes[statement.name.value] = statement
            elif isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    self.binding(mod, small)
                    if isinstance(small, cst.Import):
                        for alias in small.names:
                            dotted = mod.module.code_for_node(alias.name)
                            if alias.asname is not None:
                                local = _tail_name(alias.asname.name) or dotted
                                mod.module_imports[local] = dotted
                            else:
                                head = dotted.split(".")[0]
                                mod.module_imports[head] = head
                    if isinstance(small, cst.ImportFrom) and not isinstance(
                        small.names, cst.ImportStar
                    ):
                        source_name = mod.module.code_for_node(small.module) if small.module else ""
                        for alias in small.names:
                            original = mod.module.code_for_node(alias.name)
                            local = (
                                _tail_name(alias.asname.name) if alias.asname else original
                            ) or original
                            mod.imports[local] = (source_name, len(small.relative), original, alias)
        self.modules[resolved] = mod
        return mod

    def binding(self, mod: _Module, small: cst.BaseSmallStatement) -> None:
        """Note a top-level ``X = ...``, ``X: T = ...`` or ``type X = ...`` of `mod`."""
        if isinstance(small, cst.Assign):
            if len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
                mod.bindings[small.targets[0].target.value] = small
        elif isinstance(small, cst.AnnAssign):
            if isinstance(small.target, cst.Name):
                mod.bindings[small.target.value] = small
        elif isinstance(small, cst.TypeAlias):
            mod.bindings[small.name.value] = small
            if sys.version_info < (3, 12):
                # libcst reads it, but the Python running here could not import the file.
                name = small.name.value
                self.error(
                    mod,
                    small,
                    f"'type {name} = ...' needs Python 3.12 and this is Python "
                    f"{sys.version_info.major}.{sys.version_info.minor}: write "
                    f"{name}: TypeAlias = {mod.module.code_for_node(small.value)} "
                    "(from typing import TypeAlias)",
                )

    def module_file(self, mod: _Module, source: str, dots: int) -> Path:
        """Where ``from <dots><source> import ...`` points, next to `mod`'s file."""
        folder = mod.display.parent
        for _ in range(max(dots - 1, 0)):
            folder = folder / ".."
        parts = source.split(".") if source else []
        candidate = folder.joinpath(*parts) if parts else folder
        if candidate.is_dir():
            return Path(os.path.normpath(candidate / "__init__.py"))
        return Path(os.path.normpath(candidate.with_name(candidate.name + ".py")))

    # -- named types --------------------------------------------------------------------

    def named(
        self,
        mod: _Module,
        name: str,
        node: cst.CSTNode,
        args: tuple[TypeRef, ...] | None = None,
    ) -> TypeRef:
        """Resolve a type name used in `mod` to the class, alias or NewType it denotes;
        `args` are the type arguments of ``Name[...]`` (a generic dataclass)."""
        if name in mod.classes:
            return self.declared(mod, mod.classes[name], node, args)
        if args is not None and (name in mod.bindings or name not in mod.imports):
            raise self.fail(
                mod,
                node,
                f"{name} takes no type arguments: only a generic dataclass (class "
                f"{name}(Generic[T])) is written {name}[...]",
            )
        if name in mod.bindings:
            return self.alias(mod, name, node)
        if name in mod.imports:
            source, dots, original, alias = mod.imports[name]
            if dots == 0 and source in STDLIB_MODULES:
                return self.stdlib(mod, source, original, node)
            if source in {"typing", "abc", "dataclasses", "enum", "gopherpipe_runtime"}:
                raise self.fail(mod, node, f"unsupported type {name!r}: {TYPE_HELP}")
            path = self.module_file(mod, source, dots)
            if not path.exists():
                raise self.fail(
                    mod,
                    node,
                    f"cannot find module {'.' * dots}{source} for type {name!r} "
                    f"(looked for {path}); gopherpipe gen reads imported types only from "
                    "modules next to the contract: declare the type in the contract or "
                    "import it from a file beside it",
                )
            other = self.load(path, (mod, alias))
            if original in other.bindings and original not in other.classes:
                if args is not None:
                    raise self.fail(mod, node, f"{name} takes no type arguments")
                return self.alias(other, original, node, (mod, node))
            if original not in other.classes:
                raise self.fail(
                    mod,
                    node,
                    f"{path} does not declare a class {original!r} at top level; "
                    "import dataclasses, Enums, type aliases and NewTypes from the module "
                    "that defines them",
                )
            return self.declared(other, other.classes[original], node, args, (mod, node))
        if name in STDLIB_TYPES:
            raise self.fail(
                mod,
                node,
                f"unknown type {name!r}: import it first (from {STDLIB_TYPES[name]} import {name})",
            )
        raise self.fail(mod, node, f"unknown type {name!r}: {TYPE_HELP}")

    def alias(
        self,
        mod: _Module,
        name: str,
        node: cst.CSTNode,
        used_in: tuple[_Module, cst.CSTNode] | None = None,
    ) -> TypeRef:
        """The type a top-level assignment of `mod` names (a type alias or a NewType).

        Read once: a broken alias is reported once (where it is declared, or where it is
        first misused), and its other uses raise no error of their own. `used_in` is where
        the name is used when that is another module than `mod` (an imported alias)."""
        key = f"{mod.resolved}:{name}"
        if key in self.aliases:
            found = self.aliases[key]
            if found is None:
                raise _Invalid()
            return found
        where = used_in or (mod, node)
        if key in self.in_progress:
            raise self.fail(
                *where,
                f"type alias {name!r} refers to itself: a recursive type must be a dataclass "
                f"(e.g. @dataclass class Tree: children: list[Tree])",
            )
        statement = mod.bindings[name]
        self.in_progress.add(key)
        result: TypeRef | None = None
        try:
            result = self.alias_value(mod, name, statement, where)
            return result
        finally:
            self.in_progress.discard(key)
            self.aliases[key] = result

    def alias_value(
        self,
        mod: _Module,
        name: str,
        statement: cst.Assign | cst.AnnAssign | cst.TypeAlias,
        where: tuple[_Module, cst.CSTNode],
    ) -> TypeRef:
        if isinstance(statement, cst.TypeAlias):
            if sys.version_info < (3, 12):
                raise _Invalid()  # reported once, where the statement is
            if statement.type_parameters is not None:
                raise self.fail(
                    mod,
                    statement.type_parameters,
                    f"generic type aliases are not supported: write the alias of one "
                    f"concrete type, e.g. type {name} = list[int]",
                )
            return self.alias_type(mod, statement.value)
        value = statement.value
        code = mod.module.code_for_node(statement).strip()
        if isinstance(statement, cst.AnnAssign):
            if value is None or _tail_name(statement.annotation.annotation) != "TypeAlias":
                raise self.fail(
                    *where,
                    f"{name!r} is a variable ({code}), not a type: a type alias is written "
                    f"{name}: TypeAlias = T or {name} = T",
                )
            return self.alias_type(mod, value)
        assert value is not None
        if isinstance(value, cst.Call) and _tail_name(value.func) == "NewType":
            return self.newtype(mod, name, value)
        if isinstance(value, cst.Call) and _tail_name(value.func) == "TypeVar":
            raise self.fail(
                *where,
                f"type variable {name} stands for no type here: a type variable fits only "
                f"in the fields of a generic dataclass (class Page(Generic[{name}])); methods "
                "use concrete types, e.g. Page[int]",
            )
        if isinstance(value, cst.Call) and _tail_name(value.func) in FUNCTIONAL_RECORDS:
            label = "TypedDict" if _tail_name(value.func) == "TypedDict" else "NamedTuple"
            raise self.fail(
                mod,
                value,
                f"the functional form of {_tail_name(value.func)} is not read: write the class "
                f"syntax, class {name}({label}): with one annotated line per field",
            )
        if isinstance(value, cst.SimpleString | cst.ConcatenatedString):
            raise self.fail(
                mod,
                value,
                f"{name} = {mod.module.code_for_node(value)} makes {name} a str, not a type "
                f"alias: for a type written as a string, write {name}: TypeAlias = "
                f"{mod.module.code_for_node(value)} (from typing import TypeAlias)",
            )
        if not isinstance(value, cst.Name | cst.Attribute | cst.Subscript | cst.BinaryOperation):
            raise self.fail(
                *where,
                f"{name!r} is a variable ({code}), not a type: a type alias is written "
                f"{name} = T, e.g. {name} = list[int]",
            )
        return self.alias_type(mod, value)

    def alias_type(self, mod: _Module, value: cst.BaseExpression) -> TypeRef:
        """The type an alias names; a Chan there is a Chan nested in a type."""
        return self.type_of(mod, value)

    def newtype(self, mod: _Module, name: str, call: cst.Call) -> NewTypeOf:
        spelled = f'{name} = NewType("{name}", T)'
        args = call.args
        if (
            len(args) != 2
            or any(arg.keyword is not None or arg.star for arg in args)
            or not isinstance(args[0].value, cst.SimpleString)
            or args[0].value.evaluated_value != name
        ):
            raise self.fail(
                mod, call, f"write {spelled}: the NewType's own name as a string, then its type"
            )
        inner = self.alias_type(mod, args[1].value)
        if (
            isinstance(inner, OptionalOf | LiteralOf)
            or (isinstance(inner, Scalar) and inner.name in {"None", "bool"})
            or (isinstance(inner, Named) and inner.kind == "enum")
        ):
            raise self.fail(
                mod,
                args[1].value,
                f"NewType cannot derive from {_spell(inner)}, which Python cannot subclass: "
                f"derive it from a class (int, str, a dataclass...), or write a type alias "
                f"{name} = {_spell(inner)}",
            )
        return NewTypeOf(name, mod.resolved, inner)

    def stdlib(self, mod: _Module, module: str, name: str, node: cst.CSTNode) -> Stdlib:
        """`module.name` as a contract type, or an error saying which ones there are."""
        if STDLIB_TYPES.get(name) != module:
            raise self.fail(
                mod,
                node,
                f"{module}.{name} cannot cross the wire: of the standard library, contracts "
                f"take {STDLIB_HELP}",
            )
        stdlib_name: StdlibName = name  # type: ignore[assignment]
        return Stdlib(stdlib_name)

    def kind_of(self, cls: cst.ClassDef) -> NamedKind | None:
        if any(_decorator_name(d) == "dataclass" for d in cls.decorators):
            return "dataclass"
        bases = {_tail_name(b.value) for b in cls.bases}
        if "NamedTuple" in bases:
            return "namedtuple"
        if "TypedDict" in bases:
            return "typeddict"
        if bases & ENUM_BASES:
            return "enum"
        return None

    def type_params(self, mod: _Module, cls: cst.ClassDef) -> tuple[str, ...]:
        """The type variables of ``class X(Generic[T, U])`` (empty if not generic)."""
        if cls.type_parameters is not None:
            raise self.fail(
                mod,
                cls.type_parameters,
                f"'class {cls.name.value}[...]' needs Python 3.12: write "
                f'class {cls.name.value}(Generic[T]) with T = TypeVar("T")',
            )
        for base in cls.bases:
            value = base.value
            if isinstance(value, cst.Subscript) and _tail_name(value.value) == "Generic":
                names: list[str] = []
                for element in value.slice:
                    item = element.slice.value if isinstance(element.slice, cst.Index) else None
                    binding = mod.bindings.get(item.value) if isinstance(item, cst.Name) else None
                    if not (
                        isinstance(item, cst.Name)
                        and isinstance(binding, cst.Assign)
                        and isinstance(binding.value, cst.Call)
                        and _tail_name(binding.value.func) == "TypeVar"
                    ):
                        raise self.fail(
                            mod,
                            element,
                            "Generic[...] lists type variables declared in the same module: "
                            'T = TypeVar("T")',
                        )
                    names.append(item.value)
                return tuple(names)
        return ()

    def declared(
        self,
        mod: _Module,
        cls: cst.ClassDef,
        used_at: cst.CSTNode,
        args: tuple[TypeRef, ...] | None = None,
        used_in: tuple[_Module, cst.CSTNode] | None = None,
    ) -> Named:
        name = cls.name.value
        kind = self.kind_of(cls)
        where = used_in or (mod, used_at)
        self.mark_class(mod, cls)
        for base in cls.bases if kind is None else ():
            parent = mod.classes.get(_tail_name(base.value) or "")
            parent_kind = None if parent is None else self.kind_of(parent)
            if parent is not None and parent_kind in {"namedtuple", "typeddict"}:
                label = "NamedTuple" if parent_kind == "namedtuple" else "TypedDict"
                raise self.fail(
                    mod,
                    used_at,
                    f"{name!r} derives from the {label} {parent.name.value}: a {label} on the "
                    f"wire is one class deriving from {label}; list every field in it",
                )
        if kind is None and any(_tail_name(base.value) == "Protocol" for base in cls.bases):
            raise self.fail(
                mod,
                used_at,
                f"{name!r} is a Protocol, which describes behaviour, and only data can cross "
                "the wire: send a dataclass with the values the other side needs (or make "
                f"{name}'s methods a service of their own)",
            )
        if kind is None:
            raise self.fail(
                mod,
                used_at,
                f"{name!r} is neither a dataclass, an Enum, a NamedTuple nor a TypedDict; "
                "only those (and the built-in types) can cross the wire",
            )
        params = self.type_params(mod, cls) if kind == "dataclass" else ()
        if params and args is None:
            raise self.fail(
                *where,
                f"{name} is generic: write it with its type arguments, "
                f"{name}[{', '.join(params)}] with concrete types, e.g. {name}[int]",
            )
        if args is not None and len(args) != len(params):
            raise self.fail(
                *where,
                (
                    f"{name} takes {len(params)} type argument(s), not {len(args)}"
                    if params
                    else f"{name} takes no type arguments: only a generic dataclass (class "
                    f"{name}(Generic[T])) is written {name}[...]"
                ),
            )
        ref = Named(name, kind, mod.resolved, args or ())
        key = key_of(ref)
        if len(key) > 2000:
            raise self.fail(
                *where,
                f"{name}'s type arguments nest without end: a generic dataclass's "
                "fields may use it with the same type variables only",
            )
        if key not in self.in_progress:
            # Marked before the body is read so that recursive types terminate.
            self.in_progress.add(key)
            self.env.append(dict(zip(params, args or (), strict=True)))
            try:
                if kind == "dataclass":
                    self.dataclasses[key] = self.dataclass(mod, cls)
                elif kind != "enum":
                    self.dataclasses[key] = self.record_class(mod, cls, kind)
                else:
                    self.enums[key] = self.enum(mod, cls)
            except _Invalid:
                self.refused.add(key)
            finally:
                self.env.pop()
        return ref

    # -- types --------------------------------------------------------------------------

    def names_chan(self, mod: _Module, node: cst.BaseExpression) -> bool:
        """Whether `node` is ``Chan`` or ``Chan[...]`` (gopherpipe_runtime's, however imported)."""
        if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            text = node.evaluated_value
            if not isinstance(text, str):
                return False
            try:
                inner = cst.parse_expression(text.strip())
            except cst.ParserSyntaxError:
                return False  # type_of reports it
            self.anchor.append(node)
            try:
                return self.names_chan(mod, inner)
            finally:
                self.anchor.pop()
        head = node.value if isinstance(node, cst.Subscript) else node
        if isinstance(head, cst.Attribute):
            if head.attr.value != "Chan":
                return False
            if not mod.module.code_for_node(head.value).startswith("gopherpipe_runtime"):
                raise self.fail(
                    mod,
                    head,
                    f"{mod.module.code_for_node(head)} is not a stream: streams are "
                    f"gopherpipe_runtime.Chan[T] ({CHAN_IMPORT})",
                )
            return True
        if not isinstance(head, cst.Name):
            return False
        name = head.value
        if name in mod.imports:
            source, dots, original, _ = mod.imports[name]
            if original == "Chan" and dots == 0 and source.split(".")[0] == "gopherpipe_runtime":
                return True
            if name == "Chan":
                raise self.fail(
                    mod,
                    head,
                    f"this Chan comes from {'.' * dots}{source}: streams are "
                    f"gopherpipe_runtime's Chan[T]; write {CHAN_IMPORT}",
                )
            return False
        if name == "Chan" and name not in mod.classes:
            raise self.fail(mod, head, f"Chan is not imported: add {CHAN_IMPORT}")
        return False

    def chan_misuse(self, mod: _Module, node: cst.CSTNode, optional: bool = False) -> _Invalid:
        where = self.chan_context[-1] if self.chan_context else ""
        if where.startswith("field "):
            message = (
                f"dataclass field {where.removeprefix('field ')!r} cannot be a stream: a "
                "dataclass travels as one value; write list[T] for the field, or make "
                "Chan[T] a parameter or the return type of a method"
            )
        elif optional:
            message = CHAN_OPTIONAL
        else:
            message = CHAN_NESTED
        return self.fail(mod, node, message)

    def stream_item(
        self, mod: _Module, annotation: cst.Annotation | cst.BaseExpression | None
    ) -> TypeRef | None:
        """The item type if `annotation` is exactly ``Chan[T]``, else None."""
        if annotation is None:
            return None
        node = annotation.annotation if isinstance(annotation, cst.Annotation) else annotation
        if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            text = node.evaluated_value
            if not isinstance(text, str):
                return None
            try:
                inner = cst.parse_expression(text.strip())
            except cst.ParserSyntaxError:
                return None  # type_of reports it
            self.anchor.append(node)
            try:
                return self.stream_item(mod, inner)
            finally:
                self.anchor.pop()
        if not self.names_chan(mod, node):
            return None
        if not isinstance(node, cst.Subscript):
            raise self.fail(mod, node, "Chan needs its item type: write Chan[T], e.g. Chan[str]")
        if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
            raise self.fail(mod, node, "Chan takes one item type: write Chan[T]")
        item = node.slice[0].slice.value
        if self.names_chan(mod, item):
            raise self.fail(mod, item, CHAN_OF_CHAN)
        return self.type_of(mod, item)

    def type_of(self, mod: _Module, node: cst.BaseExpression) -> TypeRef:
        if self.names_chan(mod, node):
            raise self.chan_misuse(mod, node)
        if isinstance(node, cst.Name):
            return self.simple_type(mod, node.value, node)
        if isinstance(node, cst.Attribute):
            if node.attr.value in SCALARS and _tail_name(node.value) == "builtins":
                return self.simple_type(mod, node.attr.value, node)
            if isinstance(node.value, cst.Name) and node.value.value in mod.module_imports:
                module = mod.module_imports[node.value.value]
                if module in STDLIB_MODULES:
                    return self.stdlib(mod, module, node.attr.value, node)
            raise self.fail(
                mod,
                node,
                f"qualified type {mod.module.code_for_node(node)!r} is not supported: "
                "import the class by name (from "
                f"{mod.module.code_for_node(node.value)} import {node.attr.value})",
            )
        if isinstance(node, cst.Subscript):
            return self.generic(mod, node)
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
            members: list[cst.BaseExpression] = []
            self.flatten_union(node, members)
            return self.union(mod, node, members)
        if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            text = node.evaluated_value
            if not isinstance(text, str):
                raise self.fail(mod, node, f"a type cannot be bytes: {TYPE_HELP}")
            try:
                inner = cst.parse_expression(text.strip())
            except cst.ParserSyntaxError:
                raise self.fail(
                    mod, node, f"cannot read the type in this string: {text!r}"
                ) from None
            self.anchor.append(node)
            try:
                return self.type_of(mod, inner)
            finally:
                self.anchor.pop()
        raise self.fail(
            mod, node, f"unsupported type {mod.module.code_for_node(node)!r}: {TYPE_HELP}"
        )

    def simple_type(self, mod: _Module, name: str, node: cst.CSTNode) -> TypeRef:
        if self.env and name in self.env[-1]:
            return self.env[-1][name]
        if name in SCALARS:
            scalar: ScalarName = name  # type: ignore[assignment]
            return Scalar(scalar)
        if name == "Any" or name == "object":
            raise self.fail(
                mod, node, f"{name} is not allowed: the wire needs a concrete type; {TYPE_HELP}"
            )
        if name in {"list", "dict", "tuple", "set", "frozenset", "Sequence", "Mapping",
                    *TYPING_ALIASES}:  # fmt: skip
            generic = TYPING_ALIASES.get(name, name)
            raise self.fail(
                mod, node, f"{name} needs its item types: write {generic}[...], e.g. list[int]"
            )
        if name in {"Optional", "Union"}:
            raise self.fail(mod, node, f"{name} needs a type: write T | None")
        where = self.origin(mod, node) if isinstance(node, cst.Name) else None
        if where in NOT_DATA:
            raise self.fail(mod, node, f"{name}: {NOT_DATA[where]}")
        return self.named(mod, name, node)

    def flatten_union(self, node: cst.BaseExpression, out: list[cst.BaseExpression]) -> None:
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
            self.flatten_union(node.left, out)
            self.flatten_union(node.right, out)
        else:
            out.append(node)

    def union(
        self, mod: _Module, node: cst.CSTNode, members: Sequence[cst.BaseExpression]
    ) -> TypeRef:
        def is_none(member: cst.BaseExpression) -> bool:
            return isinstance(member, cst.Name) and member.value == "None"

        others = [m for m in members if not is_none(m)]
        if len(others) == 1 < len(members) and self.names_chan(mod, others[0]):
            raise self.chan_misuse(mod, node, optional=True)
        if len(others) != 1 or len(others) == len(members):
            raise self.fail(
                mod,
                node,
                "unions are only supported in the form T | None (or Optional[T]): "
                "use one type, or a dataclass with optional fields",
            )
        inner = self.type_of(mod, others[0])
        if isinstance(inner, OptionalOf) or _is_none(inner):
            return inner
        return OptionalOf(inner)

    def origin(self, mod: _Module, node: cst.BaseExpression) -> str | None:
        """Where a name used in `mod` comes from, dotted (``typing.Sequence`` for
        ``Sequence`` after ``from typing import Sequence``, or for ``t.Sequence`` after
        ``import typing as t``; ``builtins.list`` for a name not bound in the module);
        None for the contract's own classes and aliases and for other expressions."""
        if isinstance(node, cst.Name):
            name = node.value
            if name in mod.classes or name in mod.bindings:
                return None
            if name in mod.imports:
                source, dots, original, _ = mod.imports[name]
                return f"{'.' * dots}{source}.{original}"
            return f"builtins.{name}"
        if isinstance(node, cst.Attribute):
            dotted = mod.module.code_for_node(node.value)
            first, _, rest = dotted.partition(".")
            module = mod.module_imports.get(first, first)
            return f"{module}{'.' + rest if rest else ''}.{node.attr.value}"
        return None

    def generic(self, mod: _Module, node: cst.Subscript) -> TypeRef:
        where = self.origin(mod, node.value)
        if where in NOT_DATA:
            raise self.fail(mod, node, f"{mod.module.code_for_node(node)}: {NOT_DATA[where]}")
        head = FORMS.get(where or "")
        tail = _tail_name(node.value)
        local = False  # a class of the contract's own modules, whatever its name
        if isinstance(node.value, cst.Name) and node.value.value in mod.imports:
            source, dots, _, _ = mod.imports[node.value.value]
            local = self.module_file(mod, source, dots).exists()
        if head is None and tail in FORM_HOMES and where is not None and not local:
            homes = FORM_HOMES[tail]
            module = where.rpartition(".")[0]
            if isinstance(node.value, cst.Attribute) or module != "builtins":
                raise self.fail(
                    mod,
                    node.value,
                    f"{mod.module.code_for_node(node.value)} comes from {module}, not from "
                    f"{' or '.join(homes)}: gen reads {tail}[...] only as {homes[0]}'s "
                    f"(from {homes[0]} import {tail})",
                )
            if tail != "tuple" and tail[0].isupper():
                raise self.fail(
                    mod, node.value, f"{tail} is not imported: add from {homes[0]} import {tail}"
                )
        args: list[cst.BaseExpression] = []
        for element in node.slice:
            if not isinstance(element.slice, cst.Index):
                raise self.fail(mod, element, "slices are not types")
            args.append(element.slice.value)

        def arity(count: int, spelled: str) -> None:
            if len(args) != count:
                raise self.fail(mod, node, f"{head} takes {count} type(s): write {spelled}")

        if head in TYPING_ALIASES:
            raise self.fail(
                mod, node, f"write {TYPING_ALIASES[head]}[...] instead of typing.{head}[...]"
            )
        if head in {"list", "Sequence"}:
            arity(1, f"{head}[T]")
            return ListOf(self.type_of(mod, args[0]), abstract=head == "Sequence")
        if head in {"set", "frozenset"}:
            arity(1, f"{head}[T]")
            item = self.type_of(mod, args[0])
            self.require_hashable(mod, args[0], item, "a set item")
            return SetOf(item, frozen=head == "frozenset")
        if head in {"dict", "Mapping"}:
            arity(2, f"{head}[K, V]")
            key = self.type_of(mod, args[0])
            self.require_hashable(mod, args[0], key, "a dict key")
            return DictOf(key, self.type_of(mod, args[1]), abstract=head == "Mapping")
        if head == "tuple":
            if len(args) == 2 and isinstance(args[1], cst.Ellipsis):
                return TupleOf((self.type_of(mod, args[0]),), variadic=True)
            if len(args) == 1 and isinstance(args[0], cst.Tuple) and not args[0].elements:
                return TupleOf(())
            for arg in args:
                if isinstance(arg, cst.Ellipsis):
                    raise self.fail(mod, arg, "'...' only fits tuple[T, ...]")
            return TupleOf(tuple(self.type_of(mod, arg) for arg in args))
        if head == "Optional":
            arity(1, "Optional[T] (or T | None)")
            if self.names_chan(mod, args[0]):
                raise self.chan_misuse(mod, node, optional=True)
            inner = self.type_of(mod, args[0])
            if isinstance(inner, OptionalOf) or _is_none(inner):
                return inner
            return OptionalOf(inner)
        if head == "Union":
            return self.union(mod, node, args)
        if head == "Literal":
            return self.literal(mod, node, args)
        if isinstance(node.value, cst.Name) and head is None and tail not in SCALARS:
            refs = tuple(self.type_of(mod, arg) for arg in args)
            return self.named(mod, node.value.value, node.value, refs)
        raise self.fail(
            mod, node, f"unsupported type {mod.module.code_for_node(node)!r}: {TYPE_HELP}"
        )

    def literal(
        self, mod: _Module, node: cst.CSTNode, args: Sequence[cst.BaseExpression]
    ) -> LiteralOf:
        values: list[tuple[Literal["bool", "int", "str"], LiteralValue]] = []
        for arg in args:
            value = _literal_value(arg)
            if value is None:
                raise self.fail(
                    mod,
                    arg,
                    f"Literal values must be str, int or bool literals, not "
                    f"{mod.module.code_for_node(arg)}: for None write Literal[...] | None, "
                    "for members use the Enum itself",
                )
            kind: Literal["bool", "int", "str"] = (
                "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "str"
            )
            if kind == "int" and isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
                raise self.fail(
                    mod,
                    arg,
                    f"Literal value {value} is outside the wire's int range ({INT_RANGE}), so "
                    "it could never travel: choose values inside it",
                )
            if (kind, value) not in values:
                values.append((kind, value))
        if not values:
            raise self.fail(mod, node, "Literal needs at least one value: Literal['a', 'b']")
        return LiteralOf(tuple(values))

    def require_hashable(self, mod: _Module, node: cst.CSTNode, ref: TypeRef, what: str) -> None:
        if not _hashable(ref):
            raise self.fail(
                mod,
                node,
                f"{_spell(ref)} cannot be {what}: use str, int, float, bool, bytes, an Enum, "
                "or a tuple of those",
            )

    # -- defaults -----------------------------------------------------------------------

    def default(self, mod: _Module, node: cst.BaseExpression, ref: TypeRef) -> Default:
        """Check a parameter's default against its type (see `defaults`)."""
        return self.defaults.param_default(mod, node, ref)

    # -- declarations -------------------------------------------------------------------

    def dataclass(self, mod: _Module, cls: cst.ClassDef) -> Dataclass:
        for decorator in cls.decorators:
            if isinstance(decorator.decorator, cst.Call):
                for arg in decorator.decorator.args:
                    if (
                        arg.keyword is not None
                        and arg.keyword.value == "init"
                        and not (isinstance(arg.value, cst.Name) and arg.value.value == "True")
                    ):
                        raise self.fail(
                            mod, arg, "a dataclass on the wire needs its __init__: drop init=False"
                        )
        fields: dict[str, Field] = {}
        keyword_only = _mentions_kw_only(cls)
        for base in cls.bases:
            if isinstance(base.value, cst.Subscript) and _tail_name(base.value.value) == "Generic":
                continue  # its type variables are read by type_params
            if isinstance(base.value, cst.Subscript):
                raise self.fail(
                    mod,
                    base,
                    f"deriving from {mod.module.code_for_node(base.value)} is not supported: "
                    "derive from a dataclass without type arguments, or list the fields",
                )
            base_name = _tail_name(base.value)
            if base_name is None or base_name in {"object", "Generic"}:
                raise self.fail(mod, base, "dataclass bases must be other dataclasses")
            parent = self.named(mod, base_name, base.value)
            if not isinstance(parent, Named) or parent.kind != "dataclass":
                raise self.fail(mod, base, "dataclass bases must be other dataclasses")
            parent_def = self.dataclasses.get(key_of(parent))
            if parent_def is None:
                raise _Invalid()
            for item in parent_def.fields:
                fields[item.name] = item
            keyword_only = keyword_only or parent_def.keyword_only
        ok = True
        for statement in cls.body.body:
            if isinstance(statement, cst.FunctionDef | cst.ClassDef) or _is_docstring_or_filler(
                statement
            ):
                continue
            if not isinstance(statement, cst.SimpleStatementLine):
                self.error(mod, statement, "only fields and methods may appear in a dataclass")
                ok = False
                continue
            for small in statement.body:
                try:
                    self.dataclass_field(mod, small, fields)
                except _Invalid:
                    ok = False
        if not ok:
            raise _Invalid()
        return Dataclass(
            cls.name.value,
            mod.resolved,
            tuple(fields.values()),
            keyword_only=keyword_only,
            doc=_doc(cls),
        )

    def record_class(
        self, mod: _Module, cls: cst.ClassDef, form: Literal["namedtuple", "typeddict"]
    ) -> Dataclass:
        """A class-syntax NamedTuple or TypedDict."""
        label = "NamedTuple" if form == "namedtuple" else "TypedDict"
        total = True
        for base in cls.bases:
            if _tail_name(base.value) != label:
                raise self.fail(
                    mod,
                    base,
                    f"a {label} on the wire derives from {label} only (no generic, no other "
                    f"base, no {label} inheritance): list every field in one class",
                )
        for keyword in cls.keywords:
            if not (
                form == "typeddict"
                and keyword.keyword is not None
                and keyword.keyword.value == "total"
                and isinstance(keyword.value, cst.Name)
                and keyword.value.value in {"True", "False"}
            ):
                raise self.fail(
                    mod,
                    keyword,
                    (
                        "a TypedDict takes one class argument, total=True or total=False"
                        if form == "typeddict"
                        else "a NamedTuple takes no class arguments"
                    ),
                )
            total = keyword.value.value == "True"
        for decorator in cls.decorators:
            raise self.fail(mod, decorator, f"a {label} on the wire takes no decorator")
        fields: dict[str, Field] = {}
        ok = True
        for statement in cls.body.body:
            if _is_docstring_or_filler(statement) or (
                form == "namedtuple" and isinstance(statement, cst.FunctionDef)
            ):
                continue
            if not isinstance(statement, cst.SimpleStatementLine):
                self.error(
                    mod,
                    statement,
                    (
                        "only keys (name: type) may appear in a TypedDict"
                        if form == "typeddict"
                        else "only fields and methods may appear in a NamedTuple"
                    ),
                )
                ok = False
                continue
            for small in statement.body:
                try:
                    if form == "typeddict":
                        self.typed_dict_key(mod, small, fields, total)
                    else:
                        self.named_tuple_field(mod, small, fields)
                except _Invalid:
                    ok = False
        if not ok:
            raise _Invalid()
        return Dataclass(cls.name.value, mod.resolved, tuple(fields.values()), form, doc=_doc(cls))

    def named_tuple_field(
        self, mod: _Module, small: cst.BaseSmallStatement, fields: dict[str, Field]
    ) -> None:
        if (
            isinstance(small, cst.AnnAssign)
            and isinstance(small.value, cst.Call)
            and _tail_name(small.value.func) == "field"
        ):
            raise self.fail(
                mod,
                small.value,
                "a NamedTuple field takes no field(...): write its default value itself "
                "(a NamedTuple has no default_factory)",
            )
        self.dataclass_field(mod, small, fields)
        if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
            name = small.target.value
            if name.startswith("_"):
                raise self.fail(
                    mod, small.target, f"NamedTuple field names may not start with '_': {name!r}"
                )
            if not fields[name].has_default and any(f.has_default for f in fields.values()):
                raise self.fail(
                    mod,
                    small,
                    f"field {name!r} has no default but follows one that has: Python refuses "
                    "this in a NamedTuple; give it a default or move it up",
                )

    def typed_dict_key(
        self, mod: _Module, small: cst.BaseSmallStatement, fields: dict[str, Field], total: bool
    ) -> None:
        if not isinstance(small, cst.AnnAssign) or not isinstance(small.target, cst.Name):
            raise self.fail(mod, small, "only keys (name: type) may appear in a TypedDict")
        name = small.target.value
        if small.value is not None:
            raise self.fail(
                mod,
                small.value,
                f"a TypedDict key has no default: write {name}: NotRequired[T] for a key "
                "that may be left out",
            )
        annotation = small.annotation.annotation
        required = total
        head = _tail_name(annotation.value) if isinstance(annotation, cst.Subscript) else None
        if isinstance(annotation, cst.Subscript) and head in {"Required", "NotRequired"}:
            if len(annotation.slice) != 1 or not isinstance(annotation.slice[0].slice, cst.Index):
                raise self.fail(mod, annotation, f"{head} takes one type: write {head}[T]")
            required = head == "Required"
            annotation = annotation.slice[0].slice.value
        self.chan_context.append(f"field {name}")
        try:
            ref = self.type_of(mod, annotation)
        finally:
            self.chan_context.pop()
        fields[name] = Field(name, ref, not required)

    def dataclass_field(
        self, mod: _Module, small: cst.BaseSmallStatement, fields: dict[str, Field]
    ) -> None:
        if isinstance(small, cst.Assign):
            raise self.fail(
                mod, small, "dataclass field has no type annotation: write name: type = value"
            )
        if not isinstance(small, cst.AnnAssign) or not isinstance(small.target, cst.Name):
            raise self.fail(mod, small, "only annotated fields (name: type) fit in a dataclass")
        name = small.target.value
        annotation = small.annotation.annotation
        if _tail_name(
            annotation.value if isinstance(annotation, cst.Subscript) else annotation
        ) in {"ClassVar", "InitVar", "KW_ONLY"}:
            raise self.fail(
                mod, annotation, "ClassVar, InitVar and KW_ONLY are not supported in a contract"
            )
        self.chan_context.append(f"field {name}")
        try:
            ref = self.type_of(mod, annotation)
        finally:
            self.chan_context.pop()
        has_default = small.value is not None
        value = small.value
        if isinstance(value, cst.Call) and _tail_name(value.func) == "field":
            has_default = False
            for arg in value.args:
                keyword = arg.keyword.value if arg.keyword else None
                if keyword == "default":
                    self.defaults.field_default(mod, arg.value, ref)
                    has_default = True
                elif keyword == "default_factory":
                    self.defaults.factory(mod, arg.value, ref)
                    has_default = True
                elif keyword == "init" and not (
                    isinstance(arg.value, cst.Name) and arg.value.value == "True"
                ):
                    raise self.fail(mod, arg, "a field on the wire must be in __init__")
                elif keyword is None:
                    raise self.fail(mod, arg, "pass field() arguments by keyword")
        elif value is not None:
            self.defaults.field_default(mod, value, ref)
        fields[name] = Field(name, ref, has_default, _source(value) if has_default else None)

    def enum(self, mod: _Module, cls: cst.ClassDef) -> EnumDef:
        bases = {_tail_name(base.value) for base in cls.bases}
        members: list[tuple[str, int | str]] = []
        for statement in cls.body.body:
            if isinstance(statement, cst.FunctionDef) or _is_docstring_or_filler(statement):
                continue
            if not isinstance(statement, cst.SimpleStatementLine):
                raise self.fail(mod, statement, "only members and methods may appear in an Enum")
            for small in statement.body:
                if not (
                    isinstance(small, cst.Assign)
                    and len(small.targets) == 1
                    and isinstance(small.targets[0].target, cst.Name)
                ):
                    raise self.fail(mod, small, "write Enum members as NAME = value")
                name = small.targets[0].target.value
                if isinstance(small.value, cst.Call) and _tail_name(small.value.func) == "auto":
                    value = self.auto_value(mod, cls, bases, name, small.value, members)
                else:
                    value = self.enum_value(mod, small.value)
                if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
                    raise self.fail(
                        mod,
                        small.value,
                        f"{cls.name.value}.{name} = {value} is outside the wire's int range "
                        f"({INT_RANGE}), so it could never travel: choose a value inside it",
                    )
                members.append((name, value))
        if not members:
            raise self.fail(mod, cls.name, f"Enum {cls.name.value} has no members")
        kinds = {type(value) for _, value in members}
        if len(kinds) != 1:
            raise self.fail(
                mod, cls.name, f"Enum {cls.name.value} mixes int and str values: use one kind"
            )
        value_type: Literal["int", "str"] = "int" if kinds == {int} else "str"
        return EnumDef(cls.name.value, mod.resolved, tuple(members), value_type, doc=_doc(cls))

    def auto_value(
        self,
        mod: _Module,
        cls: cst.ClassDef,
        bases: set[str | None],
        name: str,
        call: cst.Call,
        members: Sequence[tuple[str, int | str]],
    ) -> int | str:
        """The value Python gives ``name = auto()`` (its _generate_next_value_), statically."""
        if call.args:
            raise self.fail(mod, call, "auto() takes no arguments: write auto() or a value")
        if "StrEnum" in bases:
            return name.lower()
        if bases - {"Enum", "IntEnum"}:
            raise self.fail(
                mod,
                call,
                f"auto() in {cls.name.value}, which mixes in another type, would not give "
                "an int: derive from Enum, IntEnum or StrEnum, or write explicit values",
            )
        if not members:
            return 1
        values = [value for _, value in members]
        last = values[-1]
        if not all(isinstance(value, int) for value in values):
            raise self.fail(
                mod,
                call,
                f"auto() after a str value has no int to continue from: write {name} = "
                "an explicit value (or derive from StrEnum, where auto() is the lower-cased "
                "name)",
            )
        assert isinstance(last, int)
        if last != max(value for value in values if isinstance(value, int)):
            # Python 3.11 continues from the last value, 3.13 from the highest.
            raise self.fail(
                mod,
                call,
                f"auto() after {members[-1][0]} = {last}, which is not the highest value so "
                f"far: Python versions differ on what it gives; write {name} = an explicit "
                "value",
            )
        return last + 1

    def enum_value(self, mod: _Module, node: cst.BaseExpression) -> int | str:
        negative = False
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            negative, node = True, node.expression
        if isinstance(node, cst.Integer):
            value = int(node.value.replace("_", ""), 0)
            return -value if negative else value
        if not negative and isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            text = node.evaluated_value
            if isinstance(text, str):
                return text
        raise self.fail(mod, node, "Enum values must be int or str literals, e.g. RED = 1")

    # -- services -----------------------------------------------------------------------

    def service(self, mod: _Module, cls: cst.ClassDef) -> Service:
        for base in cls.bases:
            if _tail_name(base.value) != "ABC":
                raise self.fail(
                    mod, base, "a service class derives from ABC only: write class X(ABC)"
                )
        methods: dict[str, Method] = {}
        first_use = len(self.default_uses)
        names: list[cst.Name] = []
        for statement in cls.body.body:
            if _is_docstring_or_filler(statement):
                continue
            if not isinstance(statement, cst.FunctionDef):
                self.error(
                    mod,
                    statement,
                    "only @abstractmethod methods and a docstring may appear in a service class",
                )
                continue
            try:
                method = self.method(mod, statement)
            except _Invalid:
                continue
            if method.name in methods:
                self.error(
                    mod, statement.name, f"duplicate method {method.name!r}: give it another name"
                )
                continue
            methods[method.name] = method
            names.append(statement.name)
            self.mark(mod, statement.name, cls.name.value, method.name)
            if statement.returns is not None:
                self.mark(mod, statement.returns.annotation, cls.name.value, method.name, "->")
            for param in (*statement.params.posonly_params, *statement.params.params):
                self.mark(mod, param.name, cls.name.value, method.name, param.name.value)
        # The client class spells its signatures with these names; a method of the same
        # name would hide them there (for mypy, and at run time when they are subscripted).
        used = _signature_names(methods.values())
        for name in names:
            if name.value in used:
                self.error(
                    mod,
                    name,
                    f"method name {name.value!r} would hide the type {name.value} in the "
                    "stubs' annotations: choose another name",
                )
        if not methods and not self.errors:
            raise self.fail(mod, cls.name, f"service {cls.name.value} has no abstract methods")
        for where, node, default in self.default_uses[first_use:]:
            # The client class evaluates its signatures' defaults in its own body, where
            # a method of that name has replaced the imported object.
            hidden = [n for _, n in default.imports if n in methods and n not in used]
            for hidden_name in hidden:  # (one the signatures use too is reported above)
                self.error(
                    where,
                    node,
                    f"this default names {hidden_name}, which inside the generated client "
                    f"class is the method {hidden_name}(): rename the method or the "
                    f"{hidden_name} it names",
                )
        return Service(cls.name.value, tuple(methods.values()), doc=_doc(cls))

    def method(self, mod: _Module, fn: cst.FunctionDef) -> Method:
        name = fn.name.value
        decorators = [_decorator_name(d) for d in fn.decorators]
        if "abstractmethod" not in decorators:
            raise self.fail(
                mod,
                fn.name,
                f"method {name!r} is not abstract: every method of a service is an RPC; "
                "mark it @abstractmethod or move it out of the service class",
            )
        idempotent = False
        others = 0
        for decorator in fn.decorators:
            kind = self.idempotent_kind(mod, decorator)
            if kind == "runtime":
                if isinstance(decorator.decorator, cst.Call):
                    raise self.fail(
                        mod, decorator, "idempotent takes no arguments: write @idempotent"
                    )
                if idempotent:
                    raise self.fail(mod, decorator, "@idempotent is given twice: remove one")
                idempotent = True
            elif kind == "lookalike":
                node = decorator.decorator
                node = node.func if isinstance(node, cst.Call) else node
                if isinstance(node, cst.Name) and node.value in mod.imports:
                    source, dots, _, _ = mod.imports[node.value]
                    message = (
                        f"this idempotent comes from {'.' * dots}{source}: gen knows "
                        f"gopherpipe_runtime's only; write {IDEMPOTENT_IMPORT}"
                    )
                elif isinstance(node, cst.Name):
                    message = f"idempotent is not imported: add {IDEMPOTENT_IMPORT}"
                else:
                    message = (
                        f"{mod.module.code_for_node(node)} is not gopherpipe_runtime's "
                        f"idempotent: write {IDEMPOTENT_IMPORT}"
                    )
                raise self.fail(mod, decorator, message)
            else:
                others += 1
        if others != 1:
            raise self.fail(
                mod,
                fn,
                "an RPC method takes only the @abstractmethod decorator, and @idempotent "
                "if a call may safely run twice",
            )
        if fn.asynchronous is not None:
            raise self.fail(mod, fn.name, "async methods are not supported: use def")
        if name.startswith("_"):
            raise self.fail(mod, fn.name, f"RPC method names may not start with '_': {name!r}")
        if name in RESERVED_METHODS:
            raise self.fail(
                mod,
                fn.name,
                f"method name {name!r} is taken by the generated client (dial, with_options, "
                "close, pipe): choose another name",
            )
        params = fn.params
        if isinstance(params.star_arg, cst.Param):
            raise self.fail(mod, params.star_arg, "*args is not supported: list each parameter")
        if params.kwonly_params:
            raise self.fail(
                mod,
                params.kwonly_params[0],
                "keyword-only parameters are not supported (arguments travel by position): "
                "remove the '*'",
            )
        if params.star_kwarg is not None:
            raise self.fail(
                mod, params.star_kwarg, "**kwargs is not supported: list each parameter"
            )
        ordered = [(p, True) for p in params.posonly_params] + [(p, False) for p in params.params]
        if not ordered or ordered[0][0].name.value != "self":
            raise self.fail(mod, fn.name, "an RPC method's first parameter must be self")
        result: list[Param] = []
        stream_param: Param | None = None
        stream_index: int | None = None
        ok = True
        seen: set[str] = set()
        for index, (param, positional_only) in enumerate(ordered[1:]):
            try:
                if param.name.value in seen:
                    # libcst parses this; Python would not, and neither would the stubs.
                    raise self.fail(
                        mod, param.name, f"duplicate parameter {param.name.value!r}: rename one"
                    )
                seen.add(param.name.value)
                item = self.stream_item(mod, param.annotation)
                if item is None:
                    result.append(self.param(mod, param, positional_only))
                    continue
                self.param_name(mod, param)
                if stream_param is not None:
                    raise self.fail(
                        mod,
                        param,
                        f"method {name!r} has a second Chan parameter: a call carries at most "
                        "one client stream; pass the other as a list, or split the method",
                    )
                if param.default is not None:
                    raise self.fail(
                        mod,
                        param.default,
                        "a Chan parameter cannot have a default (an empty stream is one the "
                        "caller closes at once): remove it",
                    )
                stream_param = Param(param.name.value, item, None, positional_only)
                stream_index = index
            except _Invalid:
                ok = False
        returns: TypeRef | None = None
        stream_returns: TypeRef | None = None
        if fn.returns is None:
            self.error(mod, fn.name, f"method {name!r} needs a return annotation (-> T)")
        else:
            with contextlib.suppress(_Invalid):
                stream_returns = self.stream_item(mod, fn.returns)
                if stream_returns is None:
                    returns = self.type_of(mod, fn.returns.annotation)
                else:
                    returns = Scalar("None")
        if not ok or returns is None:
            raise _Invalid()
        return Method(
            name,
            tuple(result),
            returns,
            stream_param,
            stream_returns,
            stream_index,
            idempotent,
            doc=_doc(fn),
        )

    def idempotent_kind(self, mod: _Module, decorator: cst.Decorator) -> _Runtime:
        """Whether `decorator` is gopherpipe_runtime's ``idempotent`` (or a call of it),
        something else spelled ``idempotent`` ("lookalike"), or another decorator."""
        node = decorator.decorator
        if isinstance(node, cst.Call):
            node = node.func
        if isinstance(node, cst.Name):
            if node.value in mod.imports:
                source, dots, original, _ = mod.imports[node.value]
                if (
                    original == "idempotent"
                    and dots == 0
                    and source.split(".")[0] == "gopherpipe_runtime"
                ):
                    return "runtime"
            return "lookalike" if node.value == "idempotent" else "other"
        if isinstance(node, cst.Attribute) and node.attr.value == "idempotent":
            head = mod.module.code_for_node(node.value)
            first, _, rest = head.partition(".")
            module = mod.module_imports.get(first)
            if module is not None and f"{module}.{rest}".split(".")[0] == "gopherpipe_runtime":
                return "runtime"
            return "lookalike"
        return "other"

    def idempotent_elsewhere(self, mod: _Module) -> None:
        """Report gopherpipe_runtime's ``@idempotent`` anywhere but on an RPC method
        (those `method` reads) in the contract file."""
        services = {
            cls
            for cls in mod.classes.values()
            if any(_tail_name(b.value) == "ABC" for b in cls.bases)
        }
        parser = self

        class Visitor(cst.CSTVisitor):
            def __init__(self) -> None:
                self.owners: list[cst.ClassDef | cst.FunctionDef] = []

            def visit_ClassDef(self, node: cst.ClassDef) -> None:
                self.check(node, f"class {node.name.value}")
                self.owners.append(node)

            def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
                self.owners.pop()

            def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
                owner = self.owners[-1] if self.owners else None
                if not (owner in services and len(self.owners) == 1):
                    if isinstance(owner, cst.ClassDef):
                        what = f"method {owner.name.value}.{node.name.value}"
                    else:
                        what = f"function {node.name.value}"
                    self.check(node, what)
                self.owners.append(node)

            def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
                self.owners.pop()

            def check(self, node: cst.ClassDef | cst.FunctionDef, what: str) -> None:
                for decorator in node.decorators:
                    if parser.idempotent_kind(mod, decorator) == "runtime":
                        parser.error(
                            mod,
                            decorator,
                            "@idempotent marks an RPC method (an @abstractmethod of a "
                            f"service class), which {what} is not: remove it",
                        )

        mod.module.visit(Visitor())

    def param_name(self, mod: _Module, param: cst.Param) -> None:
        name = param.name.value
        if param.annotation is None:
            raise self.fail(
                mod, param, f"parameter {name!r} needs a type annotation (write {name}: T)"
            )
        if name.startswith("_") or name in RESERVED_PARAMS:
            raise self.fail(
                mod,
                param.name,
                f"parameter name {name!r} is reserved for the generated code: rename it",
            )

    def param(self, mod: _Module, param: cst.Param, positional_only: bool) -> Param:
        self.param_name(mod, param)
        assert param.annotation is not None
        ref = self.type_of(mod, param.annotation.annotation)
        default = None
        if param.default is not None:
            default = self.default(mod, param.default, ref)
            self.default_uses.append((mod, param.default, default))
        return Param(param.name.value, ref, default, positional_only)

    # -- entry --------------------------------------------------------------------------

    def contract(self) -> Contract | None:
        try:
            mod = self.load(self.path)
        except _Invalid:
            return None
        services: list[Service] = []
        self.idempotent_elsewhere(mod)
        for cls in mod.classes.values():
            if any(_tail_name(b.value) == "ABC" for b in cls.bases):
                self.mark(mod, cls.name, cls.name.value)
                with contextlib.suppress(_Invalid):
                    services.append(self.service(mod, cls))
            elif self.kind_of(cls) is not None:
                # Declared types are part of the contract even if no method uses them yet
                # (a generic dataclass is read where it is used, with its type arguments).
                with contextlib.suppress(_Invalid):
                    if not (self.kind_of(cls) == "dataclass" and self.type_params(mod, cls)):
                        self.declared(mod, cls, cls.name)
        if not services and not any(
            any(_tail_name(b.value) == "ABC" for b in cls.bases) for cls in mod.classes.values()
        ):
            self.errors.append(
                SpecError(
                    mod.display,
                    1,
                    1,
                    "no service found: declare a class deriving from ABC with "
                    "@abstractmethod methods",
                )
            )
        if self.errors:
            return None
        return Contract(
            self.path, tuple(services), self.dataclasses, self.enums, positions=self.positions
        )


def _literal_value(node: cst.BaseExpression) -> LiteralValue | None:
    """The value of a str, int or bool literal (``-1`` too), else None."""
    if isinstance(node, cst.Name) and node.value in {"True", "False"}:
        return node.value == "True"
    negative = isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus)
    if isinstance(node, cst.UnaryOperation) and negative:
        node = node.expression
    if isinstance(node, cst.Integer):
        value = int(node.value.replace("_", ""), 0)
        return -value if negative else value
    if not negative and isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        text = node.evaluated_value
        if isinstance(text, str):
            return text
    return None


def _mentions_kw_only(cls: cst.ClassDef) -> bool:
    """Whether the dataclass decorator or a field(...) of `cls` says kw_only."""
    calls = [d.decorator for d in cls.decorators if isinstance(d.decorator, cst.Call)]
    for statement in cls.body.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.AnnAssign) and isinstance(small.value, cst.Call):
                    calls.append(small.value)
    return any(
        arg.keyword is not None and arg.keyword.value == "kw_only"
        for call in calls
        for arg in call.args
    )


def _signature_names(methods: Iterable[Method]) -> set[str]:
    """The names a client class's method signatures refer to, besides built-in types
    (which it spells ``builtins.X`` when a method hides them): its annotations' types,
    ``Iterable`` and ``Chan`` for streams, and the classes its defaults name."""
    used: set[str] = set()
    for method in methods:
        refs = [param.type for param in method.params] + [method.returns]
        if method.stream_param is not None:
            used.add("Iterable")
            refs.append(method.stream_param.type)
        if method.stream_returns is not None:
            used.add("Chan")
            refs.append(method.stream_returns)
        for ref in refs:
            used |= _type_names(ref)
        for param in method.params:
            if param.default is not None:
                # Only the stdlib classes a default calls: the contract's own names in
                # defaults are reported where the default names them (see `service`).
                used |= {name for _, name in param.default.stdlib}
    return used


def _type_names(ref: TypeRef) -> set[str]:
    """The names `ref`'s spelling in the stubs uses (not built-in types)."""
    if isinstance(ref, NewTypeOf):
        return {ref.name}  # spelled by its own name: what it wraps is not written out
    names: set[str] = set()
    if isinstance(ref, Stdlib | Named):
        names.add(ref.name)
    elif isinstance(ref, LiteralOf):
        names.add("Literal")
    elif isinstance(ref, ListOf | DictOf) and ref.abstract:
        names.add("Sequence" if isinstance(ref, ListOf) else "Mapping")
    inner: list[TypeRef] = []
    if isinstance(ref, ListOf | SetOf):
        inner = [ref.item]
    elif isinstance(ref, DictOf):
        inner = [ref.key, ref.value]
    elif isinstance(ref, TupleOf):
        inner = list(ref.items)
    elif isinstance(ref, OptionalOf):
        inner = [ref.inner]
    elif isinstance(ref, Named):
        inner = list(ref.args)
    for part in inner:
        names |= _type_names(part)
    return names


def _walk_names(node: cst.CSTNode) -> Iterator[cst.Name]:
    """The names an expression looks up (``Role`` in ``Role.MEMBER``, not ``MEMBER``)."""
    if isinstance(node, cst.Name):
        yield node
    elif isinstance(node, cst.Attribute):
        yield from _walk_names(node.value)
    else:
        for child in node.children:
            yield from _walk_names(child)


def _is_none(ref: TypeRef) -> bool:
    return isinstance(ref, Scalar) and ref.name == "None"


def _hashable(ref: TypeRef) -> bool:
    if isinstance(ref, Scalar):
        return ref.name != "None"
    if isinstance(ref, Stdlib | LiteralOf):
        return True
    if isinstance(ref, Named):
        return ref.kind == "enum"
    if isinstance(ref, TupleOf):
        return all(_hashable(item) for item in ref.items)
    if isinstance(ref, NewTypeOf):
        return _hashable(ref.inner)
    return False


def builtin_name(ref: TypeRef) -> str | None:
    """The built-in name `ref`'s spelling starts with (``list`` for list[int]), if any."""
    if isinstance(ref, Scalar):
        return None if ref.name == "None" else ref.name
    if isinstance(ref, ListOf | DictOf) and not ref.abstract:
        return "list" if isinstance(ref, ListOf) else "dict"
    if isinstance(ref, SetOf):
        return "frozenset" if ref.frozen else "set"
    if isinstance(ref, TupleOf):
        return "tuple"
    return None


def _doc(node: cst.ClassDef | cst.FunctionDef) -> str:
    """The docstring of `node`, cleaned as inspect.cleandoc does ("" if none)."""
    return node.get_docstring(clean=True) or ""


def _source(node: cst.BaseExpression | None) -> str | None:
    """An expression's source text, as the contract writes it."""
    return None if node is None else cst.Module([]).code_for_node(node)


def _spell(ref: TypeRef, qualify: frozenset[str] = frozenset()) -> str:
    """The type as a user would write it (for messages and for stub annotations).

    Built-in names in `qualify` are written ``builtins.X``: inside a class whose
    methods are called ``list`` or ``set``, a bare ``list`` would name the method."""

    def sub(inner: TypeRef) -> str:
        return _spell(inner, qualify)

    text = _spell_head(ref, sub)
    head = builtin_name(ref)
    if head is not None and head in qualify:
        return f"builtins.{text}"
    return text


def _spell_head(ref: TypeRef, sub: Callable[[TypeRef], str]) -> str:
    if isinstance(ref, Named) and ref.args:
        return f"{ref.name}[{', '.join(sub(arg) for arg in ref.args)}]"
    if isinstance(ref, Scalar | Stdlib | Named | NewTypeOf):
        return ref.name
    if isinstance(ref, LiteralOf):
        return ref.spelled
    if isinstance(ref, ListOf):
        return f"{'Sequence' if ref.abstract else 'list'}[{sub(ref.item)}]"
    if isinstance(ref, SetOf):
        return f"{'frozenset' if ref.frozen else 'set'}[{sub(ref.item)}]"
    if isinstance(ref, DictOf):
        return f"{'Mapping' if ref.abstract else 'dict'}[{sub(ref.key)}, {sub(ref.value)}]"
    if isinstance(ref, TupleOf):
        if ref.variadic:
            return f"tuple[{sub(ref.items[0])}, ...]"
        return f"tuple[{', '.join(sub(i) for i in ref.items) or '()'}]"
    return f"{sub(ref.inner)} | None"


spell = _spell


def parse_contract(path: Path) -> Contract:
    """Parse one contract file; raises SpecErrors listing every problem found."""
    parser = _Parser(path)
    contract = parser.contract()
    if contract is None:
        # A generic dataclass is read once per use: the same error may come twice.
        errors = list({str(e): e for e in parser.errors}.values())
        errors.sort(key=lambda e: (str(e.path), e.line, e.column))
        raise SpecErrors(errors)
    return contract


def iter_types(ref: TypeRef) -> Iterator[TypeRef]:
    """`ref` and every type nested in it, outermost first (not into named classes)."""
    yield ref
    if isinstance(ref, ListOf | SetOf):
        yield from iter_types(ref.item)
    elif isinstance(ref, DictOf):
        yield from iter_types(ref.key)
        yield from iter_types(ref.value)
    elif isinstance(ref, TupleOf):
        for item in ref.items:
            yield from iter_types(item)
    elif isinstance(ref, OptionalOf | NewTypeOf):
        yield from iter_types(ref.inner)
    elif isinstance(ref, Named):
        for arg in ref.args:
            yield from iter_types(arg)


def iter_named(ref: TypeRef) -> Iterator[Named]:
    """Every dataclass and enum a type mentions, outermost first."""
    for part in iter_types(ref):
        if isinstance(part, Named):
            yield part

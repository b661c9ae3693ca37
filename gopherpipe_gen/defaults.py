"""Defaults: what a contract may write after ``=`` (a parameter's or a field's default)
and in ``field(default_factory=...)``, read without running the contract.

Accepted, with each value's type checked against the annotation:

- literals: numbers, strings, bytes, True, False, None; arithmetic on numbers (and ``+``
  of strings), e.g. ``64 * 1024``;
- ``EnumName.MEMBER`` and ``EnumName(value)``;
- tuples of defaults, ``frozenset(...)`` / ``tuple(...)`` of a tuple, list or set of them;
- module-level constants of the contract, or of a module beside it
  (``from .limits import CHUNK_SIZE [as X]``): plain, annotated or ``Final``, and defined
  from other constants; the stubs import the constant, never copy its value;
- calls of the standard library's value classes the contract language has (datetime,
  date, time, timedelta, Decimal, UUID) with literal or constant arguments: gen calls the
  real constructor on those values to check them (a stdlib class, never the contract's
  code);
- calls of a contract dataclass or NamedTuple (arguments checked against its fields),
  or of a NewType.

A parameter default is one object that every call shares (Python's rule, and the server's
defaults table), so it may not be mutable: no list, dict or set, no instance of a dataclass
that is not frozen. A field's default likewise (Python refuses it); a field says
``field(default_factory=F)`` instead, where F is list, dict, set, frozenset or tuple, a
contract dataclass or NamedTuple all of whose fields have defaults, or ``lambda: EXPR``
where EXPR is any of the above or a list, dict or set display of them.

Names are spelled in the stubs as the stubs import them: an aliased import
(``from uuid import UUID as UID``, ``from .models import Color as C``) is written with
the original name (``UUID(...)``, ``Color.RED``).
"""

from __future__ import annotations

import datetime
import decimal
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import libcst as cst

from .model import (
    INT_MAX,
    INT_MIN,
    INT_RANGE,
    STDLIB_TYPES,
    Dataclass,
    Default,
    DictOf,
    EnumDef,
    ListOf,
    LiteralOf,
    Named,
    NewTypeOf,
    OptionalOf,
    Scalar,
    SetOf,
    Stdlib,
    StdlibName,
    TupleOf,
    TypeRef,
    key_of,
)

if TYPE_CHECKING:
    from .parse import _Module, _Parser

ACCEPTED = (
    "a default may be a literal (a number, a string, bytes, True, False, None), "
    "EnumName.MEMBER, a tuple, a module-level constant of the contract (or one imported from "
    "a module beside it), or a call of datetime, date, time, timedelta, Decimal, UUID, "
    "frozenset, or of a contract dataclass, NamedTuple, Enum or NewType, with such arguments"
)
FACTORY_HELP = (
    "default_factory must be list, dict, set, frozenset, tuple, a contract dataclass or "
    "NamedTuple whose fields all have defaults, or lambda: <a default, or a list, dict or "
    "set display of them>"
)
STDLIB_CLASSES: dict[str, Callable[..., object]] = {
    "datetime": datetime.datetime,
    "date": datetime.date,
    "time": datetime.time,
    "timedelta": datetime.timedelta,
    "Decimal": decimal.Decimal,
    "UUID": uuid.UUID,
}
BUILTIN_CALLS = frozenset({"frozenset", "tuple", "list", "dict", "set"})
ARITHMETIC: dict[type[cst.BaseBinaryOp], Callable[[object, object], object]] = {
    cst.Add: operator.add,
    cst.Subtract: operator.sub,
    cst.Multiply: operator.mul,
    cst.Divide: operator.truediv,
    cst.FloorDivide: operator.floordiv,
    cst.Modulo: operator.mod,
    cst.Power: operator.pow,
}
# int -> float and bool -> int/float, as type checkers widen them.
WIDENS = frozenset({("int", "float"), ("bool", "int"), ("bool", "float")})


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Val:
    """What gen knows of a default: its static type, and its value where it can tell."""

    ref: TypeRef | None
    """Its type as a type checker sees it; None for a display (see `display`)."""
    value: object = UNKNOWN
    """Its Python value (numbers, strings, stdlib values, tuples of those), if known."""
    literal: bool = False
    """Typed by its value (a literal, or a Final constant of one): fits a Literal[...]."""
    display: str | None = None
    """"tuple", "frozenset", "list", "set" or "dict" when built here from `items`."""
    items: tuple[Val, ...] = ()
    pairs: tuple[tuple[Val, Val], ...] = ()
    mutable: str | None = None
    """What makes it mutable ("a list", ...), if it is."""


def _plain(val: Val) -> Val:
    """`val` as a constant holding it is typed: no longer literal."""
    return Val(
        val.ref,
        val.value,
        False,
        val.display,
        tuple(_plain(item) for item in val.items),
        tuple((_plain(k), _plain(v)) for k, v in val.pairs),
        val.mutable,
    )


def _is_none(val: Val) -> bool:
    return isinstance(val.ref, Scalar) and val.ref.name == "None"


def fits(val: Val, ref: TypeRef) -> bool:
    """Whether a type checker accepts `val` where `ref` is declared."""
    if isinstance(ref, OptionalOf):
        return _is_none(val) or fits(val, ref.inner)
    if val.display is not None:
        return _display_fits(val, ref)
    src = val.ref
    if src == ref:
        return True
    if isinstance(ref, Scalar):
        if isinstance(src, Scalar):
            return (src.name, ref.name) in WIDENS
        if isinstance(src, LiteralOf):
            return all(kind == ref.name or (kind, ref.name) in WIDENS for kind, _ in src.values)
        return False
    if isinstance(ref, LiteralOf):
        if isinstance(src, LiteralOf):
            return set(src.values) <= set(ref.values)
        return val.literal and any(
            type(val.value) is type(value) and val.value == value for _, value in ref.values
        )
    if isinstance(src, TupleOf) and isinstance(ref, TupleOf | ListOf):
        if isinstance(ref, ListOf):
            return ref.abstract and all(fits(Val(item), ref.item) for item in src.items)
        if ref.variadic:
            return all(fits(Val(item), ref.items[0]) for item in src.items)
        return (
            not src.variadic
            and len(src.items) == len(ref.items)
            and all(fits(Val(a), b) for a, b in zip(src.items, ref.items, strict=True))
        )
    if isinstance(src, SetOf) and isinstance(ref, SetOf):
        return src.frozen == ref.frozen and fits(Val(src.item), ref.item)
    return False


def _display_fits(val: Val, ref: TypeRef) -> bool:
    items = val.items
    if val.display == "tuple":
        if isinstance(ref, ListOf) and ref.abstract:
            return all(fits(item, ref.item) for item in items)
        if not isinstance(ref, TupleOf):
            return False
        if ref.variadic:
            return all(fits(item, ref.items[0]) for item in items)
        return len(items) == len(ref.items) and all(
            fits(a, b) for a, b in zip(items, ref.items, strict=True)
        )
    if val.display in {"frozenset", "set"}:
        return (
            isinstance(ref, SetOf)
            and ref.frozen == (val.display == "frozenset")
            and all(fits(item, ref.item) for item in items)
        )
    if val.display == "list":
        return isinstance(ref, ListOf) and all(fits(item, ref.item) for item in items)
    return isinstance(ref, DictOf) and all(
        fits(k, ref.key) and fits(v, ref.value) for k, v in val.pairs
    )


@dataclass
class _Spelling:
    """How the stubs spell one default: names to rewrite, and what to import for it."""

    renames: dict[int, str] = field(default_factory=dict)
    """id(node) -> the name it is written as (nodes stay alive in the parsed module)."""
    imports: dict[tuple[Path, str], None] = field(default_factory=dict)
    stdlib: dict[tuple[str, str], None] = field(default_factory=dict)


class _Rename(cst.CSTTransformer):
    def __init__(self, renames: dict[int, str]) -> None:
        super().__init__()
        self.renames = renames

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        name = self.renames.get(id(original_node))
        return updated_node if name is None else updated_node.with_changes(value=name)

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> cst.BaseExpression:
        name = self.renames.get(id(original_node))
        if name is None:
            return updated_node
        return cst.Name(name, lpar=updated_node.lpar, rpar=updated_node.rpar)


@dataclass(frozen=True)
class _Target:
    """What a name used in a default stands for."""

    kind: Literal["constant", "type", "stdlib", "builtin"]
    name: str
    """Its name where it is defined (the stubs spell it so)."""
    module: _Module | None = None
    """A constant's module."""
    ref: TypeRef | None = None
    """A type's."""
    stdlib_module: str = ""


class DefaultReader:
    """Reads defaults for a `_Parser`, reporting through it."""

    def __init__(self, parser: _Parser) -> None:
        self.p = parser
        self.constants: dict[str, Val | None] = {}
        """Constants read so far, by module:name; None if broken (reported once)."""
        self.in_progress: set[str] = set()

    # -- entry points --------------------------------------------------------------------

    def param_default(self, mod: _Module, node: cst.BaseExpression, ref: TypeRef) -> Default:
        spelling = _Spelling()
        val = self.value(mod, node, spelling)
        self.check(mod, node, val, ref, field=False)
        renamed = node.visit(_Rename(spelling.renames))
        assert isinstance(renamed, cst.BaseExpression)
        text = mod.module.code_for_node(renamed)
        return Default(text, tuple(spelling.imports), tuple(spelling.stdlib))

    def field_default(self, mod: _Module, node: cst.BaseExpression, ref: TypeRef) -> None:
        self.check(mod, node, self.value(mod, node, None), ref, field=True)

    def factory(self, mod: _Module, node: cst.BaseExpression, ref: TypeRef) -> None:
        inner = ref.inner if isinstance(ref, OptionalOf) else ref
        if isinstance(node, cst.Lambda):
            params = node.params
            if (
                params.params
                or params.posonly_params
                or params.kwonly_params
                or (isinstance(params.star_arg, cst.Param) or params.star_kwarg is not None)
            ):
                raise self.p.fail(mod, params, "a default_factory lambda takes no arguments")
            val = self.value(mod, node.body, None, fresh=True)
            if not fits(val, ref):
                raise self.mismatch(mod, node.body, val, ref)
            return
        if not isinstance(node, cst.Name):
            raise self.p.fail(mod, node, FACTORY_HELP)
        if node.value not in {*mod.classes, *mod.bindings, *mod.imports, *BUILTIN_CALLS}:
            raise self.p.fail(
                mod,
                node,
                f"default_factory={node.value}: gen cannot tell what {node.value} makes "
                f"without running the contract; {FACTORY_HELP}",
            )
        target = self.resolve(mod, node.value, node)
        name, ref_ = target.name, target.ref
        if target.kind == "builtin":
            wanted = {
                "list": isinstance(inner, ListOf),
                "dict": isinstance(inner, DictOf),
                "set": isinstance(inner, SetOf) and not inner.frozen,
                "frozenset": isinstance(inner, SetOf) and inner.frozen,
                "tuple": isinstance(inner, TupleOf) and (inner.variadic or not inner.items),
            }
            if not wanted[name]:
                raise self.p.fail(
                    mod,
                    node,
                    f"default_factory={name} makes a {name}, not a {_spell(ref)}: "
                    f"{FACTORY_HELP}",
                )
            return
        if isinstance(ref_, Named) and ref_.kind in {"dataclass", "namedtuple"}:
            record = self.record(mod, node, ref_)
            missing = [f.name for f in record.fields if not f.has_default]
            if missing:
                raise self.p.fail(
                    mod,
                    node,
                    f"default_factory={node.value} calls {ref_.name}() with no arguments, "
                    f"but its field {missing[0]!r} has no default: give it one, or write "
                    f"default_factory=lambda: {ref_.name}(...)",
                )
            if ref_ != inner:
                raise self.p.fail(
                    mod,
                    node,
                    f"default_factory={node.value} makes a {ref_.name}, not a {_spell(ref)}",
                )
            return
        raise self.p.fail(mod, node, FACTORY_HELP)

    # -- checks --------------------------------------------------------------------------

    def check(
        self, mod: _Module, node: cst.BaseExpression, val: Val, ref: TypeRef, field: bool
    ) -> None:
        if not fits(val, ref):
            raise self.mismatch(mod, node, val, ref)
        _check_int_range(self.p, mod, node, val.value, ref)
        if val.mutable is None:
            return
        text = mod.module.code_for_node(node)
        if field:
            raise self.p.fail(
                mod,
                node,
                f"default {text} is {val.mutable}, one object every instance would share "
                f"(Python refuses it): write field(default_factory=lambda: {text})",
            )
        raise self.p.fail(
            mod,
            node,
            f"default {text} is {val.mutable}, one object every call would share: "
            "default to an immutable value (a tuple, a frozenset, a frozen dataclass) "
            "or to None",
        )

    def mismatch(self, mod: _Module, node: cst.BaseExpression, val: Val, ref: TypeRef) -> Exception:
        text = mod.module.code_for_node(node)
        inner = ref.inner if isinstance(ref, OptionalOf) else ref
        if (
            isinstance(inner, LiteralOf)
            and not val.literal
            and isinstance(val.ref, Scalar)
            and fits(Val(val.ref, val.value, True), inner)
        ):
            return self.p.fail(
                mod,
                node,
                f"default {text} is a {val.ref.name} to type checkers, not {inner.spelled}: "
                "declare the constant Final (NAME: Final = value, from typing import Final) "
                "or write the value itself",
            )
        if isinstance(inner, NewTypeOf) and fits(val, inner.inner):
            return self.p.fail(
                mod,
                node,
                f"default {text} does not match the type {inner.name}: write the value "
                f"through the NewType, e.g. {inner.name}({text})",
            )
        if isinstance(node, cst.Name) and val.ref is not None:
            return self.p.fail(
                mod,
                node,
                f"default {text} is {_spell(val.ref)}, which does not match the type "
                f"{_spell(ref)}",
            )
        return self.p.fail(mod, node, f"default {text} does not match the type {_spell(ref)}")

    # -- values --------------------------------------------------------------------------

    def value(
        self,
        mod: _Module,
        node: cst.BaseExpression,
        spelling: _Spelling | None,
        fresh: bool = False,
    ) -> Val:
        """What `node` evaluates to; `fresh`: evaluated anew each time (a factory)."""
        if isinstance(node, cst.Name):
            if node.value in {"True", "False"}:
                return Val(Scalar("bool"), node.value == "True", True)
            if node.value == "None":
                return Val(Scalar("None"), None, True)
            return self.name_value(mod, node, spelling)
        if isinstance(node, cst.Integer):
            return Val(Scalar("int"), int(node.value.replace("_", ""), 0), True)
        if isinstance(node, cst.Float):
            return Val(Scalar("float"), float(node.value.replace("_", "")), True)
        if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            text = node.evaluated_value
            if isinstance(text, bytes):
                return Val(Scalar("bytes"), text, True)
            if isinstance(text, str):
                return Val(Scalar("str"), text, True)
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus | cst.Plus):
            operand = self.value(mod, node.expression, spelling, fresh)
            number = operand.value
            if type(number) not in {int, float} and not isinstance(number, decimal.Decimal):
                raise self.p.fail(mod, node, f"a sign fits numbers only: {ACCEPTED}")
            result = -number if isinstance(node.operator, cst.Minus) else number  # type: ignore[operator]
            return Val(operand.ref, result, operand.literal)
        if isinstance(node, cst.BinaryOperation) and type(node.operator) in ARITHMETIC:
            return self.arithmetic(mod, node, spelling, fresh)
        if isinstance(node, cst.Tuple | cst.List | cst.Set):
            items: list[Val] = []
            for element in node.elements:
                if isinstance(element, cst.StarredElement):
                    raise self.p.fail(mod, element, f"write each item: {ACCEPTED}")
                items.append(self.value(mod, element.value, spelling, fresh))
            display = {cst.Tuple: "tuple", cst.List: "list", cst.Set: "set"}[type(node)]
            return self.display(display, tuple(items), (), fresh)
        if isinstance(node, cst.Dict):
            pairs: list[tuple[Val, Val]] = []
            for item in node.elements:
                if not isinstance(item, cst.DictElement):
                    raise self.p.fail(mod, item, f"write each key: {ACCEPTED}")
                pairs.append(
                    (
                        self.value(mod, item.key, spelling, fresh),
                        self.value(mod, item.value, spelling, fresh),
                    )
                )
            return self.display("dict", (), tuple(pairs), fresh)
        if isinstance(node, cst.Attribute):
            return self.attribute_value(mod, node, spelling)
        if isinstance(node, cst.Call):
            return self.call_value(mod, node, spelling, fresh)
        raise self.p.fail(
            mod,
            node,
            f"{_code(mod, node)} is not a default gen can check without running the "
            f"contract: {ACCEPTED}",
        )

    def display(
        self,
        display: str,
        items: tuple[Val, ...],
        pairs: tuple[tuple[Val, Val], ...],
        fresh: bool,
    ) -> Val:
        mutable = None
        if display in {"list", "set", "dict"} and not fresh:
            mutable = f"a {display}"
        for part in (*items, *(v for pair in pairs for v in pair)):
            mutable = mutable or part.mutable
        value: object = UNKNOWN
        if display in {"tuple", "frozenset"} and all(i.value is not UNKNOWN for i in items):
            value = tuple(i.value for i in items)
            if display == "frozenset":
                try:
                    value = frozenset(i.value for i in items)
                except TypeError:
                    value = UNKNOWN
        return Val(None, value, False, display, items, pairs, mutable)

    def arithmetic(
        self,
        mod: _Module,
        node: cst.BinaryOperation,
        spelling: _Spelling | None,
        fresh: bool,
    ) -> Val:
        left = self.value(mod, node.left, spelling, fresh).value
        right = self.value(mod, node.right, spelling, fresh).value
        allowed = (int, float, str, bytes, decimal.Decimal, datetime.timedelta)
        if not isinstance(left, allowed) or not isinstance(right, allowed):
            raise self.p.fail(
                mod, node, f"arithmetic in a default takes numbers or strings: {ACCEPTED}"
            )
        operands = (left, right)
        if (
            isinstance(node.operator, cst.Power) and isinstance(right, int) and abs(right) > 1024
        ) or (
            isinstance(node.operator, cst.Multiply)
            and any(isinstance(x, str | bytes) for x in operands)
            and any(isinstance(x, int) and x > 65536 for x in operands)
        ):
            raise self.p.fail(mod, node, f"{_code(mod, node)} is too large for a default")
        try:
            result = ARITHMETIC[type(node.operator)](left, right)
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise self.p.fail(mod, node, f"{_code(mod, node)} fails: {exc}") from None
        return Val(self.ref_of(mod, node, result), result)

    def ref_of(self, mod: _Module, node: cst.CSTNode, result: object) -> TypeRef:
        for name, cls in STDLIB_CLASSES.items():
            if type(result) is cls:
                stdlib: StdlibName = name  # type: ignore[assignment]
                return Stdlib(stdlib)
        kind = type(result).__name__
        if kind not in {"bool", "int", "float", "str", "bytes"}:
            raise self.p.fail(mod, node, f"{_code(mod, node)} gives a {kind}: {ACCEPTED}")
        return Scalar(kind)  # type: ignore[arg-type]

    def name_value(self, mod: _Module, node: cst.Name, spelling: _Spelling | None) -> Val:
        target = self.resolve(mod, node.value, node)
        if target.module is not None:
            val = self.constant(target.module, target.name)
            if spelling is not None:
                spelling.renames[id(node)] = target.name
                spelling.imports[(target.module.resolved, target.name)] = None
            return val
        if isinstance(target.ref, Named) and target.ref.kind == "enum":
            hint = f"write one member, {node.value}.MEMBER"
        else:
            hint = f"call it, e.g. {node.value}(...)"
        raise self.p.fail(mod, node, f"{node.value} is a class, not a value: {hint}")

    def attribute_value(self, mod: _Module, node: cst.Attribute, spelling: _Spelling | None) -> Val:
        base = node.value
        code = _code(mod, node)
        if isinstance(base, cst.Name) and base.value not in mod.module_imports:
            target = self.resolve(mod, base.value, base).ref
            if isinstance(target, Named) and target.kind == "enum":
                enum = self.enum_def(target)
                member = node.attr.value
                if member not in {name for name, _ in enum.members}:
                    raise self.p.fail(mod, node, f"{enum.name} has no member {member!r}")
                self.use_type(base, target, spelling)
                return Val(target, ("member", member), True)
        raise self.p.fail(
            mod,
            node,
            f"{code} is not a default gen can check (it reads no attributes but an Enum's "
            f"members): {ACCEPTED}",
        )

    def call_value(
        self, mod: _Module, node: cst.Call, spelling: _Spelling | None, fresh: bool
    ) -> Val:
        callee = self.callee(mod, node.func, spelling)
        kind, name, target = callee.kind, callee.name, callee.ref
        code = _code(mod, node)
        positional: list[tuple[cst.Arg, Val]] = []
        keywords: dict[str, tuple[cst.Arg, Val]] = {}
        for arg in node.args:
            if arg.star:
                raise self.p.fail(mod, arg, f"write each argument of {name}(...) out")
            val = self.value(mod, arg.value, spelling, fresh)
            if arg.keyword is None:
                if keywords:
                    raise self.p.fail(mod, arg, "a positional argument follows a keyword one")
                positional.append((arg, val))
            elif arg.keyword.value in keywords:
                raise self.p.fail(mod, arg, f"argument {arg.keyword.value!r} given twice")
            else:
                keywords[arg.keyword.value] = (arg, val)
        if kind == "stdlib":
            values = [v.value for _, v in positional]
            named = {k: v.value for k, (_, v) in keywords.items()}
            if any(v is UNKNOWN for v in (*values, *named.values())):
                raise self.p.fail(
                    mod,
                    node,
                    f"the arguments of {name}(...) must be literals or constants gen can "
                    "evaluate (numbers and strings)",
                )
            try:
                result = STDLIB_CLASSES[name](*values, **named)
            except decimal.InvalidOperation:
                raise self.p.fail(mod, node, f"{code} fails: not a number") from None
            except (ArithmeticError, TypeError, ValueError) as exc:
                raise self.p.fail(mod, node, f"{code} fails: {exc}") from None
            stdlib: StdlibName = name  # type: ignore[assignment]
            return Val(Stdlib(stdlib), result)
        if kind == "builtin":
            if keywords or len(positional) > 1:
                raise self.p.fail(mod, node, f"{name}() takes one tuple, list or set here")
            items: tuple[Val, ...] = ()
            if positional:
                arg, val = positional[0]
                if val.display not in {"tuple", "list", "set", "frozenset"}:
                    raise self.p.fail(
                        mod, arg, f"{name}(...) takes a tuple, list or set display here"
                    )
                items = val.items
            if name == "dict":
                if positional:
                    raise self.p.fail(mod, node, "write dict() or a {...} display")
                return self.display("dict", (), (), fresh)
            return self.display(name, items, (), fresh)
        if isinstance(target, NewTypeOf):
            if keywords or len(positional) != 1:
                raise self.p.fail(mod, node, f"{name}(...) takes one value")
            arg, val = positional[0]
            if not fits(val, target.inner):
                raise self.mismatch(mod, arg.value, val, target.inner)
            return Val(target, val.value, False, mutable=val.mutable)
        if isinstance(target, Named) and target.kind == "enum":
            enum = self.enum_def(target)
            if keywords or len(positional) != 1:
                raise self.p.fail(mod, node, f"{name}(...) takes one value, a member's")
            arg, val = positional[0]
            for member, value in enum.members:
                if type(value) is type(val.value) and value == val.value:
                    return Val(target, ("member", member), True)
            raise self.p.fail(
                mod, arg, f"{enum.name} has no member with the value {_code(mod, arg.value)}"
            )
        if isinstance(target, Named) and target.kind in {"dataclass", "namedtuple"}:
            return self.instance(mod, node, target, positional, keywords)
        raise self.p.fail(
            mod,
            node,
            f"{code} makes a {name}, a TypedDict, which is a dict: default to None",
        )

    def instance(
        self,
        mod: _Module,
        node: cst.Call,
        ref: Named,
        positional: list[tuple[cst.Arg, Val]],
        keywords: dict[str, tuple[cst.Arg, Val]],
    ) -> Val:
        record = self.record(mod, node, ref)
        names = [f.name for f in record.fields]
        if len(positional) > len(names):
            raise self.p.fail(
                mod, positional[len(names)][0], f"{ref.name} has {len(names)} field(s)"
            )
        given = dict(zip(names, positional, strict=False))
        for key, pair in keywords.items():
            if key not in names:
                raise self.p.fail(mod, pair[0], f"{ref.name} has no field {key!r}")
            if key in given:
                raise self.p.fail(mod, pair[0], f"field {key!r} of {ref.name} given twice")
            given[key] = pair
        mutable = None if self.frozen(ref) else f"a {ref.name} (a dataclass that is not frozen)"
        for item in record.fields:
            if item.name not in given:
                if not item.has_default:
                    raise self.p.fail(
                        mod,
                        node,
                        f"{_code(mod, node)} leaves out {ref.name}'s field {item.name!r}, "
                        "which has no default",
                    )
                continue
            arg, val = given[item.name]
            if not fits(val, item.type):
                raise self.p.fail(
                    mod,
                    arg.value,
                    f"{ref.name}'s field {item.name!r} is {_spell(item.type)}: "
                    f"{_code(mod, arg.value)} does not match",
                )
            mutable = mutable or val.mutable
        return Val(ref, UNKNOWN, False, mutable=mutable)

    # -- names ---------------------------------------------------------------------------

    def resolve(self, mod: _Module, name: str, node: cst.CSTNode) -> _Target:
        """What `name`, used in a default in `mod`, stands for."""
        from .parse import STDLIB_MODULES

        if name in mod.classes or (name in mod.bindings and _is_type(mod.bindings[name])):
            return self.type_target(mod, name, node)
        if name in mod.bindings:
            return _Target("constant", name, module=mod)
        if name in mod.imports:
            source, dots, original, alias = mod.imports[name]
            if dots == 0 and source in STDLIB_MODULES:
                if STDLIB_TYPES.get(original) != source:
                    raise self.p.fail(
                        mod,
                        node,
                        f"{source}.{original} is none of the standard library's classes a "
                        "default may call (datetime, date, time, timedelta, Decimal, UUID)",
                    )
                return _Target("stdlib", original, stdlib_module=source)
            path = self.p.module_file(mod, source, dots)
            if dots == 0 and not path.exists():
                raise self.p.fail(
                    mod,
                    node,
                    f"{name} comes from {source}, which gen does not read (it reads modules "
                    f"beside the contract only): {ACCEPTED}",
                )
            if not path.exists():
                raise self.p.fail(
                    mod, node, f"cannot find module {'.' * dots}{source} (looked for {path})"
                )
            other = self.p.load(path, (mod, alias))
            if original in other.classes or (
                original in other.bindings and _is_type(other.bindings[original])
            ):
                return self.type_target(mod, name, node)
            if original in other.bindings:
                return _Target("constant", original, module=other)
            raise self.p.fail(
                mod,
                node,
                f"{path} does not define {original!r} at top level: import a constant from "
                "the module that defines it",
            )
        if name in BUILTIN_CALLS:
            return _Target("builtin", name)
        raise self.p.fail(
            mod,
            node,
            f"{name!r} is not a module-level constant of the contract (a default is "
            f"evaluated where the contract is imported): {ACCEPTED}",
        )

    def callee(self, mod: _Module, func: cst.BaseExpression, spelling: _Spelling | None) -> _Target:
        from .parse import STDLIB_MODULES

        code = _code(mod, func)
        known = {*mod.classes, *mod.bindings, *mod.imports, *BUILTIN_CALLS}
        if isinstance(func, cst.Name) and func.value in known:
            target = self.resolve(mod, func.value, func)
            if target.kind == "constant":
                raise self.p.fail(mod, func, f"{func.value} is a constant, not a class")
            if target.kind == "stdlib" and spelling is not None:
                spelling.renames[id(func)] = target.name
                spelling.stdlib[(target.stdlib_module, target.name)] = None
            if target.ref is not None:
                self.use_type(func, target.ref, spelling)
            return target
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            base = func.value.value
            module = mod.module_imports.get(base)
            if module in STDLIB_MODULES and STDLIB_TYPES.get(func.attr.value) == module:
                assert module is not None
                name = func.attr.value
                if spelling is not None:
                    spelling.renames[id(func)] = name
                    spelling.stdlib[(module, name)] = None
                return _Target("stdlib", name, stdlib_module=module)
            if module is None and (
                base in STDLIB_CLASSES
                or (base in mod.imports and mod.imports[base][2] in STDLIB_CLASSES)
            ):
                raise self.p.fail(
                    mod,
                    func,
                    f"{code}() is not a fixed value (gen never runs it, and its result "
                    "would differ between client and server): write the value, e.g. "
                    "datetime(2024, 1, 1), or default to None and compute it in the "
                    "implementation",
                )
        raise self.p.fail(
            mod,
            func,
            f"{code}(...) is a call gen cannot check without running the contract: "
            f"{ACCEPTED}; for anything else, default to None and compute the value in the "
            "implementation",
        )

    def type_target(self, mod: _Module, name: str, node: cst.CSTNode) -> _Target:
        ref = self.p.named(mod, name, node)
        spelled = ref.name if isinstance(ref, Named | NewTypeOf) else name
        return _Target("type", spelled, ref=ref)

    def use_type(self, node: cst.CSTNode, ref: TypeRef, spelling: _Spelling | None) -> None:
        if spelling is not None and isinstance(ref, Named | NewTypeOf):
            spelling.renames[id(node)] = ref.name
            spelling.imports[(ref.module, ref.name)] = None

    def constant(self, mod: _Module, name: str) -> Val:
        key = f"{mod.resolved}:{name}"
        if key in self.constants:
            found = self.constants[key]
            if found is None:
                raise _invalid()
            return found
        binding = mod.bindings[name]
        if key in self.in_progress:
            raise self.p.fail(mod, binding, f"constant {name} is defined from itself")
        self.in_progress.add(key)
        result: Val | None = None
        try:
            result = self.constant_value(mod, name, binding)
            return result
        finally:
            self.in_progress.discard(key)
            self.constants[key] = result

    def constant_value(
        self, mod: _Module, name: str, binding: cst.Assign | cst.AnnAssign | cst.TypeAlias
    ) -> Val:
        if isinstance(binding, cst.TypeAlias) or binding.value is None:
            raise self.p.fail(mod, binding, f"{name} is a type or has no value: {ACCEPTED}")
        declared: TypeRef | None = None
        final = False
        if isinstance(binding, cst.AnnAssign):
            annotation = binding.annotation.annotation
            head = annotation.value if isinstance(annotation, cst.Subscript) else annotation
            from .parse import _tail_name

            if _tail_name(head) == "Final":
                final = True
                if isinstance(annotation, cst.Subscript):
                    element = annotation.slice[0].slice
                    if len(annotation.slice) != 1 or not isinstance(element, cst.Index):
                        raise self.p.fail(mod, annotation, "write Final[T] with one type")
                    declared = self.p.type_of(mod, element.value)
            else:
                declared = self.p.type_of(mod, annotation)
        val = self.value(mod, binding.value, None)
        if declared is not None:
            if not fits(val, declared):
                raise self.p.fail(
                    mod,
                    binding.value,
                    f"{name}'s value {_code(mod, binding.value)} does not match its declared "
                    f"type {_spell(declared)}",
                )
            return Val(declared, val.value, isinstance(declared, LiteralOf), mutable=val.mutable)
        if final and val.display is None:
            return val
        return _plain(val)

    def enum_def(self, ref: Named) -> EnumDef:
        key = key_of(ref)
        enum = self.p.enums.get(key)
        if key in self.p.refused or enum is None:
            raise _invalid()  # the Enum's own error says what is wrong
        return enum

    def record(self, mod: _Module, node: cst.CSTNode, ref: Named) -> Dataclass:
        key = key_of(ref)
        if key in self.p.refused:
            raise _invalid()
        record = self.p.dataclasses.get(key)
        if record is None:
            raise self.p.fail(
                mod, node, f"{ref.name} cannot be built in a default inside its own declaration"
            )
        return record

    def frozen(self, ref: Named) -> bool:
        if ref.kind == "namedtuple":
            return True
        cls = self.p.modules[ref.module].classes[ref.name]
        for decorator in cls.decorators:
            call = decorator.decorator
            if isinstance(call, cst.Call):
                for arg in call.args:
                    if (
                        arg.keyword is not None
                        and arg.keyword.value == "frozen"
                        and isinstance(arg.value, cst.Name)
                        and arg.value.value == "True"
                    ):
                        return True
        return False


def _is_type(binding: cst.Assign | cst.AnnAssign | cst.TypeAlias) -> bool:
    """Whether a top-level binding declares a type (alias, NewType) rather than a value."""
    from .parse import _tail_name

    if isinstance(binding, cst.TypeAlias):
        return True
    if isinstance(binding, cst.AnnAssign):
        return _tail_name(binding.annotation.annotation) == "TypeAlias"
    value = binding.value
    if isinstance(value, cst.Call):
        return _tail_name(value.func) in {"NewType", "TypeVar", "NamedTuple", "TypedDict"}
    if isinstance(value, cst.BinaryOperation):
        return isinstance(value.operator, cst.BitOr)  # X = A | None
    return isinstance(value, cst.Subscript)


def _check_int_range(
    parser: _Parser, mod: _Module, node: cst.BaseExpression, value: object, ref: TypeRef
) -> None:
    """An int default outside the wire's range could never travel (see parse.INT_RANGE)."""
    while isinstance(ref, OptionalOf | NewTypeOf):
        ref = ref.inner
    if isinstance(ref, TupleOf) and isinstance(value, tuple):
        items = ref.items * len(value) if ref.variadic else ref.items
        for item, item_ref in zip(value, items, strict=False):
            _check_int_range(parser, mod, node, item, item_ref)
        return
    if type(value) is not int or (isinstance(ref, Scalar) and ref.name == "float"):
        return
    if not INT_MIN <= value <= INT_MAX:
        raise parser.fail(
            mod,
            node,
            f"default {mod.module.code_for_node(node)} is outside the wire's int range "
            f"({INT_RANGE}), so it could never travel: choose a value inside it",
        )


def _code(mod: _Module, node: cst.CSTNode) -> str:
    return mod.module.code_for_node(node).strip()


def _spell(ref: TypeRef) -> str:
    from .parse import spell

    return spell(ref)


def _invalid() -> Exception:
    from .parse import _Invalid

    return _Invalid()

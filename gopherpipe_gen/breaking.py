"""`gopherpipe breaking`: what changed on the wire between two generations of a contract.

`compare(old, new)` takes two parsed `model.Contract`s (never the user's modules) and
returns every `Change` it sees, each marked breaking or safe, located in the new
contract where the part still exists there, else in the old one. The rules follow the
wire form (RFC-TCP_LITE section 7, section 11.1; README "Evolving a contract"):

- Arguments and dataclass / NamedTuple fields travel as arrays, by position: names do
  not travel, so a parameter or field is matched by its position. A different name at a
  position is a rename or a replacement (breaking: the value's meaning may have
  changed, and keyword callers break); an old name found at another position is a
  reorder (breaking: values land in the wrong slot). Readers accept fewer trailing
  items down to the last one without a default and ignore items beyond the ones they
  declare, so a trailing addition with a default is safe in both directions; one
  without a default is breaking (old senders leave it out), and so is a removal.
- A TypedDict travels as a map by key name and a reader refuses unknown keys and
  missing required ones: every added, removed or renamed key, and every change of
  whether a key is required, is breaking.
- An Enum travels as its member's value: a member whose value changed (an ``auto()``
  renumbered by an insertion) or whose value is gone is breaking; a member renamed
  with its value kept is safe on the wire; an added member is safe until an old peer
  receives it (then a clear INVALID_ARGUMENT or INTERNAL naming the value).
- Types are compared by wire form: ``Sequence`` / ``list``, ``Mapping`` / ``dict``,
  a NewType and its base are the same; a record renamed with the same fields is safe
  (class names do not travel). ``T`` -> ``T | None`` and a ``Literal`` gaining values
  are widenings (safe while the new values are not sent to an old peer); any other
  change of type is breaking.
- A removed service or method, a changed call shape (unary / streams), a parameter
  losing its default, are breaking; an added service or method (an old server answers
  UNIMPLEMENTED), a gained default, a changed default (a server applies its own
  contract's default), ``@idempotent`` added or removed are safe.

Docstrings and comments are not part of the model, so changing them shows no change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .model import (
    Contract,
    Dataclass,
    DictOf,
    EnumDef,
    ListOf,
    LiteralOf,
    Method,
    Named,
    NewTypeOf,
    OptionalOf,
    Param,
    Scalar,
    SetOf,
    Stdlib,
    TupleOf,
    TypeRef,
    position_key,
)
from .parse import spell

_Namer = Callable[[str], str]
_Keyer = Callable[[str], tuple[str, ...]]
_Part = tuple[str, TypeRef, bool, object]
"""A positional part: name, type, whether it has a default, the Param or Field."""


@dataclass(frozen=True)
class Change:
    """One difference between two generations of a contract."""

    breaking: bool
    path: str
    """The file, as displayed (for a contract read from git, ``REF:path``)."""
    line: int
    column: int
    subject: str
    """The part: ``Service``, ``Service.method``, ``Service.method(param)``,
    ``Record.field``, ``Enum.MEMBER``."""
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.subject}: {self.message}"


@dataclass(frozen=True)
class _Side:
    contract: Contract
    records: dict[str, Dataclass]
    enums: dict[str, EnumDef]

    @staticmethod
    def of(contract: Contract) -> _Side:
        # Matched by class name: the two generations live in different files.
        records = {r.name: r for r in contract.dataclasses.values()}
        enums = {e.name: e for e in contract.enums.values()}
        return _Side(contract, records, enums)

    def where(self, *key: str) -> tuple[str, int, int] | None:
        found = self.contract.positions.get(position_key(*key))
        return None if found is None else (str(found[0]), found[1], found[2])


def _record_key(record: Dataclass | EnumDef) -> str:
    return f"{record.module}:{record.name}"


def _strip(ref: TypeRef) -> TypeRef:
    """The part of `ref` that decides its wire form."""
    while isinstance(ref, NewTypeOf):
        ref = ref.inner
    return ref


class _Comparer:
    def __init__(self, old: Contract, new: Contract) -> None:
        self.old = _Side.of(old)
        self.new = _Side.of(new)
        self.changes: list[Change] = []

    def add(
        self, breaking: bool, subject: str, message: str, new_key: tuple[str, ...] | None,
        old_key: tuple[str, ...] | None = None,
    ) -> None:  # fmt: skip
        place = None if new_key is None else self.new.where(*new_key)
        if place is None and old_key is not None:
            place = self.old.where(*old_key)
        if place is None:
            place = (str(self.new.contract.path), 1, 1)
        self.changes.append(Change(breaking, *place, subject, message))

    # -- types --------------------------------------------------------------------------

    def type_change(self, old: TypeRef, new: TypeRef) -> tuple[bool, str] | None:
        """None if `old` and `new` have the same wire form, else (breaking, message)."""
        if self.same(old, new, set()):
            if spell(old) != spell(new):
                return False, f"{spell(old)} -> {spell(new)}, the same wire form"
            return None
        a, b = _strip(old), _strip(new)
        if isinstance(b, OptionalOf) and self.same(a, b.inner, set()):
            return False, (
                f"widened {spell(old)} -> {spell(new)}: an old peer refuses None if it "
                "receives it (INVALID_ARGUMENT for an argument, INTERNAL for a result)"
            )
        if isinstance(a, LiteralOf) and isinstance(b, LiteralOf) and set(a.values) < set(b.values):
            return False, (
                f"widened {spell(old)} -> {spell(new)}: an old peer refuses a new value if "
                "it receives it"
            )
        return True, f"type changed {spell(old)} -> {spell(new)}"

    def same(self, old: TypeRef, new: TypeRef, seen: set[tuple[str, str]]) -> bool:
        a, b = _strip(old), _strip(new)
        if isinstance(a, Named) and isinstance(b, Named):
            return self.same_named(a, b, seen)
        if type(a) is not type(b):
            return False
        if isinstance(a, Scalar | Stdlib) and isinstance(b, Scalar | Stdlib):
            return a.name == b.name
        if isinstance(a, LiteralOf) and isinstance(b, LiteralOf):
            return set(a.values) == set(b.values)
        if isinstance(a, ListOf | SetOf) and isinstance(b, ListOf | SetOf):
            return self.same(a.item, b.item, seen)
        if isinstance(a, DictOf) and isinstance(b, DictOf):
            return self.same(a.key, b.key, seen) and self.same(a.value, b.value, seen)
        if isinstance(a, TupleOf) and isinstance(b, TupleOf):
            return (
                a.variadic == b.variadic
                and len(a.items) == len(b.items)
                and all(self.same(x, y, seen) for x, y in zip(a.items, b.items, strict=True))
            )
        if isinstance(a, OptionalOf) and isinstance(b, OptionalOf):
            return self.same(a.inner, b.inner, seen)
        return False

    def same_named(self, a: Named, b: Named, seen: set[tuple[str, str]]) -> bool:
        """Same wire form: by name when both generations declare it (its own changes are
        reported at its declaration), else (a renamed class) by its fields or members."""
        if a.kind != b.kind and {a.kind, b.kind} != {"dataclass", "namedtuple"}:
            return False
        if a.name == b.name and len(a.args) == len(b.args):
            return all(self.same(x, y, seen) for x, y in zip(a.args, b.args, strict=True))
        if (a.name, b.name) in seen:
            return True
        seen.add((a.name, b.name))
        if a.kind == "enum":
            old_enum, new_enum = self.old.enums.get(a.name), self.new.enums.get(b.name)
            return (
                old_enum is not None
                and new_enum is not None
                and {v for _, v in old_enum.members} == {v for _, v in new_enum.members}
            )
        old_rec, new_rec = self.old.records.get(a.name), self.new.records.get(b.name)
        if old_rec is None or new_rec is None or len(old_rec.fields) != len(new_rec.fields):
            return False
        by_name = old_rec.form == "typeddict" or new_rec.form == "typeddict"
        return all(
            (not by_name or (x.name == y.name and x.has_default == y.has_default))
            and self.same(x.type, y.type, seen)
            for x, y in zip(old_rec.fields, new_rec.fields, strict=True)
        )

    # -- services -----------------------------------------------------------------------

    def services(self) -> None:
        old = {s.name: s for s in self.old.contract.services}
        new = {s.name: s for s in self.new.contract.services}
        for name, service in old.items():
            if name not in new:
                self.add(True, name, "service removed or renamed: old clients get "
                         "UNIMPLEMENTED", None, (name,))  # fmt: skip
                continue
            old_methods = {m.name: m for m in service.methods}
            new_methods = {m.name: m for m in new[name].methods}
            for method_name, method in old_methods.items():
                if method_name in new_methods:
                    self.method(name, method, new_methods[method_name])
                else:
                    self.add(True, f"{name}.{method_name}", "method removed or renamed: old "
                             "clients get UNIMPLEMENTED", None, (name, method_name))  # fmt: skip
            for method_name in new_methods.keys() - old_methods.keys():
                self.add(False, f"{name}.{method_name}", "method added (an old server "
                         "answers it UNIMPLEMENTED)", (name, method_name))  # fmt: skip
        for name in new.keys() - old.keys():
            self.add(False, name, "service added", (name,))

    def method(self, service: str, old: Method, new: Method) -> None:
        subject = f"{service}.{old.name}"
        key = (service, old.name)
        if old.kind != new.kind:
            self.add(True, subject, f"call shape changed {old.kind} -> {new.kind}", key)
            return
        if old.idempotent != new.idempotent:
            state = "now" if new.idempotent else "no longer"
            self.add(False, subject, f"{state} @idempotent (clients' retries change)", key)
        self.positional(
            [(p.name, p.type, p.default is not None, p) for p in old.params],
            [(p.name, p.type, p.default is not None, p) for p in new.params],
            lambda name: f"{subject}({name})",
            lambda name: (service, old.name, name),
            lambda name: (service, old.name, name),
            "parameter",
        )
        returns = self.type_change(old.returns, new.returns)
        if returns is not None:
            self.add(returns[0], f"{subject} -> result", returns[1], (*key, "->"))
        for what, a, b in (
            ("stream item", old.stream_param, new.stream_param),
            ("result stream item", old.stream_returns, new.stream_returns),
        ):
            old_type = a.type if isinstance(a, Param) else a
            new_type = b.type if isinstance(b, Param) else b
            if old_type is None or new_type is None:
                continue
            change = self.type_change(old_type, new_type)
            if change is not None:
                self.add(change[0], f"{subject} {what}", change[1], key)

    # -- positional parts: arguments, dataclass and NamedTuple fields ---------------------

    def positional(
        self,
        old: list[_Part],
        new: list[_Part],
        subject: _Namer,
        key: _Keyer,
        old_key: _Keyer,
        what: str,
    ) -> None:
        old_names = [n for n, *_ in old]
        new_names = [n for n, *_ in new]
        for index, (name, old_type, old_default, old_part) in enumerate(old):
            if name not in new_names:
                if index < len(new) and new_names[index] not in old_names:
                    self.add(True, subject(name), f"{what} at position {index + 1} renamed or "
                             f"replaced by {new_names[index]!r} (the wire is positional: its "
                             "meaning may have changed; keyword callers break)",
                             key(new_names[index]), old_key(name))  # fmt: skip
                else:
                    self.add(True, subject(name), f"{what} removed: later ones move up a "
                             "position, or old senders send it and new readers ignore it",
                             None, old_key(name))  # fmt: skip
                    continue
            elif new_names.index(name) != index:
                # Its type and default are compared at neither place: it is already broken.
                self.add(True, subject(name), f"{what} reordered: was at position "
                         f"{index + 1}, now at {new_names.index(name) + 1} (the wire is "
                         "positional)", key(name), old_key(name))  # fmt: skip
                continue
            if index >= len(new):
                continue
            new_name, new_type, new_default, new_part = new[index]
            change = self.type_change(old_type, new_type)
            if change is not None:
                self.add(change[0], subject(new_name), change[1], key(new_name), old_key(name))
            if old_default and not new_default:
                self.add(True, subject(new_name), "lost its default: old senders may leave "
                         "it out", key(new_name))  # fmt: skip
            elif new_default and not old_default:
                self.add(False, subject(new_name), "gained a default", key(new_name))
            elif (
                isinstance(old_part, Param)
                and isinstance(new_part, Param)
                and old_part.default is not None
                and new_part.default is not None
                and old_part.default.text != new_part.default.text
            ):
                self.add(False, subject(new_name), f"default changed {old_part.default.text} -> "
                         f"{new_part.default.text} (a server uses its own contract's default "
                         "for an argument left out)", key(new_name))  # fmt: skip
        for index, (name, _type, has_default, _part) in enumerate(new):
            if name in old_names:
                continue
            if index < len(old):
                if old_names[index] in new_names:
                    self.add(True, subject(name), f"{what} inserted at position {index + 1}, "
                             "before the end: the ones after it move (the wire is "
                             "positional)", key(name))  # fmt: skip
                # else reported above as renamed or replaced
            elif has_default:
                self.add(False, subject(name), f"{what} added at the end with a default",
                         key(name))  # fmt: skip
            else:
                self.add(True, subject(name), f"{what} added without a default: old senders "
                         "leave it out and new readers refuse that", key(name))  # fmt: skip

    # -- declared types -----------------------------------------------------------------

    def records(self) -> None:
        for name, old in self.old.records.items():
            new = self.new.records.get(name)
            if new is not None:  # else a use of it, if any remains, is reported there
                self.record(old, new)

    def record(self, old: Dataclass, new: Dataclass) -> None:
        name = old.name
        old_key, new_key = _record_key(old), _record_key(new)
        by_name = "typeddict" in (old.form, new.form)
        if by_name and old.form != new.form:
            self.add(True, name, f"changed from a {old.form} to a {new.form}: one travels "
                     "as a map, the other as an array", (new_key,), (old_key,))  # fmt: skip
            return
        if by_name:
            self.keyed(old, new)
            return
        if old.form != new.form:
            self.add(False, name, f"{old.form} -> {new.form}, the same wire form", (new_key,))
        self.positional(
            [(f.name, f.type, f.has_default, f) for f in old.fields],
            [(f.name, f.type, f.has_default, f) for f in new.fields],
            lambda field: f"{name}.{field}",
            lambda field: (new_key, field),
            lambda field: (old_key, field),
            "field",
        )

    def keyed(self, old: Dataclass, new: Dataclass) -> None:
        old_fields = {f.name: f for f in old.fields}
        new_fields = {f.name: f for f in new.fields}
        new_key, old_key = _record_key(new), _record_key(old)
        for key, field in old_fields.items():
            subject = f"{old.name}[{key!r}]"
            if key not in new_fields:
                self.add(True, subject, "key removed or renamed: a TypedDict reader refuses "
                         "keys it does not declare", None, (old_key, key))  # fmt: skip
                continue
            other = new_fields[key]
            change = self.type_change(field.type, other.type)
            if change is not None:
                self.add(change[0], subject, change[1], (new_key, key))
            if field.has_default != other.has_default:
                now = "may be left out" if other.has_default else "required"
                self.add(True, subject, f"now {now}: a TypedDict reader checks this",
                         (new_key, key))  # fmt: skip
        for key in new_fields.keys() - old_fields.keys():
            self.add(True, f"{new.name}[{key!r}]", "key added: an old TypedDict reader "
                     "refuses a key it does not declare", (new_key, key))  # fmt: skip

    def enums(self) -> None:
        for name, old in self.old.enums.items():
            new = self.new.enums.get(name)
            if new is None:
                continue
            old_key, new_key = _record_key(old), _record_key(new)
            if old.value_type != new.value_type:
                self.add(True, name, f"values changed from {old.value_type} to "
                         f"{new.value_type}", (new_key,), (old_key,))  # fmt: skip
                continue
            new_by_name = dict(new.members)
            new_by_value = {value: member for member, value in new.members}
            for member, value in old.members:
                subject = f"{name}.{member}"
                if new_by_name.get(member, value) != value:
                    self.add(True, subject, f"value changed {value!r} -> "
                             f"{new_by_name[member]!r} (an auto() renumbered by an insertion "
                             "or a reorder?)", (new_key, member))  # fmt: skip
                elif member not in new_by_name and value in new_by_value:
                    other = new_by_value[value]
                    self.add(False, subject, f"renamed {other} with its value {value!r} kept "
                             "(names do not travel; code naming it breaks)",
                             (new_key, other))  # fmt: skip
                elif member not in new_by_name:
                    self.add(True, subject, f"member removed (value {value!r}): an old peer "
                             "may still send it", None, (old_key, member))  # fmt: skip
            old_names = dict(old.members)
            for member, value in new.members:
                if member not in old_names:
                    self.add(False, f"{name}.{member}", f"member added (value {value!r}); an "
                             "old peer that receives it refuses it: INVALID_ARGUMENT as an "
                             "argument, INTERNAL as a result", (new_key, member))  # fmt: skip


def compare(old: Contract, new: Contract) -> list[Change]:
    """Every change from `old` to `new`, breaking or safe, in contract order."""
    comparer = _Comparer(old, new)
    comparer.services()
    comparer.records()
    comparer.enums()
    return comparer.changes


def iter_breaking(changes: list[Change]) -> Iterator[Change]:
    return (change for change in changes if change.breaking)


def relocate(changes: list[Change], folder: Path, label: str) -> list[Change]:
    """`changes` with places under `folder` shown as ``label`` + their path in it (the
    old contract of ``--against-git`` is read from a temporary copy)."""
    prefix = str(folder) + "/"
    return [
        Change(
            c.breaking,
            label + c.path[len(prefix) :] if c.path.startswith(prefix) else c.path,
            c.line,
            c.column,
            c.subject,
            c.message,
        )
        for c in changes
    ]


class GitError(Exception):
    """The old contract could not be read from git (not a repository, unknown ref, no
    such file at that ref)."""


def checkout_from_git(contract: Path, ref: str, into: Path) -> Path:
    """Write the ``.py`` files of `contract`'s repository as they are at `ref` under
    `into` and return where `contract` is among them.

    Every ``.py`` file, not the contract alone, so that modules the contract imports
    from beside it (``from .models import X``) are read as they were at `ref` too, the
    way the parser reads them: from files, never by importing.
    """
    import io
    import subprocess
    import tarfile

    folder = contract.resolve().parent

    def git(*args: str) -> bytes:
        try:
            done = subprocess.run(["git", *args], cwd=folder, capture_output=True, check=False)
        except OSError as exc:
            raise GitError(f"cannot run git: {exc}") from None
        if done.returncode != 0:
            raise GitError(done.stderr.decode(errors="replace").strip() or "git failed")
        return done.stdout

    top = Path(git("rev-parse", "--show-toplevel").decode().strip())
    relative = contract.resolve().relative_to(top.resolve())
    folder = top  # git archive run in a subfolder would archive that folder only
    try:
        git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        raise GitError(f"{ref!r} is not a commit, branch or tag of {top}") from None
    try:
        git("cat-file", "-e", f"{ref}:{relative.as_posix()}")
    except GitError:
        raise GitError(f"{relative.as_posix()} does not exist at {ref}") from None
    archive = git("archive", "--format=tar", ref, "--", "*.py")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / relative

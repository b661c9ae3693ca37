"""`gopherpipe breaking`: one test per rule (README "Evolving a contract", RFC 11.1),
each comparing a small contract with one change against the same contract without it,
and the CLI over a real git history in a temporary repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from e2e_harness import same_checkout_env

from gopherpipe_gen.breaking import Change, compare
from gopherpipe_gen.parse import parse_contract

BASE = '''\
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum, auto
from typing import Literal, TypedDict, NotRequired

from gopherpipe_runtime import Chan


class Color(Enum):
    RED = auto()
    GREEN = auto()


class Size(Enum):
    S = "s"
    M = "m"


@dataclass
class Item:
    name: str
    count: int
    color: Color = Color.RED


class Meta(TypedDict):
    owner: str
    note: NotRequired[str]


class Shop(ABC):
    """The shop."""

    @abstractmethod
    def buy(self, item: Item, quantity: int, mode: Literal["a", "b"] = "a") -> int: ...

    @abstractmethod
    def size(self, size: Size, meta: Meta) -> list[str]: ...

    @abstractmethod
    def watch(self, name: str) -> Chan[Item]: ...


class Other(ABC):
    @abstractmethod
    def ping(self) -> None: ...
'''


def changes(tmp_path: Path, old_text: str, new_text: str) -> list[Change]:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old, new = tmp_path / "old" / "shop.py", tmp_path / "new" / "shop.py"
    old.write_text(old_text)
    new.write_text(new_text)
    return compare(parse_contract(old), parse_contract(new))


def one(tmp_path: Path, old: str, new: str, *, subject: str, breaking: bool) -> Change:
    """The one change about `subject`, checked breaking or safe; no other breaking one."""
    found = changes(tmp_path, old, new)
    about = [c for c in found if c.subject == subject]
    assert len(about) == 1, found
    assert about[0].breaking is breaking, about[0]
    assert [c for c in found if c.breaking and c is not about[0]] == [], found
    return about[0]


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_the_same_contract_has_no_changes_and_docstrings_do_not_count(tmp_path: Path) -> None:
    assert changes(tmp_path, BASE, edit('"""The shop."""', '"""A shop, now."""')) == []


def test_removed_method_is_breaking_and_located_in_the_old_contract(tmp_path: Path) -> None:
    new = edit("    @abstractmethod\n    def watch(self, name: str) -> Chan[Item]: ...\n", "")
    change = one(tmp_path, BASE, new, subject="Shop.watch", breaking=True)
    assert "removed or renamed" in change.message
    line = line_of(BASE, "def watch")
    assert (Path(change.path).parent.name, change.line, change.column) == ("old", line, 9)
    assert str(change).startswith(f"{tmp_path / 'old' / 'shop.py'}:{line}:9: Shop.watch: method")


def test_renamed_method_is_breaking(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit("def size(", "def sizes("), subject="Shop.size",
                 breaking=True)  # fmt: skip
    assert "removed or renamed" in change.message


def test_removed_service_is_breaking(tmp_path: Path) -> None:
    new = BASE[: BASE.index("class Other")]
    one(tmp_path, BASE, new, subject="Other", breaking=True)


def test_added_method_and_service_are_safe(tmp_path: Path) -> None:
    new = BASE + "\n\nclass Third(ABC):\n    @abstractmethod\n    def go(self) -> None: ...\n"
    new = edit("    def ping(self) -> None: ...\n",
               "    def ping(self) -> None: ...\n\n    @abstractmethod\n"
               "    def pong(self) -> int: ...\n", new)  # fmt: skip
    found = changes(tmp_path, BASE, new)
    assert [(c.subject, c.breaking) for c in found] == [("Other.pong", False), ("Third", False)]
    assert "UNIMPLEMENTED" in found[0].message
    # located in the new contract
    assert (found[0].line, found[0].column) == (line_of(new, "def pong"), 9)


def test_changed_parameter_type_is_breaking(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit("quantity: int,", "quantity: str,"),
                 subject="Shop.buy(quantity)", breaking=True)  # fmt: skip
    assert change.message == "type changed int -> str"
    assert Path(change.path).parent.name == "new"


def test_changed_result_and_stream_item_types_are_breaking(tmp_path: Path) -> None:
    one(tmp_path, BASE, edit("-> list[str]", "-> list[int]"), subject="Shop.size -> result",
        breaking=True)  # fmt: skip
    (tmp_path / "b").mkdir()
    one(tmp_path / "b", BASE, edit("-> Chan[Item]", "-> Chan[str]"),
        subject="Shop.watch result stream item", breaking=True)  # fmt: skip


def test_changed_field_type_is_breaking(tmp_path: Path) -> None:
    one(tmp_path, BASE, edit("    count: int\n", "    count: float\n"), subject="Item.count",
        breaking=True)  # fmt: skip


def test_new_parameter_without_default_is_breaking(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit("meta: Meta)", "meta: Meta, gift: bool)"),
                 subject="Shop.size(gift)", breaking=True)  # fmt: skip
    assert "without a default" in change.message


def test_new_trailing_parameter_with_default_is_safe(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit('= "a") -> int', '= "a", gift: bool = False) -> int'),
                 subject="Shop.buy(gift)", breaking=False)  # fmt: skip
    assert change.message == "parameter added at the end with a default"


def test_new_field_without_default_is_breaking(tmp_path: Path) -> None:
    new = edit("    count: int\n", "    count: int\n    price: int\n")
    # It lands at position 3, where color was: that shift is what breaks.
    found = changes(tmp_path, BASE, new)
    assert [(c.subject, c.breaking) for c in found] == [("Item.color", True), ("Item.price", True)]
    assert "inserted at position 3, before the end" in found[1].message


def test_new_trailing_field_with_default_is_safe(tmp_path: Path) -> None:
    new = edit("    color: Color = Color.RED\n",
               "    color: Color = Color.RED\n    note: str | None = None\n")  # fmt: skip
    one(tmp_path, BASE, new, subject="Item.note", breaking=False)


def test_new_trailing_field_without_default_is_breaking(tmp_path: Path) -> None:
    # (Python refuses a field without a default after one with a default, unless it is
    # keyword-only; the wire is positional all the same.)
    new = edit("    color: Color = Color.RED\n",
               "    color: Color = Color.RED\n    note: str = field(kw_only=True)\n")  # fmt: skip
    new = edit("from dataclasses import dataclass", "from dataclasses import dataclass, field",
               new)  # fmt: skip
    found = changes(tmp_path, BASE, new)
    assert [c.subject for c in found if c.breaking] == ["Item.note"]


def test_removed_field_is_breaking(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit("    color: Color = Color.RED\n", ""),
                 subject="Item.color", breaking=True)  # fmt: skip
    assert "removed" in change.message
    assert Path(change.path).parent.name == "old"


def test_renamed_field_is_breaking(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit("    count: int\n", "    amount: int\n"),
                 subject="Item.count", breaking=True)  # fmt: skip
    assert "renamed or replaced by 'amount'" in change.message


def test_reordered_fields_are_breaking(tmp_path: Path) -> None:
    new = edit("    name: str\n    count: int\n", "    count: int\n    name: str\n")
    found = changes(tmp_path, BASE, new)
    assert sorted((c.subject, c.breaking) for c in found) == [
        ("Item.count", True), ("Item.name", True),
    ]  # fmt: skip
    assert all("reordered" in c.message for c in found)


def test_reordered_parameters_of_one_type_are_breaking(tmp_path: Path) -> None:
    old = edit("def watch(self, name: str)", "def watch(self, name: str, room: str)")
    new = edit("def watch(self, name: str)", "def watch(self, room: str, name: str)")
    found = changes(tmp_path, old, new)
    assert sorted(c.subject for c in found if c.breaking) == [
        "Shop.watch(name)", "Shop.watch(room)",
    ]  # fmt: skip


def test_removed_parameter_is_breaking(tmp_path: Path) -> None:
    one(tmp_path, BASE, edit(', mode: Literal["a", "b"] = "a"', ""), subject="Shop.buy(mode)",
        breaking=True)  # fmt: skip


def test_parameter_losing_its_default_is_breaking(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit('mode: Literal["a", "b"] = "a"', 'mode: Literal["a", "b"]'),
                 subject="Shop.buy(mode)", breaking=True)  # fmt: skip
    assert "lost its default" in change.message


def test_changed_default_is_safe(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit('Literal["a", "b"] = "a"', 'Literal["a", "b"] = "b"'),
                 subject="Shop.buy(mode)", breaking=False)  # fmt: skip
    assert 'default changed "a" -> "b"' in change.message


def test_changed_auto_value_is_breaking(tmp_path: Path) -> None:
    new = edit("    RED = auto()\n", "    BLUE = auto()\n    RED = auto()\n")
    found = changes(tmp_path, BASE, new)
    assert [(c.subject, c.breaking) for c in found] == [
        ("Color.RED", True), ("Color.GREEN", True), ("Color.BLUE", False),
    ]  # fmt: skip
    assert found[0].message.startswith("value changed 1 -> 2")


def test_changed_explicit_enum_value_is_breaking(tmp_path: Path) -> None:
    one(tmp_path, BASE, edit('M = "m"', 'M = "medium"'), subject="Size.M", breaking=True)


def test_removed_enum_member_is_breaking(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit('    M = "m"\n', ""), subject="Size.M", breaking=True)
    assert Path(change.path).parent.name == "old"


def test_renamed_enum_member_keeping_its_value_is_safe(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit('M = "m"', 'MEDIUM = "m"'), subject="Size.M",
                 breaking=False)  # fmt: skip
    assert "renamed MEDIUM" in change.message


def test_added_enum_member_is_safe_and_names_what_an_old_peer_does(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit('M = "m"', 'M = "m"\n    L = "l"'), subject="Size.L",
                 breaking=False)  # fmt: skip
    assert "INVALID_ARGUMENT" in change.message and "INTERNAL" in change.message


def test_widened_to_optional_is_safe_and_narrowed_is_breaking(tmp_path: Path) -> None:
    widened = edit("quantity: int,", "quantity: int | None,")
    change = one(tmp_path, BASE, widened, subject="Shop.buy(quantity)", breaking=False)
    assert change.message.startswith("widened int -> int | None")
    (tmp_path / "b").mkdir()
    one(tmp_path / "b", widened, BASE, subject="Shop.buy(quantity)", breaking=True)


def test_literal_gaining_a_value_is_safe_and_losing_one_breaking(tmp_path: Path) -> None:
    wider = edit('Literal["a", "b"] = "a"', 'Literal["a", "b", "c"] = "a"')
    one(tmp_path, BASE, wider, subject="Shop.buy(mode)", breaking=False)
    (tmp_path / "b").mkdir()
    one(tmp_path / "b", wider, BASE, subject="Shop.buy(mode)", breaking=True)


def test_changed_call_shape_is_breaking(tmp_path: Path) -> None:
    change = one(tmp_path, BASE, edit("-> Chan[Item]", "-> Item"), subject="Shop.watch",
                 breaking=True)  # fmt: skip
    assert change.message == "call shape changed SERVER_STREAM -> UNARY"


def test_same_wire_form_spellings_are_safe(tmp_path: Path) -> None:
    new = edit("-> list[str]", "-> Sequence[str]")
    new = edit("from typing import", "from collections.abc import Sequence\nfrom typing import",
               new)  # fmt: skip
    change = one(tmp_path, BASE, new, subject="Shop.size -> result", breaking=False)
    assert "the same wire form" in change.message


def test_renamed_dataclass_with_the_same_fields_is_safe(tmp_path: Path) -> None:
    new = BASE.replace("Item", "Article")
    found = changes(tmp_path, BASE, new)
    assert [c for c in found if c.breaking] == []


def test_typed_dict_keys_travel_by_name(tmp_path: Path) -> None:
    added = edit(
        "    note: NotRequired[str]\n", "    note: NotRequired[str]\n    tag: NotRequired[str]\n"
    )
    change = one(tmp_path, BASE, added, subject="Meta['tag']", breaking=True)
    assert "refuses a key it does not declare" in change.message
    (tmp_path / "b").mkdir()
    one(tmp_path / "b", BASE, edit("    owner: str\n", "    owner: NotRequired[str]\n"),
        subject="Meta['owner']", breaking=True)  # fmt: skip


def test_idempotent_marked_is_safe(tmp_path: Path) -> None:
    new = edit(
        "    @abstractmethod\n    def size(", "    @idempotent\n    @abstractmethod\n    def size("
    )
    new = edit(
        "from gopherpipe_runtime import Chan",
        "from gopherpipe_runtime import Chan, idempotent",
        new,
    )
    one(tmp_path, BASE, new, subject="Shop.size", breaking=False)


# -- the command, as a user runs it ----------------------------------------------------


def gopherpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).parent / "gopherpipe"
    return subprocess.run(
        [str(command), *args], cwd=cwd, env=same_checkout_env(), capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_exit_codes_and_output(tmp_path: Path) -> None:
    (tmp_path / "old.py").write_text(BASE)
    (tmp_path / "same.py").write_text(BASE)
    (tmp_path / "new.py").write_text(edit("quantity: int,", "quantity: str,"))
    done = gopherpipe("breaking", "same.py", "--against", "old.py", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "0 breaking, 0 safe\n")
    done = gopherpipe("breaking", "new.py", "--against", "old.py", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    line = line_of(BASE, "def buy")
    assert done.stdout.splitlines() == [
        f"breaking: new.py:{line}:31: Shop.buy(quantity): type changed int -> str",
        "1 breaking, 0 safe",
    ]
    (tmp_path / "bad.py").write_text("class X:\n")
    done = gopherpipe("breaking", "bad.py", "--against", "old.py", cwd=tmp_path)
    assert done.returncode == 2 and "bad.py:" in done.stderr
    done = gopherpipe("breaking", "new.py", cwd=tmp_path)
    assert done.returncode == 2 and "--against" in done.stderr
    help_text = gopherpipe("breaking", "--help", cwd=tmp_path).stdout
    assert "--against-git" in help_text and "Examples" in help_text


def test_cli_against_a_real_git_history(tmp_path: Path) -> None:
    """A contract importing a module beside it, both changed across commits and a tag:
    the old generation (both files) is read at the ref, nothing in the work tree."""

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})  # fmt: skip

    api = tmp_path / "api"
    api.mkdir()
    models = "from enum import Enum\n\n\nclass Level(Enum):\n    LOW = 1\n    HIGH = 2\n"
    service = (
        "from abc import ABC, abstractmethod\n\nfrom .models import Level\n\n\n"
        "class Alarm(ABC):\n    @abstractmethod\n    def ring(self, level: Level) -> int: ...\n"
    )
    (api / "models.py").write_text(models)
    (api / "service.py").write_text(service)
    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "v1")
    git("tag", "v1")
    # v2: a safe change (a new method), committed.
    service2 = service + "\n    @abstractmethod\n    def mute(self) -> None: ...\n"
    (api / "service.py").write_text(service2)
    git("commit", "-q", "-am", "v2")
    # In the work tree: a breaking change in the imported module.
    (api / "models.py").write_text(models.replace("HIGH = 2", "HIGH = 3"))

    done = gopherpipe("breaking", "api/service.py", "--against-git", "HEAD~1", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "breaking: api/models.py:6:5: Level.HIGH: value changed 2 -> 3 (an auto() renumbered "
        "by an insertion or a reorder?)",
        "safe: api/service.py:11:9: Alarm.mute: method added (an old server answers it "
        "UNIMPLEMENTED)",
        "1 breaking, 1 safe",
    ]
    git("commit", "-q", "-am", "v3")
    done = gopherpipe("breaking", "api/service.py", "--against-git", "HEAD~1", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("breaking: api/models.py:6:5: Level.HIGH")
    (api / "models.py").write_text(models)
    done = gopherpipe("breaking", "api/service.py", "--against-git", "v1", cwd=tmp_path)
    assert (done.returncode, done.stdout.splitlines()[-1]) == (0, "0 breaking, 1 safe")
    # A removal, located in the old contract as read at the ref.
    (api / "service.py").write_text(service.replace("def ring", "def call"))
    done = gopherpipe("breaking", "api/service.py", "--against-git", "v1", cwd=tmp_path)
    assert done.returncode == 1
    assert "breaking: v1:api/service.py:8:9: Alarm.ring: method removed" in done.stdout
    done = gopherpipe("breaking", "api/service.py", "--against-git", "nope", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: git: 'nope' is not a commit, branch or tag of ")
    (api / "new.py").write_text(service)
    done = gopherpipe("breaking", "api/new.py", "--against-git", "v1", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, "error: git: api/new.py does not exist at v1\n")


def test_cli_against_git_outside_a_repository(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(BASE)
    done = gopherpipe("breaking", "service.py", "--against-git", "HEAD", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: git: ")

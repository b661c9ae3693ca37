"""The one error a user sees: a contract the generator cannot (or will not) turn into stubs."""

from __future__ import annotations

from pathlib import Path


class SpecError(Exception):
    """A problem in a contract file, located like a compiler error.

    Prints as ``path:line:col: what is wrong and what to write instead`` (line and
    column are 1-based), so editors and terminals can jump to it.
    """

    def __init__(self, path: Path, line: int, column: int, message: str) -> None:
        super().__init__(f"{path}:{line}:{column}: {message}")
        self.path = path
        self.line = line
        self.column = column
        self.message = message


class SpecErrors(Exception):
    """Every SpecError found in one run, in file order."""

    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors

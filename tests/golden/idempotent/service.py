"""@idempotent in every spelling gen recognises, on every call shape."""

import abc
from abc import ABC, abstractmethod
from dataclasses import dataclass

import gopherpipe_runtime
import gopherpipe_runtime as gp
from gopherpipe_runtime import Chan, idempotent
from gopherpipe_runtime import idempotent as safe_to_retry


@dataclass(frozen=True)
class Entry:
    key: str
    value: bytes


class Store(ABC):
    """A key-value store: reads are idempotent, an append is not."""

    @idempotent
    @abstractmethod
    def get(self, key: str) -> Entry | None:
        """Below @idempotent, above @abstractmethod."""

    @abstractmethod
    @idempotent
    def put(self, entry: Entry) -> None:
        """Overwriting with the same value twice leaves what once does."""

    @abstractmethod
    def append(self, key: str, value: bytes) -> int:
        """Not idempotent: appending twice appends twice."""

    @gopherpipe_runtime.idempotent
    @abc.abstractmethod
    def scan(self, prefix: str) -> Chan[Entry]:
        """A server stream, marked through the module."""

    @gp.idempotent
    @abstractmethod
    def get_many(self, keys: Chan[str]) -> list[Entry]:
        """A client stream, through an aliased module."""

    @safe_to_retry
    @abstractmethod
    def watch(self, keys: Chan[str]) -> Chan[Entry]:
        """Bidi, through an aliased name."""

"""A versioned key-value store: keys and values are raw bytes."""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Optional

from gopherpipe_runtime import Chan


class Entry(NamedTuple):
    key: bytes
    value: bytes
    version: int


class KeyValue(ABC):
    @abstractmethod
    def get(self, key: bytes) -> Optional[bytes]: ...

    @abstractmethod
    def set(self, key: bytes, value: bytes, ttl_seconds: Optional[int] = None) -> int: ...

    @abstractmethod
    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Optional[bytes]]: ...

    @abstractmethod
    def set_many(self, items: Mapping[bytes, bytes]) -> int: ...

    @abstractmethod
    def compare_and_set(
        self, key: bytes, expected_version: int, value: bytes
    ) -> tuple[bool, int]: ...

    @abstractmethod
    def delete(self, key: bytes) -> bool: ...

    @abstractmethod
    def scan(self, prefix: bytes = b"", limit: int = 100) -> Chan[Entry]: ...

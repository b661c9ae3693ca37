"""KeyValue in a dict."""

from collections.abc import Mapping, Sequence

from gopherpipe_runtime import Chan

from .service import Entry, KeyValue


class KeyValueImpl(KeyValue):
    def __init__(self) -> None:
        self.data: dict[bytes, Entry] = {}
        self.ttls: dict[bytes, int | None] = {}

    def get(self, key: bytes) -> bytes | None:
        entry = self.data.get(key)
        return None if entry is None else entry.value

    def set(self, key: bytes, value: bytes, ttl_seconds: int | None = None) -> int:
        version = self.data[key].version + 1 if key in self.data else 1
        self.data[key] = Entry(key, value, version)
        self.ttls[key] = ttl_seconds
        return version

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes | None]:
        return {key: self.get(key) for key in keys}

    def set_many(self, items: Mapping[bytes, bytes]) -> int:
        for key, value in items.items():
            self.set(key, value)
        return len(items)

    def compare_and_set(self, key: bytes, expected_version: int, value: bytes) -> tuple[bool, int]:
        current = self.data[key].version if key in self.data else 0
        if current != expected_version:
            return False, current
        return True, self.set(key, value)

    def delete(self, key: bytes) -> bool:
        return self.data.pop(key, None) is not None

    def scan(self, prefix: bytes = b"", limit: int = 100) -> Chan[Entry]:
        found = sorted(e for k, e in self.data.items() if k.startswith(prefix))[:limit]
        out: Chan[Entry] = Chan(len(found) + 1)
        for entry in found:
            out.send(entry)
        out.close()
        return out

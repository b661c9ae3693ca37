"""The Streams implementation served by the end-to-end streaming server process."""

from __future__ import annotations

import threading
from collections import defaultdict

from e2e_streams import Item, Streams  # type: ignore[import-not-found]

from gopherpipe_runtime import Chan, ChanClosed, RpcError


class StreamsImpl(Streams):  # type: ignore[misc]
    def __init__(self) -> None:
        self._stats: dict[str, dict[str, int]] = defaultdict(
            lambda: {"produced": 0, "consumed": 0, "stopped": 0, "error": 0}
        )
        self._releases: dict[str, threading.Event] = defaultdict(threading.Event)
        self._lock = threading.Lock()

    def _produce(self, items: Chan[Item], make: object) -> Chan[Item]:
        def run() -> None:
            with items:
                make()  # type: ignore[operator]

        threading.Thread(target=run, daemon=True).start()
        return items

    def count_up(self, start: int, count: int) -> Chan[Item]:
        out: Chan[Item] = Chan(256)

        def make() -> None:
            for seq in range(start, start + count):
                out.send(Item(seq, f"item {seq}"))

        return self._produce(out, make)

    def total(self, items: Chan[Item]) -> list[int]:
        count, in_order = 0, 1
        for item in items:
            if item.seq != count:
                in_order = 0
            count += 1
        return [count, in_order]

    def echo(self, prefix: str, items: Chan[Item]) -> Chan[Item]:
        out: Chan[Item] = Chan(256)

        def make() -> None:
            for item in items:
                out.send(Item(item.seq, prefix + item.text))

        return self._produce(out, make)

    def fail_after(self, count: int, code: int, message: str) -> Chan[Item]:
        out: Chan[Item] = Chan(4)

        def make() -> None:
            for seq in range(count):
                out.send(Item(seq, "before the failure"))
            raise RpcError(code, message)

        return self._produce(out, make)

    def crash_after(self, count: int) -> Chan[Item]:
        out: Chan[Item] = Chan(4)

        def make() -> None:
            for seq in range(count):
                out.send(Item(seq, "before the crash"))
            raise ValueError("producer crashed")

        return self._produce(out, make)

    def endless(self, tag: str, capacity: int) -> Chan[Item]:
        out: Chan[Item] = Chan(capacity)
        stats = self._stats[tag]

        def run() -> None:
            stats["threads"] = 1
            seq = 0
            try:
                while True:
                    out.send(Item(seq, "x" * 32))
                    seq += 1
                    stats["produced"] = seq
            except ChanClosed:
                stats["stopped"] = 1  # the clear signal: the stream is over
            finally:
                stats["threads"] = 0

        threading.Thread(target=run, daemon=True).start()
        return out

    def drain_slowly(self, tag: str, items: Chan[Item]) -> int:
        stats = self._stats[tag]
        stats["threads"] = 1
        try:
            for _ in items:
                stats["consumed"] += 1
                if stats["consumed"] == 1:
                    self._releases[tag].wait(30)
        except RpcError:
            stats["error"] = 1  # the client vanished: the inbound stream says so
        finally:
            stats["threads"] = 0
            stats["stopped"] = 1
        return stats["consumed"]

    def release(self, tag: str) -> None:
        self._releases[tag].set()

    def stats(self, tag: str) -> dict[str, int]:
        return dict(self._stats[tag])

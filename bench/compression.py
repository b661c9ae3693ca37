"""What compression costs and saves: `python -m bench.compression`.

For a few typical payloads (a page of records, a log batch, random bytes), per
algorithm (none, and each one installed):
- saves: the payload's size on the wire, plain and compressed;
- costs: the CPU time to encode + decode one payload through the connection's
  codec (`CompressingCodec`), and the p50 of a unary echo of that payload over
  loopback TCP with the algorithm forced on (`Pipe(compression=...)`), beside the
  same call uncompressed, in the same run.

Loopback has no bandwidth to save, so there the p50 shows only the cost; the
saving is worth it where bytes are the bottleneck: divide the bytes saved by the
link's bandwidth and compare with the CPU it costs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from gopherpipe_runtime import Pipe, Server
from gopherpipe_runtime.compression import ALGORITHMS, wrap
from gopherpipe_runtime.pipe import CallOptions
from gopherpipe_runtime.service import MethodDef, MethodKind, ServiceDef
from gopherpipe_runtime.wire.codec import CODECS

MIB = 1 << 20


def _records(count: int) -> list[Any]:
    rng = random.Random(7)
    return [
        {
            "id": 100_000 + i,
            "name": f"customer-{rng.randrange(10_000)}",
            "email": f"user{rng.randrange(100_000)}@example.com",
            "plan": rng.choice(["free", "team", "enterprise"]),
            "created": f"2026-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T10:00:00Z",
            "active": rng.random() > 0.2,
            "balance": round(rng.uniform(0, 5000), 2),
        }
        for i in range(count)
    ]


def _log_lines(count: int) -> list[str]:
    rng = random.Random(11)
    levels = ["INFO", "WARNING", "DEBUG"]
    return [
        f"2026-11-25T18:{rng.randrange(60):02d}:{rng.randrange(60):02d} {rng.choice(levels)} "
        f"worker-{rng.randrange(16)} handled request {rng.randrange(10**6)} in "
        f"{rng.randrange(900)} ms"
        for _ in range(count)
    ]


PAYLOADS: dict[str, Callable[[], Any]] = {
    "200 records (~25 KiB)": lambda: _records(200),
    "500 log lines (~40 KiB)": lambda: _log_lines(500),
    "random 32 KiB": lambda: os.urandom(32 * 1024),
}


def _codec_cost(value: Any, algorithm: str | None, repeats: int) -> tuple[int, float]:
    codec = wrap(CODECS["msgpack"], algorithm, 1024, 64 * MIB, 64 * MIB)
    body = codec.encode([value])
    started = time.perf_counter()
    for _ in range(repeats):
        codec.decode(codec.encode([value]))
    return len(body), (time.perf_counter() - started) / repeats * 1e6


def _echo_server() -> Server:
    server = Server("tcp://127.0.0.1:0", compression=tuple(ALGORITHMS))
    echo = MethodDef(
        MethodKind.UNARY,
        decode_args=tuple,
        call=lambda value: value,
        encode_result=lambda value: value,
    )
    server.add_service(ServiceDef("Bench", {"echo": echo}))
    return server.start()


def _p50(address: str, algorithm: str | None, value: Any, calls: int) -> float:
    with Pipe(address, compression=algorithm) as pipe:
        options = CallOptions(timeout=10)
        for _ in range(20):
            pipe.unary("Bench", "echo", [value], options)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            pipe.unary("Bench", "echo", [value], options)
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def run(calls: int, repeats: int) -> list[dict[str, Any]]:
    rows = []
    server = _echo_server()
    try:
        address = server.addresses[0]
        for label, make in PAYLOADS.items():
            value = make()
            for algorithm in (None, *ALGORITHMS):
                size, cpu = _codec_cost(value, algorithm, repeats)
                rows.append(
                    {
                        "payload": label,
                        "algorithm": algorithm or "none",
                        "bytes": size,
                        "codec_us": cpu,
                        "p50_us": _p50(address, algorithm, value, calls),
                    }
                )
    finally:
        server.stop(1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = run(args.calls, args.repeats)
    print(f"{'payload':26} {'algorithm':9} {'bytes':>8} {'saved':>6} {'codec µs':>9} {'p50 µs':>8}")
    plain: dict[str, dict[str, Any]] = {}
    for row in rows:
        base = plain.setdefault(row["payload"], row)
        saved = 1 - row["bytes"] / base["bytes"]
        print(
            f"{row['payload']:26} {row['algorithm']:9} {row['bytes']:8,} {saved:6.0%} "
            f"{row['codec_us']:9.1f} {row['p50_us']:8.1f}"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()

"""`python -m bench`: run every framework's scenarios, one framework at a time, then report."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import frameworks, measure, procs, report, streams, transports

# Scenario name -> (full params, --quick params). A framework lacking a scenario reports n/a.
SCENARIOS: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "unary_latency": ({"calls": 5000, "warmup": 500}, {"calls": 300, "warmup": 50}),
    "unary_throughput": (
        {"threads": 16, "calls_per_thread": 1000, "warmup_per_thread": 50},
        {"threads": 16, "calls_per_thread": 50, "warmup_per_thread": 5},
    ),
    "server_stream": ({"messages": 200_000}, {"messages": 5000}),
    "bidi_pingpong": ({"rounds": 5000, "warmup": 200}, {"rounds": 200, "warmup": 20}),
}
SCENARIO_TIMEOUT_S = {False: 300.0, True: 60.0}
# Unpinned client and server land on the same core or on two, and on a VM that alone can move
# a loopback round trip by 100 us; several rounds and their median keep one placement from
# deciding the comparison.
DEFAULT_ROUNDS = {False: 3, True: 1}
DEFAULT_PAYLOAD = 64


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Echo benchmarks, side by side: GopherPipe vs grpcio vs a raw-socket floor.",
    )
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke test)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the figures here")
    parser.add_argument(
        "--frameworks",
        metavar="A,B",
        help=f"comma-separated subset of {','.join(frameworks.FRAMEWORKS)} (default: all)",
    )
    parser.add_argument(
        "--payload-size",
        type=int,
        default=DEFAULT_PAYLOAD,
        metavar="N",
        help=f"echoed ASCII characters per call (default {DEFAULT_PAYLOAD})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="R",
        help="repeat everything R times and report medians (default 3, 1 with --quick)",
    )
    parser.add_argument(
        "--streams",
        metavar="N,N",
        help="also run the concurrent-streams scenario with N open server streams each "
        "(e.g. 1000,5000,10000; 'default' is that, or 200 with --quick)",
    )
    parser.add_argument(
        "--streams-only",
        action="store_true",
        help="run only the concurrent-streams scenario (counts from --streams, else 'default')",
    )
    parser.add_argument(
        "--transports",
        metavar="T,T",
        help="also compare transports: unary latency and server stream for gopherpipe over "
        f"each of {','.join(transports.TRANSPORTS)} and grpc over tcp and tls "
        "('default' is all four; tcp is always included, as the baseline)",
    )
    parser.add_argument(
        "--transports-only",
        action="store_true",
        help="run only the transports comparison (transports from --transports, else all)",
    )
    parser.add_argument(
        "--chart", metavar="PATH", type=Path, help="write a PNG chart of the figures here"
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.streams_only and args.streams is None:
        args.streams = "default"
    if args.transports_only and args.transports is None:
        args.transports = "default"
    try:
        args.transport_list = transports.parse(args.transports) if args.transports else []
    except ValueError as exc:
        parser.error(f"--transports: {exc}")
    if args.streams is None:
        args.stream_counts = []
    elif args.streams.strip() == "default":
        args.stream_counts = streams.DEFAULT_COUNTS[args.quick]
    else:
        try:
            args.stream_counts = [int(n.replace("_", "")) for n in args.streams.split(",")]
        except ValueError:
            parser.error("--streams takes comma-separated stream counts, e.g. 1000,5000")
        if any(n < 1 for n in args.stream_counts):
            parser.error("--streams counts must be at least 1")
    if args.frameworks:
        names = [n.strip() for n in args.frameworks.split(",") if n.strip()]
        unknown = [n for n in names if n not in frameworks.FRAMEWORKS]
        if unknown:
            parser.error(f"unknown framework(s): {', '.join(unknown)}")
        args.names = [n for n in frameworks.FRAMEWORKS if n in names]
        args.explicit = True
    else:
        args.names = list(frameworks.FRAMEWORKS)
        args.explicit = False
    return args


def _machine() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cores": os.cpu_count(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "grpcio": version("grpcio"),
        "protobuf": version("protobuf"),
        "msgpack": version("msgpack"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        # Other work on a 2-core machine moves these figures more than most code changes do.
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One line per step on stderr, with the time since the run began: minutes of benchmark
    must not read as a hang (stdout keeps the figures)."""
    elapsed = int(time.monotonic() - _STARTED)
    print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


def _prepare(name: str, out: dict[str, Any]) -> ModuleType | None:
    try:
        module = frameworks.load(name)
    except ImportError as exc:
        out["skipped"] = f"not importable: {exc}"
        print(f"{name}: skipped ({out['skipped']})", flush=True)
        return None
    try:
        if hasattr(module, "prepare"):
            progress(f"{name}: generating stubs")
            module.prepare()
    except Exception as exc:
        out["error"] = f"prepare: {type(exc).__name__}: {exc}"
        print(f"{name}: FAILED: {out['error']}", flush=True)
        return None
    return module


def _run_round(
    name: str,
    module: ModuleType,
    config: dict[str, Any],
    tag: str,
    transport: str | None = None,
    scenarios: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """One fresh server process, then one fresh client process per scenario.

    `transport` (the transports comparison) makes the server listen on that transport only,
    and names it in the progress lines; `scenarios` picks a subset of SCENARIOS.
    """
    figures: dict[str, dict[str, Any]] = {}
    who = f"{name} {transport}" if transport else name
    progress(f"{tag}{who}: starting its server")
    with procs.server(name, transport) as address:
        for scenario in SCENARIOS:
            if scenario not in module.SCENARIOS or (
                scenarios is not None and scenario not in scenarios
            ):
                continue
            progress(f"{tag}{who}: {scenario}")
            started = time.monotonic()
            figures[scenario] = procs.measure(
                name,
                scenario,
                address,
                config["payload_size"],
                config["scenarios"][scenario],
                config["scenario_timeout_s"],
            )
            print(
                f"{tag}{who}: {scenario} ({time.monotonic() - started:.1f} s): "
                + report.summary(scenario, figures[scenario]),
                flush=True,
            )
    return figures


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # Python dies on SIGTERM without unwinding; turn it into an exit so every `finally` stops
    # its server and every running client is killed by subprocess.run on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    pick = 1 if args.quick else 0
    rounds = args.rounds if args.rounds is not None else DEFAULT_ROUNDS[args.quick]
    config: dict[str, Any] = {
        "quick": args.quick,
        "rounds": rounds,
        "payload_size": args.payload_size,
        "scenarios": {name: params[pick] for name, params in SCENARIOS.items()},
        "scenario_timeout_s": SCENARIO_TIMEOUT_S[args.quick],
        "frameworks": args.names,
        "echo": not (args.streams_only or args.transports_only),
        "stream_counts": args.stream_counts,
        "transports": args.transport_list,
    }
    machine = _machine()
    print(report.header(machine, config), flush=True)

    results: dict[str, dict[str, Any]] = {name: {} for name in args.names}
    modules = {}
    for name in args.names:
        module = _prepare(name, results[name])
        if module is not None:
            modules[name] = module
    per_round: dict[str, list[dict[str, dict[str, Any]]]] = {name: [] for name in modules}
    for r in range(rounds if config["echo"] else 0):
        # Rotate who goes first so no framework always runs on the coldest (or warmest) machine.
        order = (
            list(modules)[r % max(1, len(modules)) :] + list(modules)[: r % max(1, len(modules))]
        )
        for name in order:
            if "error" in results[name]:
                continue
            try:
                per_round[name].append(
                    _run_round(name, modules[name], config, f"[round {r + 1}/{rounds}] ")
                )
            except Exception as exc:
                # One broken framework must not cost the others their figures.
                results[name]["error"] = f"{type(exc).__name__}: {exc}"
                print(f"{name}: FAILED: {results[name]['error']}", flush=True)
    for name, runs in per_round.items():
        if "error" not in results[name]:
            results[name].update(measure.combine_rounds(runs))
            results[name]["rounds"] = runs

    transport_results = (
        transports.run(
            {n: m for n, m in modules.items() if "error" not in results[n]},
            args.transport_list,
            rounds,
            lambda name, module, tag, transport, scenarios: _run_round(
                name, module, config, tag, transport, scenarios
            ),
        )
        if args.transport_list
        else {}
    )
    if args.transport_list and not transport_results:
        print("transports: nothing to compare (needs gopherpipe or grpc in --frameworks)")

    variants = [
        v
        for v in streams.VARIANTS
        if frameworks.STREAM_VARIANTS[v] in modules
        and "error" not in results[frameworks.STREAM_VARIANTS[v]]
    ]
    stream_results = (
        streams.run(variants, args.stream_counts, args.quick, progress)
        if args.stream_counts
        else {}
    )
    progress("done")

    failed = [
        name
        for name in args.names
        # An uninstalled optional framework is only a failure when it was asked for by name.
        if "error" in results[name] or ("skipped" in results[name] and args.explicit)
    ]

    # The subject of the bench must hold its streams; another framework that cannot is a
    # figure (n/a with the reason), not a failure.
    failed += [
        f"gopherpipe concurrent streams at {n}"
        for n, figures in stream_results.get("gopherpipe", {}).items()
        if "error" in figures
    ]

    # As in the echo suite, any framework failing on a transport fails the run.
    failed += [
        f"{name} over {transport}"
        for name, cells in transport_results.items()
        for transport, cell in cells.items()
        if "error" in cell
    ]

    ratios = report.ratios(results)
    transport_ratios = transports.ratios(transport_results)
    if config["echo"]:
        print()
        print(report.table(results, config))
        print(report.ratio_lines(ratios, args.names))
    if transport_results:
        print()
        print(transports.header(config))
        print()
        print(transports.table(transport_results, config))
        print(transports.ratio_lines(transport_ratios, transport_results))
    if stream_results:
        print()
        print(streams.table(stream_results, args.stream_counts, args.quick))
    if args.json:
        doc = {
            "machine": machine,
            "config": config,
            "results": results,
            "ratios": ratios,
            "concurrent_streams": stream_results,
            "transports": transport_results,
            "transport_ratios": transport_ratios,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    if args.chart:
        from bench import chart

        chart.write(args.chart, machine, config, results, stream_results)
        print(f"chart written to {args.chart}")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0

"""`python -m bench`: run every framework's scenarios, one framework at a time, then report."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import frameworks, procs, report

# Scenario name -> (full params, --quick params). A framework lacking a scenario reports n/a.
SCENARIOS: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "unary_latency": ({"calls": 5000, "warmup": 500}, {"calls": 300, "warmup": 50}),
    "unary_throughput": (
        {"threads": 16, "calls_per_thread": 1000, "warmup_per_thread": 50},
        {"threads": 16, "calls_per_thread": 50, "warmup_per_thread": 5},
    ),
}
SCENARIO_TIMEOUT_S = {False: 300.0, True: 60.0}
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
    args = parser.parse_args(argv)
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
    }


def _run_framework(name: str, config: dict[str, Any], results: dict[str, dict[str, Any]]) -> bool:
    """Measure one framework into results[name]; False if anything failed."""
    out: dict[str, Any] = {}
    results[name] = out
    try:
        module = frameworks.load(name)
    except ImportError as exc:
        out["skipped"] = f"not importable: {exc}"
        print(f"{name}: skipped ({out['skipped']})", flush=True)
        return False
    scenarios = [s for s in SCENARIOS if s in module.SCENARIOS]
    try:
        if hasattr(module, "prepare"):
            module.prepare()
        with procs.server(name) as address:
            print(f"{name}: server at {address}", flush=True)
            for scenario in scenarios:
                started = time.monotonic()
                figures = procs.measure(
                    name,
                    scenario,
                    address,
                    config["payload_size"],
                    config["scenarios"][scenario],
                    config["scenario_timeout_s"],
                )
                out[scenario] = figures
                print(
                    f"{name}: {scenario} done in {time.monotonic() - started:.1f} s: "
                    + report.summary(scenario, figures),
                    flush=True,
                )
    except Exception as exc:
        # One broken framework must not cost the others their figures.
        out["error"] = f"{type(exc).__name__}: {exc}"
        print(f"{name}: FAILED: {out['error']}", flush=True)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    pick = 1 if args.quick else 0
    config: dict[str, Any] = {
        "quick": args.quick,
        "payload_size": args.payload_size,
        "scenarios": {name: params[pick] for name, params in SCENARIOS.items()},
        "scenario_timeout_s": SCENARIO_TIMEOUT_S[args.quick],
        "frameworks": args.names,
    }
    machine = _machine()
    print(report.header(machine, config), flush=True)

    results: dict[str, dict[str, Any]] = {}
    failed = []
    for name in args.names:
        ok = _run_framework(name, config, results)
        # An uninstalled optional framework is only a failure when it was asked for by name.
        if not ok and (args.explicit or "skipped" not in results[name]):
            failed.append(name)

    print()
    print(report.table(results, config))
    ratios = report.ratios(results)
    print(report.ratio_lines(ratios))
    if args.json:
        doc = {"machine": machine, "config": config, "results": results, "ratios": ratios}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0

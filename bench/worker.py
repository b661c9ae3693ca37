"""Child-process entry points; the runner starts these, people need not.

python -m bench.worker serve FRAMEWORK [TRANSPORT]
    prints "READY <address>", serves until stdin closes, then stops the server. Closing
    stdin (rather than a signal) means a runner that dies takes its servers with it.
    TRANSPORT (tcp, tls, ws, wss; the transports comparison) is passed to the framework's
    serve(); without it, serve() listens on its default, plain TCP.
python -m bench.worker measure FRAMEWORK SCENARIO ADDRESS PAYLOAD_SIZE PARAMS_JSON
    runs one scenario against ADDRESS and prints "RESULT <json>".

The concurrent-streams scenario (bench/streams.py), VARIANT being gopherpipe, grpc or grpc_aio:
python -m bench.worker serve-streams VARIANT PARAMS_JSON
    as serve, with the server sized by PARAMS_JSON where the framework needs it.
python -m bench.worker subscribe VARIANT ADDRESS PARAMS_JSON
    opens the streams, prints "OPEN <n>" once each has its welcome, "GOT <seq>" once each
    has broadcast <seq>, then "RESULT <json>" with every stream's latency.
python -m bench.worker publish VARIANT ADDRESS TOPIC
    prints "READY", then for each line <seq> on stdin publishes it: "PUBLISHED <seq> <n>".
These raise their soft RLIMIT_NOFILE to the hard limit first.
"""

from __future__ import annotations

import json
import resource
import sys

from bench import frameworks, measure

READY = "READY "
RESULT = "RESULT "
STOP_GRACE_S = 1.0


def _serve(framework: str, *transport: str) -> int:
    module = frameworks.load(framework)
    address, stop = module.serve(*transport)
    print(READY + address, flush=True)
    try:
        sys.stdin.read()
    finally:
        stop(STOP_GRACE_S)
    return 0


def _measure(framework: str, scenario: str, address: str, size: str, params: str) -> int:
    module = frameworks.load(framework)
    figures = module.SCENARIOS[scenario](
        address, measure.make_payload(int(size)), json.loads(params)
    )
    print(RESULT + json.dumps(figures), flush=True)
    return 0


def _raise_nofile() -> None:
    # Thousands of streams are few sockets here, but a framework may hold files per stream;
    # the soft limit (often 1024) is all that is asked of an unprivileged process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _say(line: str) -> None:
    print(line, flush=True)


def _serve_streams(variant: str, params: str) -> int:
    _raise_nofile()
    module = frameworks.load(frameworks.STREAM_VARIANTS[variant])
    address, stop = module.STREAM_SERVERS[variant](json.loads(params))
    print(READY + address, flush=True)
    try:
        sys.stdin.read()
    finally:
        stop(STOP_GRACE_S)
    return 0


def _subscribe(variant: str, address: str, params: str) -> int:
    _raise_nofile()
    module = frameworks.load(frameworks.STREAM_VARIANTS[variant])
    figures = module.broadcast_subscribe(address, json.loads(params), _say)
    print(RESULT + json.dumps(figures), flush=True)
    return 0


def _publish(variant: str, address: str, topic: str) -> int:
    _raise_nofile()
    module = frameworks.load(frameworks.STREAM_VARIANTS[variant])
    publish, close = module.broadcast_publisher(address)
    try:
        print(READY.strip(), flush=True)
        for line in sys.stdin:
            seq = int(line)
            _say(f"PUBLISHED {seq} {publish(topic, seq)}")
    finally:
        close()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) in (2, 3) and argv[0] == "serve":
        return _serve(*argv[1:])
    if len(argv) == 6 and argv[0] == "measure":
        return _measure(*argv[1:])
    if len(argv) == 3 and argv[0] == "serve-streams":
        return _serve_streams(*argv[1:])
    if len(argv) == 4 and argv[0] == "subscribe":
        return _subscribe(*argv[1:])
    if len(argv) == 4 and argv[0] == "publish":
        return _publish(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

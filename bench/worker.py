"""Child-process entry points; the runner starts these, people need not.

python -m bench.worker serve FRAMEWORK
    prints "READY <address>", serves until stdin closes, then stops the server. Closing
    stdin (rather than a signal) means a runner that dies takes its servers with it.
python -m bench.worker measure FRAMEWORK SCENARIO ADDRESS PAYLOAD_SIZE PARAMS_JSON
    runs one scenario against ADDRESS and prints "RESULT <json>".
"""

from __future__ import annotations

import json
import sys

from bench import frameworks, measure

READY = "READY "
RESULT = "RESULT "
STOP_GRACE_S = 1.0


def _serve(framework: str) -> int:
    module = frameworks.load(framework)
    address, stop = module.serve()
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


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "serve":
        return _serve(argv[1])
    if len(argv) == 6 and argv[0] == "measure":
        return _measure(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

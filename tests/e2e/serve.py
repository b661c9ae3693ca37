"""Serve AllTypes in its own process: `serve.py STUB_DIR ADDRESS [server options as JSON]`.

Prints the bound address on stdout, then serves until killed or stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
import threading

stub_dir, address = sys.argv[1], sys.argv[2]
options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
sys.path[:0] = [stub_dir, os.path.dirname(os.path.abspath(__file__))]

from e2e_alltypes_server import register_all_types  # type: ignore[import-not-found]  # noqa: E402
from impl import AllTypesImpl  # noqa: E402

from gopherpipe_runtime import Server  # noqa: E402

server = Server(address, **options)
register_all_types(server, AllTypesImpl())
server.start()
print(server.addresses[0], flush=True)


def stop_when_parent_goes() -> None:
    # The test holds our stdin; EOF means it is done (or died): never linger.
    sys.stdin.read()
    server.stop(1.0)


threading.Thread(target=stop_when_parent_goes, daemon=True).start()
server.serve_forever()

"""Serve the e2e services in their own process: `serve.py STUB_DIR ADDRESS [options JSON]`.

Serves AllTypes, and Streams too when its stubs are in STUB_DIR. Prints the bound
address on stdout, then serves until killed or stdin closes.
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
if os.path.exists(os.path.join(stub_dir, "e2e_streams_server.py")):
    from e2e_streams_server import register_streams  # type: ignore[import-not-found]
    from streams_impl import StreamsImpl

    register_streams(server, StreamsImpl())
server.start()
print(server.addresses[0], flush=True)


def stop_when_parent_goes() -> None:
    # The test holds our stdin; EOF means it is done (or died): never linger.
    sys.stdin.read()
    server.stop(1.0)


threading.Thread(target=stop_when_parent_goes, daemon=True).start()
server.serve_forever()

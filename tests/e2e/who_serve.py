"""Serve `Who` (who.py) in its own process: `who_serve.py ADDRESS IDENTITY`.

Prints the bound address on stdout, then serves until killed or stdin closes.
"""

from __future__ import annotations

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from who import who_service

from gopherpipe_runtime import Server

server = Server(sys.argv[1])
server.add_service(who_service(sys.argv[2]))
server.start()
print(server.addresses[0], flush=True)


def stop_when_parent_goes() -> None:
    sys.stdin.read()  # the test holds our stdin; EOF means it is done (or died)
    server.stop(1.0)


threading.Thread(target=stop_when_parent_goes, daemon=True).start()
server.serve_forever()

"""GopherPipe on asyncio: the same wire, addresses and options as the threaded runtime.

  chan.py     Chan and select for tasks (Go channels on an event loop)
  context.py  current_call() through contextvars
  loop.py     run(): asyncio.run on uvloop's loop when uvloop is installed
  pipe.py     Pipe: the client side, its calls and streams
  server.py   Server: listeners, connections and handlers as tasks
  client.py   AsyncClientBase, the base of generated ``<Service>AsyncClient`` stubs

Frames, the handshake, codecs, call envelopes (`gopherpipe_runtime.wire`), flow-control
accounting (`flow.py`) and transport layers (`transport/`) are the threaded runtime's own,
sans-IO: only the I/O above them is asyncio's.
"""

from ..chan import ChanClosed, Selected
from .chan import Chan, select
from .client import AsyncClientBase
from .context import current_call
from .loop import run
from .pipe import Pipe, StreamCall
from .server import Server

__all__ = [
    "AsyncClientBase",
    "Chan",
    "ChanClosed",
    "Pipe",
    "Selected",
    "Server",
    "StreamCall",
    "current_call",
    "run",
    "select",
]

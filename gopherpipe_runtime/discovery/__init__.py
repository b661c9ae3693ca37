"""Discovery: who serves a service now, beyond one literal address.

  gophermap.py  `GopherMap`: SWIM-style gossip membership, no server to run
  etcd.py       `EtcdRegistry`: etcd as the registry, for large fleets (optional extra)

Both are imported only when first named here (`__getattr__`), so that using one does
not import the other, and importing the runtime imports neither.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EtcdRegistry", "GopherMap"]

_LAZY = {"GopherMap": ".gophermap", "EtcdRegistry": ".etcd"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)

"""Service discovery: GopherMap (SWIM gossip, `swim` + `gossip_wire` + `gophermap`) and etcd.

`GopherMap` and `EtcdRegistry` are imported lazily, so that importing one never
imports the other (etcd needs an optional extra).
"""

from __future__ import annotations

import importlib
from typing import Any

# The modules behind these names arrive with their own helpers' branches; a
# TYPE_CHECKING import of them belongs here once they exist.

_LAZY = {"GopherMap": ".gophermap", "EtcdRegistry": ".etcd"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)

"""Service discovery: GopherMap (SWIM gossip, `swim` + `gossip_wire` + `gophermap`) and etcd.

`GopherMap` and `EtcdRegistry` are imported lazily, so that importing one never
imports the other (etcd needs an optional extra).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type checkers see the real classes; at run time they load on use
    from .etcd import EtcdRegistry
    from .gophermap import GopherMap

__all__ = ["EtcdRegistry", "GopherMap"]

_LAZY = {"GopherMap": ".gophermap", "EtcdRegistry": ".etcd"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)

"""`Who`: a service that says which server answered, for the balancing tests.

Written by hand (a `ServiceDef`, no generated stubs): `name()` returns the server's
identity, `nap(seconds)` too, after sleeping that long (a call in flight to kill;
only on a `sleepy` server); `echo(items)` (bidi) answers each item with "IDENTITY:item", so a stream
shows which server it stayed on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from gopherpipe_runtime import Chan, RpcError
from gopherpipe_runtime.service import MethodDef, MethodKind, ServiceDef


def _same(value: Any) -> Any:
    return value


def who_service(identity: str, sleepy: bool = True) -> ServiceDef:
    def name() -> str:
        return identity

    def nap(seconds: float) -> str:
        if sleepy:
            time.sleep(seconds)
        return identity

    def echo(items: Chan[str]) -> Chan[str]:
        out: Chan[str] = Chan(16)

        def run() -> None:
            # A client that goes away ends `items` with its error: nobody to answer.
            with out, contextlib.suppress(RpcError):
                for item in items:
                    out.send(f"{identity}:{item}")

        threading.Thread(target=run, daemon=True).start()
        return out

    return ServiceDef(
        "Who",
        {
            "name": MethodDef(MethodKind.UNARY, lambda args: (), name, _same),
            "nap": MethodDef(MethodKind.UNARY, lambda args: (float(args[0]),), nap, _same),
            "echo": MethodDef(
                MethodKind.BIDI,
                lambda args: (),
                echo,
                _same,
                stream_param=0,
                decode_item=_same,
                encode_item=_same,
            ),
        },
    )

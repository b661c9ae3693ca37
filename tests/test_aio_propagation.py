"""An asyncio handler calling another service inherits its call's deadline and the
metadata marked for propagation (the threaded runtime's rule, `pipe._inherit`)."""

from __future__ import annotations

import asyncio
from typing import Any

from gopherpipe_runtime import CallOptions, MethodDef, MethodKind, ServiceDef
from gopherpipe_runtime.aio import Pipe, Server, current_call
from gopherpipe_runtime.testing import memory_address


def _identity(value: Any) -> Any:
    return value


def test_a_handlers_outgoing_call_inherits_its_deadline_and_metadata() -> None:
    inner_address = memory_address()

    async def seen() -> list[Any]:
        call = current_call()
        return [call.time_remaining(), call.metadata.get("trace")]

    async def relay() -> Any:
        pipe = Pipe(inner_address)
        try:  # no timeout and no metadata of its own: both come from the call served
            return await pipe.unary("Inner", "seen", [], CallOptions())
        finally:
            await pipe.close()

    async def main() -> None:
        inner = Server(inner_address)
        inner.add_service(
            ServiceDef("Inner", {"seen": MethodDef(MethodKind.UNARY, tuple, seen, _identity)})
        )
        outer = Server(memory_address(), propagate_metadata=("trace",))
        outer.add_service(
            ServiceDef("Outer", {"relay": MethodDef(MethodKind.UNARY, tuple, relay, _identity)})
        )
        async with inner, outer:
            client = Pipe(outer.addresses[0])
            try:
                options = CallOptions(timeout=5.0, metadata={"trace": "abc"})
                remaining, trace = await client.unary("Outer", "relay", [], options)
            finally:
                await client.close()
        assert trace == "abc"
        assert remaining is not None and 0 < remaining <= 5.0

    asyncio.run(main())

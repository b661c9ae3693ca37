"""The unary bench contract of the asyncio bench (bench/aio): examples/echo's `echo` shape.

A contract of its own (not examples/echo/service.py) so its stubs are generated into
bench/_gp_generated with package imports, as the other bench contracts' are; its grpc twin
is bench/protos/echo.proto.
"""

from abc import ABC, abstractmethod


class EchoService(ABC):
    @abstractmethod
    def echo(self, text: str) -> str:
        """The text, unchanged."""

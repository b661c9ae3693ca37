"""Several services in one file, sharing a method name."""

from abc import ABC, abstractmethod


class Greeter(ABC):
    @abstractmethod
    def hello(self, name: str) -> str: ...

    @abstractmethod
    def ping(self) -> None: ...


class HTTPGateway(ABC):
    """An acronym in the class name: registered as register_http_gateway."""

    @abstractmethod
    def hello(self, name: str, loud: bool = False) -> str: ...

    @abstractmethod
    def routes(self) -> list[str]: ...

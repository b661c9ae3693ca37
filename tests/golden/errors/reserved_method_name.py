from abc import ABC, abstractmethod


class S(ABC):
    # Built-in names are fine (the stubs spell builtins.list after them) ...
    @abstractmethod
    def list(self) -> int: ...

    # ... but the client's own attributes stay reserved.
    @abstractmethod
    def pipe(self) -> int: ...

    @abstractmethod
    def _hidden(self) -> int: ...

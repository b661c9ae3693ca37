from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self, a, b: Any) -> int: ...

    @abstractmethod
    def g(self, *args: int) -> Widget: ...


class T(ABC):
    def h(self) -> None:
        pass

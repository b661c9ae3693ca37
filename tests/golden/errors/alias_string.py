from abc import ABC, abstractmethod

Later = "int | None"


class S(ABC):
    @abstractmethod
    def f(self, value: Later) -> None: ...

from abc import ABC, abstractmethod

from gopherpipe_runtime import Chan


class S(ABC):
    @abstractmethod
    def f(self, lines: int, lines: Chan[int]) -> int: ...  # noqa: F831

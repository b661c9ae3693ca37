from abc import ABC, abstractmethod

from gopherpipe_runtime import Chan


class S(ABC):
    @abstractmethod
    def f(self, a: Chan[int], b: Chan[str]) -> int: ...

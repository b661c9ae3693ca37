from gopherpipe_runtime import Chan

from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def upload(self, lines: Chan[str]) -> int: ...

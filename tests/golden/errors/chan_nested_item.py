from abc import ABC, abstractmethod

from gopherpipe_runtime import Chan


class S(ABC):
    @abstractmethod
    def f(self) -> Chan[dict[str, Chan[int]]]: ...

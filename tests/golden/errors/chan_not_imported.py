from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self, room: str) -> Chan[int]: ...  # noqa: F821

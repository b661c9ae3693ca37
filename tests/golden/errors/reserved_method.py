from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def close(self) -> None: ...

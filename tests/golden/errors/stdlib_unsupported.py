from datetime import tzinfo

from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self, zone: tzinfo) -> None: ...

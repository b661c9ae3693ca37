from typing import Any

from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self, value: Any) -> int: ...

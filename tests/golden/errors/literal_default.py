from typing import Literal

from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self, mode: Literal["r", "w"] = "a") -> None: ...

from abc import ABC, abstractmethod
from typing import Optional

from gopherpipe_runtime import Chan


class S(ABC):
    @abstractmethod
    def f(self, lines: Optional[Chan[str]]) -> int: ...

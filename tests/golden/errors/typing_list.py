from typing import List

from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self) -> List[int]: ...

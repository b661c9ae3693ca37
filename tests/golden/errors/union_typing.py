from typing import Union

from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self, v: Union[int, str, None]) -> None: ...

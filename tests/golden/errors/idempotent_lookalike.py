from abc import ABC, abstractmethod

import retrying
from retrying import idempotent


class S(ABC):
    @abstractmethod
    @idempotent
    def f(self) -> int: ...

    @abstractmethod
    @retrying.idempotent
    def g(self) -> int: ...

from abc import ABC, abstractmethod

from gopherpipe_runtime import idempotent
from gopherpipe_runtime import idempotent as retry_safe


class S(ABC):
    @idempotent
    @abstractmethod
    @retry_safe
    def f(self) -> int: ...

    @idempotent
    @staticmethod
    @abstractmethod
    def g() -> int: ...

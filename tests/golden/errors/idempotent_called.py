from abc import ABC, abstractmethod

import gopherpipe_runtime


class S(ABC):
    @gopherpipe_runtime.idempotent()
    @abstractmethod
    def f(self) -> int: ...

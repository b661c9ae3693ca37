import decimal as dec

from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self, context: dec.Context) -> dec.Decimal: ...

from abc import ABC, abstractmethod
from typing import Literal, NewType

MaybeId = NewType("MaybeId", int | None)
Side = NewType("Side", Literal["buy", "sell"])


class S(ABC):
    @abstractmethod
    def f(self, value: MaybeId, side: Side) -> None: ...

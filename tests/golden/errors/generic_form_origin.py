import collections.abc
import typing as t
from abc import ABC, abstractmethod

import numpy as np
import mymodule
from mymodule import Sequence
from typing_extensions import Literal


class S(ABC):
    # typing's and collections.abc's forms, however imported, are fine:
    @abstractmethod
    def ok(
        self, a: collections.abc.Sequence[int], b: t.Mapping[str, int], c: Literal["x"]
    ) -> t.Optional[int]: ...

    # ... forms of the same name from elsewhere are not:
    @abstractmethod
    def f(self, a: mymodule.Sequence[int], b: np.Literal["x"]) -> int: ...

    @abstractmethod
    def g(self, a: Sequence[int], b: Mapping[str, int]) -> mymodule.Optional[int]: ...

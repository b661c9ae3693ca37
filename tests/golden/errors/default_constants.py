from abc import ABC, abstractmethod
from typing import Final, Literal

LIMIT = "10"
MODE = "fast"
RATIO: float = 0.5
TAGS = ("a", "b")
WHEN: Final[int] = "soon"


class S(ABC):
    @abstractmethod
    def f(
        self,
        limit: int = LIMIT,
        mode: Literal["fast", "slow"] = MODE,
        ratio: int = RATIO,
        tags: tuple[str, int] = TAGS,
        when: int = WHEN,
    ) -> None: ...

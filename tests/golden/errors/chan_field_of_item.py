from abc import ABC, abstractmethod
from dataclasses import dataclass

from gopherpipe_runtime import Chan


@dataclass
class Feed:
    name: str
    lines: "Chan[str] | None" = None


class S(ABC):
    @abstractmethod
    def f(self) -> Chan[Feed]: ...

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

TAGS = ["a", "b"]


@dataclass
class Policy:
    retries: int = 3


@dataclass
class Job:
    policy: Policy = Policy()


class S(ABC):
    @abstractmethod
    def f(self, job: Job, policy: Policy = Policy(), tags: Sequence[str] = TAGS) -> None: ...

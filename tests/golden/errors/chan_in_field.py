from dataclasses import dataclass

from gopherpipe_runtime import Chan

from abc import ABC, abstractmethod


@dataclass
class Room:
    feed: Chan[str]


class S(ABC):
    @abstractmethod
    def join(self) -> Room: ...

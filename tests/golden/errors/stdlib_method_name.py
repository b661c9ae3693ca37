from datetime import datetime, time

from abc import ABC, abstractmethod


class Clock(ABC):
    @abstractmethod
    def time(self) -> float: ...

    @abstractmethod
    def alarm(self, at: time) -> datetime: ...

import models

from abc import ABC, abstractmethod


class S(ABC):
    @abstractmethod
    def f(self) -> models.Item: ...

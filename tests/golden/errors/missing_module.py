from abc import ABC, abstractmethod


from models import Point


class S(ABC):
    @abstractmethod
    def f(self) -> Point: ...

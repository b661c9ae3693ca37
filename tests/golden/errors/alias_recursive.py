from abc import ABC, abstractmethod

Tree = list["Tree"]


class S(ABC):
    @abstractmethod
    def f(self, value: Tree) -> None: ...

from abc import ABC, abstractmethod

Index = dict[list[int], str]


class S(ABC):
    @abstractmethod
    def f(self, value: Index) -> Index: ...

    @abstractmethod
    def g(self, value: list[Index]) -> None: ...

from enum import Enum

from abc import ABC, abstractmethod
from dataclasses import dataclass


class Role(Enum):
    VIEWER = 1.5
    EDITOR = 2


@dataclass
class User:
    role: Role = Role.VIEWER


class S(ABC):
    @abstractmethod
    def f(self, role: Role = Role.VIEWER, user: User | None = None) -> Role: ...

    @abstractmethod
    def g(self, roles: dict[Role, User]) -> None: ...

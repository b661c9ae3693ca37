"""Types that name code, not data: each refusal says what to send instead."""

import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol, Type


class Greeter(Protocol):
    def greet(self) -> str: ...


class Hooks(ABC):
    @abstractmethod
    def protocol(self, g: Greeter) -> int: ...

    @abstractmethod
    def function(self, f: Callable[[int], int]) -> int: ...

    @abstractmethod
    def bare_function(self, f: Callable) -> int: ...  # type: ignore[type-arg]

    @abstractmethod
    def qualified_function(self, f: typing.Callable[..., int]) -> int: ...

    @abstractmethod
    def class_object(self, c: type[int]) -> int: ...

    @abstractmethod
    def typing_class_object(self, c: Type[int]) -> int: ...  # noqa: UP006

"""Full-text search over articles, with cursor paging."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

SortOrder = Literal["relevance", "newest", "oldest"]


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    total: int = 0


@dataclass
class Author:
    handle: str
    name: str


@dataclass
class Article:
    slug: str
    title: str
    author: Author
    published: date
    score: float = 0.0
    highlights: list[str] = field(default_factory=list)


class Search(ABC):
    @abstractmethod
    def articles(
        self, query: str, sort: SortOrder = "relevance", page_size: int = 20, cursor: str = ""
    ) -> Page[Article]: ...

    @abstractmethod
    def authors(self, prefix: str) -> Page[Author]: ...

    @abstractmethod
    def counts_by_year(self, query: str) -> Page[tuple[int, int]]: ...

    @abstractmethod
    def facets(self, query: str, fields: list[str]) -> dict[str, dict[str, int]]: ...

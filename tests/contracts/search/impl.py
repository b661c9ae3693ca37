"""Search over a fixed list of articles."""

from collections import Counter
from datetime import date

from .service import Article, Author, Page, Search, SortOrder

ADA = Author("ada", "Ada Lovelace")
GRACE = Author("grace", "Grace Hopper")
ARTICLES = [
    Article("engines", "Notes on the Analytical Engine", ADA, date(1843, 9, 1)),
    Article("compilers", "The Education of a Computer", GRACE, date(1952, 5, 2)),
    Article("cobol", "COBOL for Engines", GRACE, date(1959, 12, 17)),
]


class SearchImpl(Search):
    def articles(
        self, query: str, sort: SortOrder = "relevance", page_size: int = 20, cursor: str = ""
    ) -> Page[Article]:
        hits = [
            Article(a.slug, a.title, a.author, a.published, 1.0 + i / 4, [query])
            for i, a in enumerate(ARTICLES)
            if query.lower() in a.title.lower()
        ]
        if sort != "relevance":
            hits.sort(key=lambda a: a.published, reverse=sort == "newest")
        start = int(cursor or 0)
        more = start + page_size < len(hits)
        return Page(
            hits[start : start + page_size], str(start + page_size) if more else None, len(hits)
        )

    def authors(self, prefix: str) -> Page[Author]:
        found = [a for a in (ADA, GRACE) if a.handle.startswith(prefix)]
        return Page(found, None, len(found))

    def counts_by_year(self, query: str) -> Page[tuple[int, int]]:
        years = Counter(a.published.year for a in ARTICLES if query.lower() in a.title.lower())
        return Page(sorted(years.items()), None, len(years))

    def facets(self, query: str, fields: list[str]) -> dict[str, dict[str, int]]:
        hits = [a for a in ARTICLES if query.lower() in a.title.lower()]
        result: dict[str, dict[str, int]] = {}
        for name in fields:
            if name == "author":
                result[name] = dict(Counter(a.author.handle for a in hits))
        return result

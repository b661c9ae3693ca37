"""Types a flat-folder contract imports from the module beside it."""

from dataclasses import dataclass


@dataclass
class Item:
    sku: str
    count: int

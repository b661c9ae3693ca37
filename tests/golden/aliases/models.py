"""Aliases and NewTypes imported by the aliases case from a module next to it."""

from typing import NewType

from dataclasses import dataclass

Meters = float
Tags = set[str]
Sku = NewType("Sku", str)


@dataclass
class Item:
    sku: Sku
    tags: Tags

"""A type beside the contract, imported by it under another name."""

from enum import Enum


class Color(Enum):
    RED = "red"
    BLUE = "blue"

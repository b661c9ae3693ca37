from abc import ABC, abstractmethod


class S(ABC):
    """Nothing to call."""

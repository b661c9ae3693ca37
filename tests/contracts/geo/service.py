"""Places on a map."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, TypeAlias

LatLng = tuple[float, float]
Path: TypeAlias = list[LatLng]


class PlaceKind(Enum):
    CAFE = "cafe"
    PARK = "park"
    STATION = "station"


class Place(NamedTuple):
    name: str
    location: LatLng
    kind: PlaceKind
    elevation_m: float | None = None


@dataclass
class BoundingBox:
    south_west: LatLng
    north_east: LatLng


class Geo(ABC):
    @abstractmethod
    def distance_km(self, a: LatLng, b: LatLng) -> float: ...

    @abstractmethod
    def nearby(
        self, center: LatLng, radius_km: float = 1.5, kinds: frozenset[PlaceKind] | None = None
    ) -> list[Place]: ...

    @abstractmethod
    def route(self, waypoints: Sequence[LatLng]) -> Path: ...

    @abstractmethod
    def geocode(self, address: str) -> Place | None: ...

    @abstractmethod
    def bounds(self, places: list[Place]) -> BoundingBox: ...

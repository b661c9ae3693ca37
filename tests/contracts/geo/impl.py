"""Geo over a few known places."""

import itertools
import math
from collections.abc import Sequence

from .service import BoundingBox, Geo, LatLng, Path, Place, PlaceKind

PLACES = [
    Place("Café Sacher", (48.2039, 16.3694), PlaceKind.CAFE, 171.5),
    Place("Stadtpark", (48.2046, 16.3797), PlaceKind.PARK),
    Place("Wien Hauptbahnhof", (48.1852, 16.3776), PlaceKind.STATION, 190.0),
]


class GeoImpl(Geo):
    def distance_km(self, a: LatLng, b: LatLng) -> float:
        lat1, lng1, lat2, lng2 = map(math.radians, (*a, *b))
        h = (
            math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
        )
        return 2 * 6371.0 * math.asin(math.sqrt(h))

    def nearby(
        self, center: LatLng, radius_km: float = 1.5, kinds: frozenset[PlaceKind] | None = None
    ) -> list[Place]:
        return [
            p
            for p in PLACES
            if self.distance_km(center, p.location) <= radius_km
            and (kinds is None or p.kind in kinds)
        ]

    def route(self, waypoints: Sequence[LatLng]) -> Path:
        path: Path = []
        for a, b in itertools.pairwise(waypoints):
            path += [a, ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)]
        return [*path, waypoints[-1]] if waypoints else path

    def geocode(self, address: str) -> Place | None:
        return next((p for p in PLACES if p.name.lower() == address.lower()), None)

    def bounds(self, places: list[Place]) -> BoundingBox:
        lats = [p.location[0] for p in places]
        lngs = [p.location[1] for p in places]
        return BoundingBox((min(lats), min(lngs)), (max(lats), max(lngs)))

"""Metrics: record samples, watch them live."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, NotRequired, TypedDict

from gopherpipe_runtime import Chan


class MetricKind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Labels(TypedDict):
    service: str
    region: str
    instance: NotRequired[str]


@dataclass
class Sample:
    name: str
    value: float
    at: datetime
    labels: Labels


@dataclass
class MetricInfo:
    name: str
    kind: MetricKind
    unit: Literal["seconds", "bytes", "1"]
    label_keys: frozenset[str]


class Metrics(ABC):
    @abstractmethod
    def record(self, samples: list[Sample]) -> int: ...

    @abstractmethod
    def describe(self, name: str) -> MetricInfo: ...

    @abstractmethod
    def watch(self, names: frozenset[str], every: timedelta) -> Chan[Sample]: ...

    @abstractmethod
    def series(self, name: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]: ...

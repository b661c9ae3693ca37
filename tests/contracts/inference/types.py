"""The inference service's value types."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import NamedTuple, NewType

ModelId = NewType("ModelId", str)
Matrix = list[list[float]]


class Device(Enum):
    CPU = "cpu"
    GPU = "gpu"


class ModelInfo(NamedTuple):
    id: ModelId
    name: str
    version: int
    input_width: int
    device: Device = Device.CPU


@dataclass
class Prediction:
    label: str
    scores: dict[str, float]
    latency_ms: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class BatchResult:
    model: ModelId
    predictions: list[Prediction]
    finished_at: datetime

"""ML inference: load a model, then predict on rows of features."""

from abc import ABC, abstractmethod
from collections.abc import Sequence

from gopherpipe_runtime import Chan

from .types import BatchResult, Device, Matrix, ModelId, ModelInfo, Prediction


class Inference(ABC):
    @abstractmethod
    def load_model(self, name: str, version: int = 1, device: Device = Device.CPU) -> ModelId: ...

    @abstractmethod
    def models(self) -> list[ModelInfo]: ...

    @abstractmethod
    def predict(self, model: ModelId, features: list[list[float]]) -> BatchResult: ...

    @abstractmethod
    def embed(self, model: ModelId, texts: Sequence[str]) -> Matrix: ...

    @abstractmethod
    def predict_stream(self, model: ModelId, rows: Chan[list[float]]) -> Chan[Prediction]: ...

"""A toy linear classifier behind the Inference contract."""

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from gopherpipe_runtime import Chan, NotFoundError

from .service import Inference
from .types import BatchResult, Device, Matrix, ModelId, ModelInfo, Prediction

FINISHED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=8)))


def classify(row: list[float]) -> Prediction:
    total = sum(row)
    scores = (
        {"negative": 0.25, "positive": 0.75} if total > 0 else {"negative": 0.5, "positive": 0.5}
    )
    return Prediction(max(scores, key=lambda k: scores[k]), scores, 1.5)


class InferenceImpl(Inference):
    def __init__(self) -> None:
        self.loaded: dict[ModelId, ModelInfo] = {}

    def load_model(self, name: str, version: int = 1, device: Device = Device.CPU) -> ModelId:
        model = ModelId(f"{name}@{version}")
        self.loaded[model] = ModelInfo(model, name, version, 3, device)
        return model

    def models(self) -> list[ModelInfo]:
        return list(self.loaded.values())

    def _check(self, model: ModelId) -> None:
        if model not in self.loaded:
            raise NotFoundError(f"model {model} is not loaded")

    def predict(self, model: ModelId, features: list[list[float]]) -> BatchResult:
        self._check(model)
        return BatchResult(model, [classify(row) for row in features], FINISHED)

    def embed(self, model: ModelId, texts: Sequence[str]) -> Matrix:
        self._check(model)
        return [[float(len(t)), float(t.count(" ")), -0.5] for t in texts]

    def predict_stream(self, model: ModelId, rows: Chan[list[float]]) -> Chan[Prediction]:
        self._check(model)
        out: Chan[Prediction] = Chan(8)

        def pump() -> None:
            with out:
                for row in rows:
                    out.send(classify(row))

        threading.Thread(target=pump, daemon=True).start()
        return out

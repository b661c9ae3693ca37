"""Metrics kept in a list."""

from datetime import datetime, timedelta

from gopherpipe_runtime import Chan, NotFoundError

from .service import MetricInfo, MetricKind, Metrics, Sample

INFO = {
    "http_requests_total": MetricInfo(
        "http_requests_total", MetricKind.COUNTER, "1", frozenset({"service", "region"})
    ),
    "request_seconds": MetricInfo(
        "request_seconds", MetricKind.HISTOGRAM, "seconds", frozenset({"service"})
    ),
}


class MetricsImpl(Metrics):
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def record(self, samples: list[Sample]) -> int:
        self.samples += samples
        return len(self.samples)

    def describe(self, name: str) -> MetricInfo:
        if name not in INFO:
            raise NotFoundError(f"no metric {name!r}")
        return INFO[name]

    def watch(self, names: frozenset[str], every: timedelta) -> Chan[Sample]:
        found = [s for s in self.samples if s.name in names]
        out: Chan[Sample] = Chan(len(found) + 1)
        for sample in found:
            out.send(sample)
        out.close()
        return out

    def series(self, name: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        return [(s.at, s.value) for s in self.samples if s.name == name and start <= s.at < end]

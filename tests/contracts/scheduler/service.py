"""A job scheduler: one-off and recurring jobs."""

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import IntEnum, auto
from typing import NewType

JobId = NewType("JobId", int)


class Priority(IntEnum):
    LOW = auto()
    NORMAL = auto()
    HIGH = auto()
    URGENT = 10


@dataclass
class RetryPolicy:
    max_attempts: int = 3
    backoff: dt.timedelta | None = dt.timedelta(seconds=10)


@dataclass
class Job:
    id: JobId
    name: str
    run_at: dt.datetime
    every: dt.timedelta | None = None
    priority: Priority = Priority.NORMAL
    retry: RetryPolicy | None = field(default_factory=RetryPolicy)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Window:
    day: dt.date
    opens: dt.time
    closes: dt.time


class Scheduler(ABC):
    @abstractmethod
    def submit(
        self,
        name: str,
        run_at: dt.datetime,
        every: dt.timedelta | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> Job: ...

    @abstractmethod
    def postpone(self, job_id: JobId, delay: dt.timedelta) -> dt.datetime: ...

    @abstractmethod
    def due(self, before: dt.datetime, min_priority: Priority = Priority.LOW) -> list[Job]: ...

    @abstractmethod
    def cancel(self, job_ids: set[JobId]) -> set[JobId]: ...

    @abstractmethod
    def set_retry(self, job_id: JobId, retry: RetryPolicy) -> Job: ...

    @abstractmethod
    def maintenance_windows(self, days: list[dt.date]) -> list[Window]: ...

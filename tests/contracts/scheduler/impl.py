"""An in-memory Scheduler."""

import datetime as dt

from .service import Job, JobId, Priority, RetryPolicy, Scheduler, Window


class SchedulerImpl(Scheduler):
    def __init__(self) -> None:
        self.jobs: dict[JobId, Job] = {}

    def submit(
        self,
        name: str,
        run_at: dt.datetime,
        every: dt.timedelta | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> Job:
        job = Job(JobId(len(self.jobs) + 1), name, run_at, every, priority)
        self.jobs[job.id] = job
        return job

    def postpone(self, job_id: JobId, delay: dt.timedelta) -> dt.datetime:
        job = self.jobs[job_id]
        job.run_at += delay
        return job.run_at

    def due(self, before: dt.datetime, min_priority: Priority = Priority.LOW) -> list[Job]:
        return [j for j in self.jobs.values() if j.run_at < before and j.priority >= min_priority]

    def cancel(self, job_ids: set[JobId]) -> set[JobId]:
        return {j for j in job_ids if self.jobs.pop(j, None) is not None}

    def set_retry(self, job_id: JobId, retry: RetryPolicy) -> Job:
        self.jobs[job_id].retry = retry
        return self.jobs[job_id]

    def maintenance_windows(self, days: list[dt.date]) -> list[Window]:
        return [Window(d, dt.time(2, 0), dt.time(4, 30)) for d in days if d.weekday() == 6]

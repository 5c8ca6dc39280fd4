"""What a job is, shared by the queues that run jobs (server/jobqueue.py here, server/brokerqueue.py through
Celery) and the code they run (server/analysis.py): its stages and their share of the progress, its outcomes
(`Finished`, `Fetched`), the `Job` itself as the queues hand it on (a typed row of the jobs table, server/records.py),
and `JobProgress`, handed to the running code to report stages and enforce the time limit.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from detector.pipeline import STAGES, stage_fraction  # noqa: F401 (STAGES: re-exported for the job queues)

from .records import Job  # a row of the jobs table (storage); the queues and the services take it from here
from .serviceerrors import JobTimeout

if TYPE_CHECKING:
    from .jobqueue import JobQueue

FINISHED = ("done", "failed")
ACTIVE = ("queued", "running")


@dataclass
class Finished:
    """A job's outcome: the analysis that answers it."""

    analysis_id: str
    cached: bool


@dataclass
class Fetched:
    """A URL job's media is on disk, waiting for an analysis worker."""

    path: Path
    fetch: dict
    media_kind: str | None = None


FetchJob = Callable[[Job, "JobProgress"], "Finished | Fetched"]
AnalyzeJob = Callable[[Job, "JobProgress"], Finished]


class JobProgress:
    """Handed to the code running a job: it reports stages and the media kind as soon as it is known. Progress is
    kept in memory for polling and written to the database at each stage change, when the database allows.

    With `limit_s`, the job's time limit: the analysis reports progress for every frame decoded, every frame
    searched for faces and every batch of the model, so a report after the limit stops the job there
    (`JobTimeout`, code job_timeout). A fetch has its own deadline (DEEPFAKE_FETCH_TIMEOUT_S)."""

    def __init__(self, jobs: JobQueue, job_id: str, limit_s: float | None = None):
        self.jobs, self.job_id = jobs, job_id
        self.limit_s = limit_s
        self.deadline = time.monotonic() + limit_s if limit_s else None
        self._stage: str | None = None
        self._last_write = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise JobTimeout(f"the analysis took longer than its limit of {self.limit_s:g} s and was stopped")
        fraction = stage_fraction(stage, done, total)
        self.jobs._progress[self.job_id] = (stage, fraction)
        now = time.monotonic()
        if stage != self._stage or now - self._last_write > 2.0:
            self._stage, self._last_write = stage, now
            self.jobs._write_if_possible(self.job_id, stage=stage, fraction=fraction)
        self.jobs._notify()

    def media_kind(self, kind: str) -> None:
        self.jobs._write_if_possible(self.job_id, media_kind=kind)
        self.jobs._notify()


def remove_upload(path: Path) -> None:
    """Remove an upload (or a fetched file) with the folder of its own it lives in."""
    shutil.rmtree(path.parent, ignore_errors=True)

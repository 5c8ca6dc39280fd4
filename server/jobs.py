"""What a job is, shared by the queues that run jobs (server/jobqueue.py here, server/brokerqueue.py through
Celery) and the code they run (server/analysis.py): its stages and their share of the progress, its outcomes
(`Finished`, `Fetched`), the `Job` itself as the queues hand it on, and `JobProgress`, handed to the running code to
report stages and enforce the time limit.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.pipeline import STAGES, stage_fraction  # noqa: F401 (STAGES: re-exported for the job queues)

from .serviceerrors import JobTimeout

if TYPE_CHECKING:
    from .jobqueue import JobQueue

FINISHED = ("done", "failed")
ACTIVE = ("queued", "running")


@dataclass
class Job:
    """A job as the queues hand it to the code that runs it and to the HTTP layer: a row of the jobs table with its
    options decoded. A new job is given the first fields; the queue fills in the rest."""

    id: str
    source_type: str  # url | upload
    source: str  # as shown: the URL with credentials redacted, or the upload's file name
    client: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # model, frames, base_url (+ sha256 of an upload)
    cache_key: str | None = None  # a new job with the key of an active one shares it
    fetch_url: str | None = None  # the URL as given: kept only until the job ends
    upload_path: str | None = None  # where the media waits for its analysis: an upload, or a fetched file
    media_kind: str | None = None
    status: str = "queued"
    stage: str = "queued"
    fraction: float = 0.0
    analysis_id: str | None = None
    cached: bool = False
    error_code: str | None = None
    error_message: str | None = None
    error_status: int | None = None  # only in rows written before server/errors.py mapped the codes
    retryable: bool = False
    worker: str | None = None  # host:pid of the process running it
    attempts: int = 0
    fetch_json: str | None = None  # what the fetch found (final URL, title...), once fetched
    created_at: str = ""
    updated_at: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        """The job of a row as `Database.get_job` reads it (options decoded; flags stored as 0/1)."""
        names = {f.name for f in fields(cls)}
        job = cls(**{key: value for key, value in row.items() if key in names})
        job.cached, job.retryable = bool(job.cached), bool(job.retryable)
        return job

    def new_row(self, now: str) -> dict[str, Any]:
        """The row that stores this new job, queued."""
        return {
            "id": self.id,
            "created_at": now,
            "updated_at": now,
            "status": "queued",
            "stage": "queued",
            "source_type": self.source_type,
            "source": self.source,
            "fetch_url": self.fetch_url,
            "upload_path": self.upload_path,
            "options_json": self.options,
            "cache_key": self.cache_key,
            "media_kind": self.media_kind,
            "client": self.client,
        }

    @property
    def needs_fetch(self) -> bool:
        return self.source_type == "url" and not self.upload_path

    @property
    def fetch(self) -> dict | None:
        """What the fetch found, once fetched."""
        return json.loads(self.fetch_json) if self.fetch_json else None


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

"""Jobs: a bounded pool of worker threads running analyses, with every job stored in SQLite before work starts.

- `submit` refuses with 503 (and Retry-After) when `queue_size` jobs already wait; a job with the same cache key
  already queued or running is shared instead of analysing the same media twice.
- On start, jobs left `queued` by a previous run are queued again, and jobs left `running` by a process that is
  gone are marked failed with `retryable: true` (`POST /api/v1/jobs/<id>/retry` queues them again).
- Progress (stage and fraction) is kept in memory for polling and written to the database at each stage change.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable

from detector.errors import DetectorError

from .db import Database, utc_now
from .errors import ApiError

log = logging.getLogger(__name__)

# Where each stage sits in the overall fraction reported to clients.
STAGES = {
    "queued": (0.0, 0.0),
    "fetch": (0.0, 0.2),
    "decode": (0.2, 0.5),
    "faces": (0.5, 0.75),
    "model": (0.75, 0.9),
    "render": (0.9, 1.0),
}
FINISHED = ("done", "failed")


class JobProgress:
    """Handed to the code running a job: it reports stages and the media kind as soon as it is known."""

    def __init__(self, jobs: JobQueue, job_id: str):
        self.jobs, self.job_id = jobs, job_id
        self._stage: str | None = None
        self._last_write = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        low, high = STAGES.get(stage, (0.0, 1.0))
        fraction = low + (high - low) * (min(done / total, 1.0) if total else 0.0)
        self.jobs._set_progress(self.job_id, stage, round(fraction, 4))
        now = time.monotonic()
        if stage != self._stage or now - self._last_write > 2.0:
            self._stage, self._last_write = stage, now
            self.jobs.db.update_job(self.job_id, stage=stage, fraction=round(fraction, 4))
            self.jobs._notify()

    def media_kind(self, kind: str) -> None:
        self.jobs.db.update_job(self.job_id, media_kind=kind)
        self.jobs._notify()


RunJob = Callable[[dict, JobProgress], tuple[str, bool]]  # job -> (analysis id, cached)


class JobQueue:
    def __init__(self, db: Database, run_job: RunJob, workers: int = 2, queue_size: int = 32, retry_after_s: int = 10):
        self.db = db
        self.run_job = run_job
        self.workers = max(1, workers)
        self.queue_size = max(1, queue_size)
        self.retry_after_s = retry_after_s
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._submit_lock = threading.Lock()
        self._changed = threading.Condition()
        self._progress: dict[str, tuple[str, float]] = {}
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.recover()
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"job-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking jobs; queued ones stay queued in the database and run at the next start."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads = []

    def recover(self) -> None:
        for job in self.db.jobs_with_status("running"):
            if self._worker_alive(job.get("worker")):
                continue
            self.db.update_job(
                job["id"],
                only_if_status="running",
                status="failed",
                error_code="interrupted",
                error_message="the server stopped while this job was running; retry it",
                error_status=503,
                retryable=1,
            )
            log.warning("job %s was interrupted by a restart: marked failed (retryable)", job["id"])
        queued = self.db.jobs_with_status("queued")
        for job in queued:
            self._queue.put(job["id"])
        if queued:
            log.info("%d queued job(s) from before the restart queued again", len(queued))

    def _worker_alive(self, worker: str | None) -> bool:
        """Whether another live process on this host runs that job (several gunicorn workers share a database)."""
        host, _, pid = (worker or "").rpartition(":")
        if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except OSError:
            return False
        return True

    # --------------------------------------------------------------------------------------------- submit

    def submit(self, job: dict) -> tuple[dict, bool]:
        """Store and queue a job; return (job, shared) where `shared` means an identical job was already active."""
        with self._submit_lock:
            if job.get("cache_key"):
                active = self.db.active_job_for(job["cache_key"])
                if active:
                    return self.view(active), True
            self._ensure_room()
            now = utc_now()
            self.db.insert_job({**job, "created_at": now, "updated_at": now, "status": "queued", "stage": "queued"})
            self._queue.put(job["id"])
        return self.get(job["id"]), False

    def retry(self, job_id: str) -> dict:
        with self._submit_lock:
            job = self.db.get_job(job_id)
            if job is None:
                raise ApiError(404, "not_found", f"no job {job_id}")
            if job["status"] != "failed" or not job["retryable"]:
                raise ApiError(409, "not_retryable", f"job {job_id} is {job['status']} and cannot be retried")
            self._ensure_room()
            fields = {"error_code": None, "error_message": None, "error_status": None, "retryable": 0}
            self.db.update_job(job_id, only_if_status="failed", status="queued", stage="queued", fraction=0, **fields)
            self._queue.put(job_id)
        return self.get(job_id)

    def _ensure_room(self) -> None:
        if self._queue.qsize() >= self.queue_size:
            raise ApiError(
                503,
                "queue_full",
                f"the server is busy: {self.queue_size} jobs are waiting; retry in a few seconds",
                {"Retry-After": str(self.retry_after_s)},
            )

    # ------------------------------------------------------------------------------------------ observing

    def get(self, job_id: str) -> dict | None:
        job = self.db.get_job(job_id)
        return self.view(job) if job else None

    def view(self, job: dict) -> dict:
        live = self._progress.get(job["id"])
        if live and job["status"] == "running":
            job["stage"], job["fraction"] = live
        return job

    def wait(self, job_id: str, until: Callable[[dict], bool], timeout_s: float) -> dict | None:
        """The job once `until(job)` holds or it finished, or as it is when `timeout_s` runs out."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._changed:
            while True:
                job = self.get(job_id)
                if job is None or job["status"] in FINISHED or until(job):
                    return job
                left = deadline - time.monotonic()
                if left <= 0:
                    return job
                # Jobs run by another process only show up in the database: poll it now and then.
                self._changed.wait(timeout=min(left, 0.5))

    def queued_count(self) -> int:
        return self._queue.qsize()

    def _set_progress(self, job_id: str, stage: str, fraction: float) -> None:
        self._progress[job_id] = (stage, fraction)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------------------------------------ work

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            if not self.db.update_job(job_id, only_if_status="queued", status="running", worker=self.identity, stage="queued"):
                continue  # taken by another process, retried, or deleted
            job = self.db.get_job(job_id)
            self.db.update_job(job_id, attempts=job["attempts"] + 1)
            self._run(job)

    def _run(self, job: dict) -> None:
        job_id = job["id"]
        self._set_progress(job_id, "queued", 0.0)
        self._notify()
        try:
            analysis_id, cached = self.run_job(job, JobProgress(self, job_id))
        except DetectorError as exc:
            retryable = exc.http_status >= 500
            self._fail(job_id, exc.code, exc.message, exc.http_status, retryable)
        except ApiError as exc:
            self._fail(job_id, exc.code, exc.message, exc.status, exc.status >= 500)
        except Exception as exc:  # a bug: keep the worker alive, keep the job retryable, log everything
            log.exception("job %s failed unexpectedly", job_id)
            self._fail(job_id, "internal_error", f"the analysis failed unexpectedly ({type(exc).__name__})", 500, True)
        else:
            self.db.update_job(job_id, status="done", stage="done", fraction=1.0, analysis_id=analysis_id, cached=int(cached))
        finally:
            self._progress.pop(job_id, None)
            self._notify()

    def _fail(self, job_id: str, code: str, message: str, status: int, retryable: bool) -> None:
        self.db.update_job(
            job_id,
            status="failed",
            error_code=code,
            error_message=message,
            error_status=status,
            retryable=int(retryable),
        )

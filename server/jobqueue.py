"""The local job queue (`DEEPFAKE_QUEUE=local`): every analysis request is a job, stored in the database before any
work starts, that passes through two bounded pools of worker threads:

- **fetch** (URL jobs only): `fetch_workers` threads download media, at most `client_fetches` of one client's jobs
  at a time. A source that never answers holds one fetch thread until the fetch deadline, never an analysis worker.
- **analysis**: `workers` threads run the model on uploads and on fetched media, at most `client_analyses` of one
  client's jobs at a time (by default all workers but one, so another client's job always finds a worker soon).

In both pools clients take turns (`FairQueue`): one client's many jobs wait behind each other, not in front of
other clients' jobs. `submit` refuses (`QueueFull`, with a time to retry after) when `queue_size` jobs already wait,
and (`TooManyJobs`) when a client already has `client_url_jobs` URL jobs waiting for or in a fetch; a job identical to
one of the same client's queued or running jobs is shared instead of analysing the same media twice.

A worker survives any exception, database errors included: the job is marked failed (retryable), and when the
database cannot be written the outcome is kept in memory and written once it can (`health()` reports it
meanwhile, with dead or stuck workers). On start, jobs left `queued` by a previous run are queued again, and jobs
left `running` by a process that is gone are marked failed with `retryable: true`. Jobs that ended more than
`retention_s` ago are deleted with their upload files, as are upload files no job refers to.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from detector.errors import DetectorError, storage_error

from .db import Database, database_failure, format_time, utc_now
from .jobs import ACTIVE, FINISHED, STAGES, AnalyzeJob, Fetched, FetchJob, Finished, Job, JobProgress, remove_upload
from .queueing import FairQueue
from .serviceerrors import (
    FETCH_QUEUE_TIMEOUT,
    INTERRUPTED,
    JobNotFound,
    NotRetryable,
    QueueFull,
    ServiceError,
    TooManyJobs,
    may_succeed_later,
)

log = logging.getLogger(__name__)


class NotStarted(Exception):
    """A job could not be claimed because the database refused the write: it never started, so it stays queued."""


# How long a job that could not be claimed waits before it is offered to a worker again.
CLAIM_RETRY_S = 2.0


@dataclass(eq=False)
class Worker:
    name: str
    thread: threading.Thread | None = None
    job_id: str | None = None
    since: float = 0.0


@dataclass(eq=False)
class Pool:
    name: str
    size: int
    step: Callable[[str], None]
    stuck_after_s: float
    queue: FairQueue
    workers: list[Worker] = field(default_factory=list)


class JobQueue:
    def __init__(
        self,
        db: Database,
        fetch_job: FetchJob,
        analyze_job: AnalyzeJob,
        *,
        workers: int = 2,
        fetch_workers: int = 8,
        client_fetches: int = 2,
        client_analyses: int = 0,
        client_url_jobs: int = 8,
        queue_size: int = 32,
        retry_after_s: int = 10,
        analysis_stuck_after_s: float = 600.0,
        fetch_stuck_after_s: float = 90.0,
        fetch_queue_wait_s: float = 20.0,
        retention_s: float = 7 * 86400.0,
        uploads_dir: Path | None = None,
        on_finish: Callable[[Job, str, datetime], None] | None = None,
        delete_upload: Callable[[str], None] | None = None,
    ):
        self.db = db
        self.fetch_job, self.analyze_job = fetch_job, analyze_job
        self.client_url_jobs = max(1, client_url_jobs)
        self.queue_size = max(1, queue_size)
        self.retry_after_s = retry_after_s
        self.fetch_queue_wait_s = fetch_queue_wait_s
        self.retention_s = retention_s
        self.uploads_dir = uploads_dir
        self.on_finish = on_finish  # (job, status, when): told of every outcome written (metrics)
        # an upload's or fetched file's removal (the server's may reach an object store)
        self.delete_upload = delete_upload or (lambda where: remove_upload(Path(where)))
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.fetching = Pool(
            "fetch", max(1, fetch_workers), self._fetch_step, fetch_stuck_after_s, FairQueue(max(1, client_fetches))
        )
        # One client's analyses take at most `client_analyses` workers (0: all but one), so that a client's slow
        # clips never hold every worker while another client's job waits.
        per_client = client_analyses if client_analyses > 0 else max(1, workers - 1)
        self.analysing = Pool("analysis", max(1, workers), self._analysis_step, analysis_stuck_after_s, FairQueue(per_client))
        self._submit_lock = threading.Lock()
        self._changed = threading.Condition()
        self._progress: dict[str, tuple[str, float]] = {}
        # Outcomes that could not be written (the database failed): written by the supervisor once it can.
        self._unwritten: dict[str, dict] = {}
        self._unwritten_lock = threading.Lock()
        self._database_error: str | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._next_expiry = 0.0

    # ------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.recover()
        for pool in (self.fetching, self.analysing):
            for n in range(pool.size):
                worker = Worker(f"{pool.name}-worker-{n}")
                worker.thread = threading.Thread(target=self._serve, args=(pool, worker), name=worker.name, daemon=True)
                pool.workers.append(worker)
                worker.thread.start()
        self._supervisor = threading.Thread(target=self._supervise, name="job-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self, timeout_s: float = 10.0, interrupt: Callable[[], None] | None = None) -> None:
        """Stop taking jobs (queued ones stay queued in the database and run at the next start), call `interrupt`
        (which may cut running fetches short), and give running jobs `timeout_s` to end."""
        self._stopping.set()
        for pool in (self.fetching, self.analysing):
            pool.queue.close()
        if interrupt is not None:
            interrupt()
        deadline = time.monotonic() + timeout_s
        for pool in (self.fetching, self.analysing):
            for worker in pool.workers:
                if worker.thread is not None:
                    worker.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._supervisor is not None:
            self._supervisor.join(timeout=max(0.0, deadline - time.monotonic()))
        self._flush_unwritten()

    def recover(self) -> None:
        for job in self._jobs_with_status("running"):
            if self._worker_alive(job.worker):
                continue
            self.db.update_job(
                job.id,
                only_if_status="running",
                status="failed",
                error_code=INTERRUPTED,
                error_message="the server stopped while this job was running; retry it",
                retryable=1,
            )
            log.warning("job %s was interrupted by a restart: marked failed (retryable)", job.id)
        queued = self._jobs_with_status("queued")
        for job in queued:
            self._enqueue(job)
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

    def submit(self, job: Job) -> tuple[Job, bool]:
        """Store and queue a new job; return (job, shared) where `shared` means an identical job was already active."""
        with self._submit_lock:
            if job.cache_key:
                active = self.db.active_job_for(job.cache_key)
                if active:
                    return self.view(active), True
            self._ensure_room(job)
            self.db.insert_job(job.queued_at(utc_now()))
            self._enqueue(job)
        return self.get(job.id), False

    def retry(self, job_id: str) -> Job:
        with self._submit_lock:
            job = self._job(job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id}")
            if job.status != "failed" or not job.retryable:
                raise NotRetryable(f"job {job_id} is {job.status} and cannot be retried")
            fields = {"error_code": None, "error_message": None, "error_status": None, "retryable": 0}
            if job.upload_path and not Path(job.upload_path).is_file() and job.source_type == "url":
                fields["upload_path"] = job.upload_path = None  # the fetched file is gone: fetch again
            self._ensure_room(job)
            self.db.update_job(job_id, only_if_status="failed", status="queued", stage="queued", fraction=0, **fields)
            self._enqueue(job)
        return self.get(job_id)

    def _ensure_room(self, job: Job) -> None:
        if self.queued_count() >= self.queue_size:
            raise QueueFull(
                f"the server is busy: {self.queue_size} jobs are waiting; retry in a few seconds",
                retry_after_s=self.retry_after_s,
            )
        if job.needs_fetch and self.db.url_jobs_before_analysis(job.client or "") >= self.client_url_jobs:
            raise TooManyJobs(
                f"you already have {self.client_url_jobs} links waiting to be fetched; wait for them to finish",
                retry_after_s=self.retry_after_s,
            )

    def _enqueue(self, job: Job) -> None:
        pool = self.fetching if job.needs_fetch else self.analysing
        pool.queue.put(job.client or "", job.id)

    # ------------------------------------------------------------------------------------------ observing

    def get(self, job_id: str) -> Job | None:
        job = self._job(job_id)
        return self.view(job) if job else None

    def view(self, job: Job) -> Job:
        live = self._progress.get(job.id)
        if live and job.status == "running":
            job.stage, job.fraction = live
        return job

    def _job(self, job_id: str) -> Job | None:
        return self.db.get_job(job_id)

    def _jobs_with_status(self, status: str) -> list[Job]:
        return self.db.jobs_with_status(status)

    def wait(self, job_id: str, until: Callable[[Job], bool], timeout_s: float) -> Job | None:
        """The job once `until(job)` holds or it finished, or as it is when `timeout_s` runs out."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._changed:
            while True:
                job = self.get(job_id)
                if job is None or job.status in FINISHED or until(job):
                    return job
                left = deadline - time.monotonic()
                if left <= 0:
                    return job
                # Jobs run by another process only show up in the database: poll it now and then.
                self._changed.wait(timeout=min(left, 0.5))

    def queued_count(self) -> int:
        return self.fetching.queue.waiting() + self.analysing.queue.waiting()

    def waiting_by_pool(self) -> dict[str, int]:
        return {pool.name: pool.queue.waiting() for pool in (self.fetching, self.analysing)}

    def health(self) -> dict:
        """For readiness: each pool's workers (alive, busy, dead, stuck), waiting jobs, and the database."""
        now = time.monotonic()
        pools, problems = {}, []
        for pool in (self.fetching, self.analysing):
            dead = [w.name for w in pool.workers if w.thread is None or not w.thread.is_alive()]
            stuck = [w.name for w in pool.workers if w.job_id and now - w.since > pool.stuck_after_s]
            pools[pool.name] = {
                "workers": len(pool.workers),
                "busy": sum(1 for w in pool.workers if w.job_id),
                "dead": len(dead),
                "stuck": len(stuck),
                "waiting": pool.queue.waiting(),
            }
            problems += [f"{name} is dead" for name in dead]
            problems += [f"{name} has run one job for over {pool.stuck_after_s:g} s" for name in stuck]
        database = self.db.check_writable()
        with self._unwritten_lock:
            unwritten = len(self._unwritten)
        if database is None and unwritten:
            database = f"{unwritten} job outcome(s) not written yet: {self._database_error}"
        elif database is None and self._database_error:  # e.g. jobs that cannot be claimed: they wait, queued
            database = self._database_error
        if database:
            problems.append(f"the database cannot be written: {database}")
        return {
            "ok": not problems,
            "problems": problems,
            "database": database or "ok",
            "unwritten_outcomes": unwritten,
            "pools": pools,
        }

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------------------------------------ work

    def _serve(self, pool: Pool, worker: Worker) -> None:
        while True:
            taken = pool.queue.get()
            if taken is None:
                return
            client, job_id = taken
            worker.job_id, worker.since = job_id, time.monotonic()
            try:
                pool.step(job_id)
            except NotStarted as exc:  # the database is read-only or gone: not a failure of the job
                self._database_error = database_failure(exc.__cause__ or exc)
                log.warning("%s: job %s cannot be started now (%s); it stays queued", worker.name, job_id, exc.__cause__)
                self._offer_later(pool, client, job_id)
            except Exception as exc:  # whatever happens, this worker goes on with the next job
                log.exception("%s: job %s failed unexpectedly", worker.name, job_id)
                self._finish(job_id, self._failure(exc))
            finally:
                pool.queue.done(client)
                self._progress.pop(job_id, None)
                worker.job_id = None
                self._notify()

    def _offer_later(self, pool: Pool, client: str, job_id: str) -> None:
        """Queue `job_id` in `pool` again after CLAIM_RETRY_S (unless the queue is stopping)."""

        def offer() -> None:
            if not self._stopping.wait(CLAIM_RETRY_S):
                pool.queue.put(client, job_id)

        threading.Thread(target=offer, name=f"offer-{job_id[:8]}", daemon=True).start()

    def _claim(self, job_id: str, stage: str) -> Job | None:
        """Mark a queued job as running here; None when another worker, a retry or a deletion got there first.
        NotStarted when the database refuses the write: the job is still queued."""
        try:
            claimed = self.db.update_job(job_id, only_if_status="queued", status="running", worker=self.identity, stage=stage)
        except Exception as exc:
            raise NotStarted(f"job {job_id} could not be claimed") from exc
        self._database_error = None
        if not claimed:
            return None
        job = self._job(job_id)
        self.db.update_job(job_id, attempts=job.attempts + 1)
        self._progress[job_id] = (stage, STAGES.get(stage, (0.0, 0.0))[0])
        self._notify()
        return job

    def _fetch_step(self, job_id: str) -> None:
        job = self._claim(job_id, "fetch")
        # fetched, the job waits queued for this process's analysis pool
        outcome = self._fetch(job, status="queued", fraction=STAGES["fetched"][0]) if job else None
        if isinstance(outcome, Finished):
            self._finish(job_id, self._done(outcome))
        elif isinstance(outcome, Fetched):
            self.analysing.queue.put(job.client or "", job_id)

    def _fetch(self, job: Job, **next_state) -> Finished | Fetched | None:
        """Fetch a URL job's media, or answer it from the cache; None when the fetch failed (the failure is then
        recorded). Fetched media is written on the job's row, with `next_state`, before the job goes on."""
        outcome = self._attempt(job, self.fetch_job)
        if isinstance(outcome, Fetched):
            try:
                self.db.update_job(
                    job.id,
                    only_if_status="running",
                    stage="fetched",
                    upload_path=str(outcome.path),
                    fetch_json=json.dumps(outcome.fetch),
                    **({"media_kind": outcome.media_kind} if outcome.media_kind else {}),
                    **next_state,
                )
            except Exception:
                # No row names the file now: it would wait for the retention sweep. A retry fetches again.
                self.delete_upload(str(outcome.path))
                raise
        return outcome

    def _analysis_step(self, job_id: str) -> None:
        job = self._claim(job_id, "decode")
        outcome = self._attempt(job, self.analyze_job) if job else None
        if outcome is not None:
            self._finish(job_id, self._done(outcome))

    def _attempt(self, job: Job, run: Callable[[Job, JobProgress], Finished | Fetched]) -> Finished | Fetched | None:
        """What `run` made of the job, or None when it failed (the failure is then recorded). An analysis runs
        under the job time limit (DEEPFAKE_JOB_TIMEOUT_S)."""
        limit = self.analysing.stuck_after_s if run == self.analyze_job else None
        try:
            return run(job, JobProgress(self, job.id, limit))
        except (DetectorError, ServiceError) as exc:
            self._finish(job.id, self._failure(exc))
        except Exception as exc:  # a bug, or the database failing: the traceback goes to the log
            log.exception("job %s failed unexpectedly", job.id)
            self._finish(job.id, self._failure(exc))
        return None

    @staticmethod
    def _done(outcome: Finished) -> dict:
        return {
            "status": "done",
            "stage": "done",
            "fraction": 1.0,
            "analysis_id": outcome.analysis_id,
            "cached": int(outcome.cached),
        }

    @staticmethod
    def _failure(exc: Exception) -> dict:
        """A failed job's row: the error's code and message, and whether a retry may succeed (the HTTP layer maps
        the code to a status, server/errors.py)."""
        exc = storage_error(exc) or exc  # a full disk (moving fetched media, say) is neither a bug nor the source's
        if isinstance(exc, (DetectorError, ServiceError)):
            code, message = exc.code, exc.message
        else:
            code, message = "internal_error", f"the analysis failed unexpectedly ({type(exc).__name__})"
        return {"status": "failed", "error_code": code, "error_message": message, "retryable": int(may_succeed_later(exc))}

    def _finish(self, job_id: str, fields: dict) -> None:
        """Write a job's outcome; when the database fails, keep it for the supervisor to write later."""
        if not fields.get("retryable"):
            fields = {**fields, "fetch_url": None}  # the job is over: the URL as given (credentials and all) goes
        self._progress.pop(job_id, None)
        try:
            if self.db.update_job(job_id, only_if_status=ACTIVE, **fields):
                self._finished(job_id, fields["status"])
            self._database_error = None
        except Exception as exc:
            self._database_error = database_failure(exc)
            log.error("job %s: its outcome (%s) cannot be written now (%s); will retry", job_id, fields["status"], exc)
            with self._unwritten_lock:
                self._unwritten[job_id] = fields
        self._notify()

    def _finished(self, job_id: str, status: str) -> None:
        if self.on_finish is None:
            return
        try:
            job = self._job(job_id)
            if job is not None:
                self.on_finish(job, status, datetime.now(timezone.utc))
        except Exception:  # observing must never fail a job
            log.exception("job %s: its outcome could not be observed", job_id)

    def _write_if_possible(self, job_id: str, **fields) -> None:
        """A write that may be lost (progress): a failing database must not fail the job for it."""
        try:
            self.db.update_job(job_id, **fields)
        except Exception as exc:
            self._database_error = database_failure(exc)
            log.warning("job %s: progress not written (%s)", job_id, exc)

    # ------------------------------------------------------------------------------------------ supervisor

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            self._supervise_once()
            self._stopping.wait(1.0)  # links waiting for a fetch worker are refused within a second of their bound

    def _supervise_once(self) -> None:
        self._flush_unwritten()
        self._refuse_long_waiting_fetches()
        if time.monotonic() >= self._next_expiry:
            try:
                self.expire()
            except Exception:
                log.exception("expiring old jobs failed; will try again")
            self._next_expiry = time.monotonic() + max(60.0, min(3600.0, self.retention_s / 10))

    def _refuse_long_waiting_fetches(self) -> None:
        """Links that waited `fetch_queue_wait_s` for a fetch worker (every one held by sources that do not answer)
        fail as retryable (503 with a Retry-After), so that no client waits for a fetch up to the fetch timeout times
        the queue."""
        for _, job_id in self.fetching.queue.take_older_than(self.fetch_queue_wait_s):
            message = f"every fetch worker stayed busy for {self.fetch_queue_wait_s:g} s; retry in a few seconds"
            self._finish(
                job_id, {"status": "failed", "error_code": FETCH_QUEUE_TIMEOUT, "error_message": message, "retryable": 1}
            )

    def _flush_unwritten(self) -> None:
        with self._unwritten_lock:
            pending = list(self._unwritten.items())
        for job_id, fields in pending:
            if fields["status"] == "failed":
                fields = {**fields, "retryable": 1}  # whatever failed, the database was in the way: it may work now
            try:
                if self.db.update_job(job_id, only_if_status=ACTIVE, **fields):
                    self._finished(job_id, fields["status"])
            except Exception as exc:
                self._database_error = database_failure(exc)
                return
            with self._unwritten_lock:
                self._unwritten.pop(job_id, None)
            log.info("job %s: outcome written (%s)", job_id, fields["status"])
            self._notify()
        if pending:
            self._database_error = None

    def expire(self) -> None:
        """Delete jobs that ended longer than `retention_s` ago with their upload files, and upload files that no
        job refers to (left by a job that expired, or by a process that died between saving and storing)."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=self.retention_s)
        for path in self.db.expire_jobs(format_time(cutoff)):
            self.delete_upload(path)
        if self.uploads_dir is None or not self.uploads_dir.is_dir():
            return
        in_use = {Path(path).parent for path in self.db.upload_paths_in_use()}
        for folder in self.uploads_dir.iterdir():
            if folder not in in_use and folder.stat().st_mtime < cutoff.timestamp():
                shutil.rmtree(folder, ignore_errors=True)

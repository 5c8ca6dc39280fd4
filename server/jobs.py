"""Jobs: every analysis request is a job, stored in the database before any work starts, that passes through two
bounded pools of worker threads:

- **fetch** (URL jobs only): `fetch_workers` threads download media, at most `client_fetches` of one client's jobs
  at a time. A source that never answers holds one fetch thread until the fetch deadline, never an analysis worker.
- **analysis**: `workers` threads run the model on uploads and on fetched media, at most `client_analyses` of one
  client's jobs at a time (by default all workers but one, so another client's job always finds a worker soon).

In both pools clients take turns (`FairQueue`): one client's many jobs wait behind each other, not in front of
other clients' jobs. `submit` refuses with 503 (and Retry-After) when `queue_size` jobs already wait, and with 429
when a client already has `client_url_jobs` URL jobs waiting for or in a fetch; a job identical to one of the same
client's queued or running jobs is shared instead of analysing the same media twice.

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
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from detector.errors import DetectorError, storage_error

from .db import Database, database_failure, format_time, utc_now
from .errors import ApiError

log = logging.getLogger(__name__)

# Where each stage sits in the overall fraction reported to clients.
STAGES = {
    "queued": (0.0, 0.0),
    "fetch": (0.0, 0.2),
    "fetched": (0.2, 0.2),  # downloaded, waiting for an analysis worker
    "decode": (0.2, 0.5),
    "faces": (0.5, 0.75),
    "model": (0.75, 0.9),
    "render": (0.9, 1.0),
}
FINISHED = ("done", "failed")
ACTIVE = ("queued", "running")


class NotStarted(Exception):
    """A job could not be claimed because the database refused the write: it never started, so it stays queued."""


# How long a job that could not be claimed waits before it is offered to a worker again.
CLAIM_RETRY_S = 2.0


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


FetchJob = Callable[[dict, "JobProgress"], "Finished | Fetched"]
AnalyzeJob = Callable[[dict, "JobProgress"], Finished]


class FairQueue:
    """Items waiting for one pool, handed out client by client in turn, with at most `per_client` of a client's
    items out at once (None: no limit). `done(client)` gives a client's slot back."""

    def __init__(self, per_client: int | None = None):
        self.per_client = per_client
        self._waiting: dict[str, deque[tuple[str, float]]] = {}  # client -> (item, when it was put)
        self._turns: deque[str] = deque()
        self._out: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._closed = False

    def put(self, client: str, item: str) -> None:
        with self._changed:
            if client not in self._waiting:
                self._waiting[client] = deque()
                self._turns.append(client)
            self._waiting[client].append((item, time.monotonic()))
            self._changed.notify()

    def get(self) -> tuple[str, str] | None:
        """The next (client, item), waiting for one; None once the queue is closed."""
        with self._changed:
            while not self._closed:
                for _ in range(len(self._turns)):
                    client = self._turns[0]
                    self._turns.rotate(-1)  # whether served or not, the next client's turn comes first
                    if self.per_client is None or self._out[client] < self.per_client:
                        item, _ = self._waiting[client].popleft()
                        self._forget_if_empty(client)
                        self._out[client] += 1
                        return client, item
                self._changed.wait()
            return None

    def take_older_than(self, seconds: float) -> list[tuple[str, str]]:
        """Remove and return the (client, item) pairs that have waited longer than `seconds`."""
        cutoff, taken = time.monotonic() - seconds, []
        with self._changed:
            for client in list(self._waiting):
                waiting = self._waiting[client]
                while waiting and waiting[0][1] < cutoff:
                    taken.append((client, waiting.popleft()[0]))
                self._forget_if_empty(client)
        return taken

    def _forget_if_empty(self, client: str) -> None:
        if not self._waiting[client]:
            del self._waiting[client]
            self._turns.remove(client)

    def done(self, client: str) -> None:
        with self._changed:
            self._out[client] -= 1
            if self._out[client] <= 0:
                del self._out[client]
            self._changed.notify_all()

    def waiting(self) -> int:
        with self._changed:
            return sum(len(items) for items in self._waiting.values())

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()


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


class JobProgress:
    """Handed to the code running a job: it reports stages and the media kind as soon as it is known. Progress is
    kept in memory for polling and written to the database at each stage change, when the database allows.

    With `limit_s`, the job's time limit: the analysis reports progress for every frame decoded, every frame
    searched for faces and every batch of the model, so a report after the limit stops the job there
    (`504 job_timeout`). A fetch has its own deadline (DEEPFAKE_FETCH_TIMEOUT_S)."""

    def __init__(self, jobs: JobQueue, job_id: str, limit_s: float | None = None):
        self.jobs, self.job_id = jobs, job_id
        self.limit_s = limit_s
        self.deadline = time.monotonic() + limit_s if limit_s else None
        self._stage: str | None = None
        self._last_write = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ApiError(504, "job_timeout", f"the analysis took longer than its limit of {self.limit_s:g} s and was stopped")
        low, high = STAGES.get(stage, (0.0, 1.0))
        fraction = round(low + (high - low) * (min(done / total, 1.0) if total else 0.0), 4)
        self.jobs._progress[self.job_id] = (stage, fraction)
        now = time.monotonic()
        if stage != self._stage or now - self._last_write > 2.0:
            self._stage, self._last_write = stage, now
            self.jobs._write_if_possible(self.job_id, stage=stage, fraction=fraction)
        self.jobs._notify()

    def media_kind(self, kind: str) -> None:
        self.jobs._write_if_possible(self.job_id, media_kind=kind)
        self.jobs._notify()


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
        on_finish: Callable[[dict, str, datetime], None] | None = None,
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
        self.fetching = Pool("fetch", max(1, fetch_workers), self._fetch_step, fetch_stuck_after_s, FairQueue(max(1, client_fetches)))
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

    def submit(self, job: dict) -> tuple[dict, bool]:
        """Store and queue a job; return (job, shared) where `shared` means an identical job was already active."""
        with self._submit_lock:
            if job.get("cache_key"):
                active = self.db.active_job_for(job["cache_key"])
                if active:
                    return self.view(active), True
            self._ensure_room(job)
            now = utc_now()
            self.db.insert_job({**job, "created_at": now, "updated_at": now, "status": "queued", "stage": "queued"})
            self._enqueue(job)
        return self.get(job["id"]), False

    def retry(self, job_id: str) -> dict:
        with self._submit_lock:
            job = self.db.get_job(job_id)
            if job is None:
                raise ApiError(404, "not_found", f"no job {job_id}")
            if job["status"] != "failed" or not job["retryable"]:
                raise ApiError(409, "not_retryable", f"job {job_id} is {job['status']} and cannot be retried")
            fields = {"error_code": None, "error_message": None, "error_status": None, "retryable": 0}
            if job["upload_path"] and not Path(job["upload_path"]).is_file() and job["source_type"] == "url":
                fields["upload_path"] = job["upload_path"] = None  # the fetched file is gone: fetch again
            self._ensure_room(job)
            self.db.update_job(job_id, only_if_status="failed", status="queued", stage="queued", fraction=0, **fields)
            self._enqueue(job)
        return self.get(job_id)

    def _ensure_room(self, job: dict) -> None:
        if self.queued_count() >= self.queue_size:
            raise ApiError(
                503,
                "queue_full",
                f"the server is busy: {self.queue_size} jobs are waiting; retry in a few seconds",
                {"Retry-After": str(self.retry_after_s)},
            )
        if self._needs_fetch(job) and self.db.url_jobs_before_analysis(job.get("client") or "") >= self.client_url_jobs:
            raise ApiError(
                429,
                "too_many_jobs",
                f"you already have {self.client_url_jobs} links waiting to be fetched; wait for them to finish",
                {"Retry-After": str(self.retry_after_s)},
            )

    @staticmethod
    def _needs_fetch(job: dict) -> bool:
        return job["source_type"] == "url" and not job.get("upload_path")

    def _enqueue(self, job: dict) -> None:
        pool = self.fetching if self._needs_fetch(job) else self.analysing
        pool.queue.put(job.get("client") or "", job["id"])

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

    def _claim(self, job_id: str, stage: str) -> dict | None:
        """Mark a queued job as running here; None when another worker, a retry or a deletion got there first.
        NotStarted when the database refuses the write: the job is still queued."""
        try:
            claimed = self.db.update_job(job_id, only_if_status="queued", status="running", worker=self.identity, stage=stage)
        except Exception as exc:
            raise NotStarted(f"job {job_id} could not be claimed") from exc
        self._database_error = None
        if not claimed:
            return None
        job = self.db.get_job(job_id)
        self.db.update_job(job_id, attempts=job["attempts"] + 1)
        self._progress[job_id] = (stage, STAGES.get(stage, (0.0, 0.0))[0])
        self._notify()
        return job

    def _fetch_step(self, job_id: str) -> None:
        job = self._claim(job_id, "fetch")
        outcome = self._attempt(job, self.fetch_job) if job else None
        if isinstance(outcome, Finished):
            self._finish(job_id, self._done(outcome))
        elif isinstance(outcome, Fetched):
            try:
                self.db.update_job(
                    job_id,
                    only_if_status="running",
                    status="queued",
                    stage="fetched",
                    fraction=STAGES["fetched"][0],
                    upload_path=str(outcome.path),
                    fetch_json=json.dumps(outcome.fetch),
                    **({"media_kind": outcome.media_kind} if outcome.media_kind else {}),
                )
            except Exception:
                # No row names the file now: it would wait for the retention sweep. A retry fetches again.
                self.delete_upload(str(outcome.path))
                raise
            self.analysing.queue.put(job.get("client") or "", job_id)

    def _analysis_step(self, job_id: str) -> None:
        job = self._claim(job_id, "decode")
        outcome = self._attempt(job, self.analyze_job) if job else None
        if outcome is not None:
            self._finish(job_id, self._done(outcome))

    def _attempt(self, job: dict, run: Callable[[dict, JobProgress], Finished | Fetched]) -> Finished | Fetched | None:
        """What `run` made of the job, or None when it failed (the failure is then recorded). An analysis runs
        under the job time limit (DEEPFAKE_JOB_TIMEOUT_S)."""
        limit = self.analysing.stuck_after_s if run == self.analyze_job else None
        try:
            return run(job, JobProgress(self, job["id"], limit))
        except (DetectorError, ApiError) as exc:
            self._finish(job["id"], self._failure(exc))
        except Exception as exc:  # a bug, or the database failing: the traceback goes to the log
            log.exception("job %s failed unexpectedly", job["id"])
            self._finish(job["id"], self._failure(exc))
        return None

    @staticmethod
    def _done(outcome: Finished) -> dict:
        return {"status": "done", "stage": "done", "fraction": 1.0, "analysis_id": outcome.analysis_id, "cached": int(outcome.cached)}

    @staticmethod
    def _failure(exc: Exception) -> dict:
        exc = storage_error(exc) or exc  # a full disk (moving fetched media, say) is neither a bug nor the source's
        if isinstance(exc, DetectorError):
            code, message, status = exc.code, exc.message, exc.http_status
        elif isinstance(exc, ApiError):
            code, message, status = exc.code, exc.message, exc.status
        else:
            code, message, status = "internal_error", f"the analysis failed unexpectedly ({type(exc).__name__})", 500
        return {
            "status": "failed",
            "error_code": code,
            "error_message": message,
            "error_status": status,
            "retryable": int(status >= 500),
        }

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
            job = self.db.get_job(job_id)
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
        fail with 503 and a Retry-After, so that no client waits for a fetch up to the fetch timeout times the queue."""
        for _, job_id in self.fetching.queue.take_older_than(self.fetch_queue_wait_s):
            self._finish(
                job_id,
                {
                    "status": "failed",
                    "error_code": "fetch_queue_timeout",
                    "error_message": f"every fetch worker stayed busy for {self.fetch_queue_wait_s:g} s; retry in a few seconds",
                    "error_status": 503,
                    "retryable": 1,
                },
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


def remove_upload(path: Path) -> None:
    """Remove an upload (or a fetched file) with the folder of its own it lives in."""
    shutil.rmtree(path.parent, ignore_errors=True)


class BrokerJobQueue(JobQueue):
    """The job queue of `DEEPFAKE_QUEUE=celery`: jobs are stored in the shared database as in the local mode, and
    their ids are sent to Celery workers (`python -m server worker`) through the broker; this process runs no job.

    What the local pools do per process, the database does across processes: the queue's size is the number of
    queued jobs, a client's waiting links are counted there, and a job's progress and outcome are read from there
    (the long-poll re-reads it twice a second). Workers claim a job with a conditional update, so a message the
    broker delivers twice (a worker lost mid-job, a visibility timeout) runs the job once; see `run`.
    """

    def __init__(self, db: Database, fetch_job: FetchJob, analyze_job: AnalyzeJob, *, broker, heartbeat_s: float = 5.0,
                 **options):  # fmt: skip
        super().__init__(db, fetch_job, analyze_job, **options)
        self.broker = broker  # send(job_id), waiting() -> messages in the queue or None, health() -> dict
        self.heartbeat_s = heartbeat_s
        self._resent: dict[str, float] = {}  # running jobs sent again, when: once per five heartbeats at most

    def start(self) -> None:  # no pools here: the workers run the jobs; the supervisor expires and re-sends
        self._supervisor = threading.Thread(target=self._supervise, name="job-supervisor", daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                self.resend_lost()
            except Exception:
                log.exception("re-sending lost jobs failed; will try again")
            self._stopping.wait(self.heartbeat_s)
            if not self._stopping.is_set():
                self._supervise_once()

    def resend_lost(self) -> int:
        """Send again what the broker may have lost (a job sent twice still runs once):
        - jobs queued for more than five heartbeats, when the broker holds fewer messages than that (it restarted
          without them);
        - running jobs whose worker stopped beating five heartbeats ago (it died, and the broker lost its message
          too, or would hand it on only after the visibility timeout): a worker takes them over."""
        stale = format_time(datetime.now(timezone.utc) - timedelta(seconds=5 * self.heartbeat_s))
        waiting = self.broker.waiting()
        if waiting is None:
            return 0
        lost = [job for job in self.db.jobs_with_status("queued") if job["updated_at"] < stale]
        if len(lost) <= waiting:
            lost = []
        for job in lost:
            self.db.update_job(job["id"], only_if_status="queued")  # its clock restarts: not re-sent again at once
        now = time.monotonic()
        self._resent = {job_id: at for job_id, at in self._resent.items() if now - at < 5 * self.heartbeat_s}
        orphans = [job for job in self.db.jobs_with_status("running") if job["updated_at"] < stale and job["id"] not in self._resent]
        for job in [*lost, *orphans]:
            self.broker.send(job["id"])
        self._resent.update((job["id"], now) for job in orphans)
        if lost:
            log.warning("%d queued job(s) missing from the broker sent again", len(lost))
        if orphans:
            log.warning("%d running job(s) whose worker stopped beating sent again", len(orphans))
        return len(lost) + len(orphans)

    def recover(self) -> None:  # queued jobs wait in the broker; running ones belong to live or redelivered workers
        pass

    def _enqueue(self, job: dict) -> None:
        self.broker.send(job["id"])

    def queued_count(self) -> int:
        return self.db.count_jobs_by_status().get("queued", 0)

    def waiting_by_pool(self) -> dict[str, int]:
        return {"broker": self.queued_count()}

    def health(self) -> dict:
        database = self.db.check_writable()
        broker = self.broker.health()
        problems = [f"the database cannot be written: {database}"] if database else []
        problems += broker.get("problems", [])
        return {
            "ok": not problems,
            "problems": problems,
            "database": database or "ok",
            "unwritten_outcomes": len(self._unwritten),
            "pools": {"broker": {key: value for key, value in broker.items() if key != "problems"}},
        }

    # ----------------------------------------------------------------------------------- in the worker

    def run(self, job_id: str) -> str:
        """Run one job in this (worker) process: fetch when needed, analyse, record the outcome; what happened.

        A job is taken when it is queued, or when it is `running` but its heartbeat (`updated_at`, refreshed every
        `heartbeat_s` while a worker runs it) is older than three heartbeats: the worker that had it is gone. A job
        another worker is running, or that ended, is left alone: a message delivered twice runs its job once."""
        job = self._take(job_id)
        if job is None:
            return "skipped"
        if job["source_type"] == "url" and job["upload_path"] and not Path(job["upload_path"]).is_file():
            self.db.update_job(job_id, upload_path=None)  # fetched on another worker's host (it died): fetch again
            job["upload_path"] = None
        beating = threading.Event()
        heart = threading.Thread(target=self._beat, args=(job_id, beating), name=f"heartbeat-{job_id[:8]}", daemon=True)
        heart.start()
        try:
            if self._needs_fetch(job):
                outcome = self._attempt(job, self.fetch_job)
                if isinstance(outcome, Fetched):
                    self.db.update_job(job_id, only_if_status="running", stage="fetched", upload_path=str(outcome.path),
                                       fetch_json=json.dumps(outcome.fetch), **({"media_kind": outcome.media_kind} if outcome.media_kind else {}))  # fmt: skip
                    job = self.db.get_job(job_id)
                    outcome = self._attempt(job, self.analyze_job)
            else:
                outcome = self._attempt(job, self.analyze_job)
            if isinstance(outcome, Finished):
                self._finish(job_id, self._done(outcome))
            self._flush_unwritten()
        finally:
            beating.set()
            heart.join(timeout=5)
            self._progress.pop(job_id, None)
        return "ran"

    def _take(self, job_id: str) -> dict | None:
        job = self.db.get_job(job_id)
        if job is None or job["status"] in FINISHED:
            return None
        if job["status"] == "queued":
            return self._claim(job_id, "fetch" if self._needs_fetch(job) else "decode")
        stale = format_time(datetime.now(timezone.utc) - timedelta(seconds=3 * self.heartbeat_s))
        if job["updated_at"] >= stale:
            return None  # another worker runs it and is alive
        log.warning("job %s: its worker %s stopped beating; taking it over", job_id, job.get("worker"))
        if not self.db.update_job(job_id, only_if_status="running", only_if_updated=job["updated_at"], worker=self.identity):
            return None
        self.db.update_job(job_id, attempts=job["attempts"] + 1)
        return self.db.get_job(job_id)

    def _beat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_s):
            self._write_if_possible(job_id)

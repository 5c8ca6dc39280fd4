"""The job queue of `DEEPFAKE_QUEUE=celery` (`BrokerJobQueue`): jobs stored in the shared database, their ids sent
through the broker (server/celeryapp.py) to Celery workers, which run them with `run`."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .db import Database, format_time
from .jobqueue import JobQueue
from .jobs import FINISHED, AnalyzeJob, Fetched, FetchJob, Finished, Job

log = logging.getLogger(__name__)


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
        lost = [job for job in self._jobs_with_status("queued") if job.updated_at < stale]
        if len(lost) <= waiting:
            lost = []
        for job in lost:
            self.db.update_job(job.id, only_if_status="queued")  # its clock restarts: not re-sent again at once
        now = time.monotonic()
        self._resent = {job_id: at for job_id, at in self._resent.items() if now - at < 5 * self.heartbeat_s}
        orphans = [job for job in self._jobs_with_status("running") if job.updated_at < stale and job.id not in self._resent]
        for job in [*lost, *orphans]:
            self.broker.send(job.id)
        self._resent.update((job.id, now) for job in orphans)
        if lost:
            log.warning("%d queued job(s) missing from the broker sent again", len(lost))
        if orphans:
            log.warning("%d running job(s) whose worker stopped beating sent again", len(orphans))
        return len(lost) + len(orphans)

    def recover(self) -> None:  # queued jobs wait in the broker; running ones belong to live or redelivered workers
        pass

    def _enqueue(self, job: Job) -> None:
        self.broker.send(job.id)

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
        if job.source_type == "url" and job.upload_path and not Path(job.upload_path).is_file():
            self.db.update_job(job_id, upload_path=None)  # fetched on another worker's host (it died): fetch again
            job.upload_path = None
        beating = threading.Event()
        heart = threading.Thread(target=self._beat, args=(job_id, beating), name=f"heartbeat-{job_id[:8]}", daemon=True)
        heart.start()
        try:
            if job.needs_fetch:
                outcome = self._fetch(job)  # fetched, the job goes on running here
                if isinstance(outcome, Fetched):
                    job = self._job(job_id)
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

    def _take(self, job_id: str) -> Job | None:
        job = self._job(job_id)
        if job is None or job.status in FINISHED:
            return None
        if job.status == "queued":
            return self._claim(job_id, "fetch" if job.needs_fetch else "decode")
        stale = format_time(datetime.now(timezone.utc) - timedelta(seconds=3 * self.heartbeat_s))
        if job.updated_at >= stale:
            return None  # another worker runs it and is alive
        log.warning("job %s: its worker %s stopped beating; taking it over", job_id, job.worker)
        if not self.db.update_job(job_id, only_if_status="running", only_if_updated=job.updated_at, worker=self.identity):
            return None
        self.db.update_job(job_id, attempts=job.attempts + 1)
        return self._job(job_id)

    def _beat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_s):
            self._write_if_possible(job_id)

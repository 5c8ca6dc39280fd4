"""Prometheus metrics at `GET /metrics` (prometheus_client's text format), for operators' dashboards and alerts.

    deepfake_jobs{status}                      jobs in the database by status (queued, running, done, failed)
    deepfake_queue_length{pool}                jobs waiting for this process's fetch and analysis workers
    deepfake_job_duration_seconds{kind,status} from submission to outcome, by source (url, upload) and outcome
    deepfake_stage_duration_seconds{stage}     time spent in each stage of an analysis (fetch, decode, faces, model)
    deepfake_analyses_total{verdict}           analyses this process made, by verdict

The job counts come from the database at each scrape, so every API process reports the same; the histograms and
counters are this process's own (a Prometheus server sums them over processes). Each app has its own registry.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from detector.report import PROGRESS_STAGES, Report

from .jobs import Job

JOB_SECONDS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)
STAGE_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
STATUSES = ("queued", "running", "done", "failed")


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, db, jobs):
        self.registry = CollectorRegistry(auto_describe=True)
        self.job_seconds = Histogram(
            "deepfake_job_duration_seconds", "Submission to outcome of a job", ["kind", "status"], buckets=JOB_SECONDS,
            registry=self.registry,
        )  # fmt: skip
        self.stage_seconds = Histogram(
            "deepfake_stage_duration_seconds", "Time in each stage of an analysis", ["stage"], buckets=STAGE_SECONDS,
            registry=self.registry,
        )  # fmt: skip
        self.analyses = Counter("deepfake_analyses", "Analyses made by this process", ["verdict"], registry=self.registry)
        self.registry.register(_FromDatabase(db, jobs))

    def job_finished(self, job: Job, status: str, finished_at: datetime) -> None:
        started = datetime.fromisoformat(job.created_at.replace("Z", "+00:00"))
        self.job_seconds.labels(job.source_type, status).observe(max(0.0, (finished_at - started).total_seconds()))

    def analysed(self, report: Report) -> None:
        self.analyses.labels(report.verdict).inc()
        for stage in PROGRESS_STAGES:
            if report.timings_ms.get(stage):  # a stage that did not happen (no fetch for an upload) is not a sample
                self.stage_seconds.labels(stage).observe(report.timings_ms[stage] / 1000.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _FromDatabase:
    """Read at each scrape: jobs by status from the database, and this process's queues."""

    def __init__(self, db, jobs):
        self.db, self.jobs = db, jobs

    def describe(self):
        return []

    def collect(self):
        counts = dict.fromkeys(STATUSES, 0) | self.db.count_jobs_by_status()
        by_status = GaugeMetricFamily("deepfake_jobs", "Jobs in the database by status", labels=["status"])
        for status, n in sorted(counts.items()):
            by_status.add_metric([status], n)
        yield by_status
        queues = GaugeMetricFamily("deepfake_queue_length", "Jobs waiting for this process's workers", labels=["pool"])
        for pool, waiting in self.jobs.waiting_by_pool().items():
            queues.add_metric([pool], waiting)
        yield queues

"""`DEEPFAKE_QUEUE=celery`: analysis jobs go through a broker (Redis, `DEEPFAKE_BROKER_URL`) to Celery workers.

    python -m server worker            one worker process: loads the model once, runs one job at a time

API processes (`python -m server`, gunicorn) store each job in the shared database and send its id; a worker takes
the job from the database, fetches and analyses, and writes the outcome there, where every API process reads it.
The worker runs Celery's `solo` pool (the job runs in the process that loaded the model), asks for one message at
a time (prefetch 1) and acknowledges it only when the job has ended (`acks_late`), so the message of a worker that
dies mid-job goes back to the queue after `DEEPFAKE_BROKER_VISIBILITY_S` and another worker runs the job; the
database's conditional updates make sure a job that is delivered twice runs once (server/brokerqueue.py, `run`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from celery import Celery

from .config import ServerSettings

QUEUE = "deepfake-jobs"
TASK = "deepfake.run_job"
log = logging.getLogger(__name__)


def visibility_s(settings: ServerSettings) -> float:
    """How long a taken message stays invisible before the broker gives it to another worker: longer than any
    job may run, unless set."""
    return float(settings.broker_visibility_s or settings.job_timeout_s + settings.fetch_timeout_s + 60)


def make_celery(settings: ServerSettings) -> Celery:
    if not settings.broker_url:
        raise ValueError("DEEPFAKE_QUEUE=celery needs DEEPFAKE_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    app = Celery("deepfake", broker=settings.broker_url, set_as_current=False)
    sweep = max(1, min(10, int(visibility_s(settings) / 4)))
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # outcomes live in the database
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a broker restart is waited out, not fatal
        broker_transport_options={
            "visibility_timeout": visibility_s(settings),
            "unacked_restore_interval": sweep,  # look for messages of lost workers this often
            "unacked_restore_throttle": 1,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        },
    )
    return app


class Broker:
    """The API side of the broker: send job ids, count what waits, and say whether it and the workers answer."""

    def __init__(self, settings: ServerSettings):
        self.app = make_celery(settings)

    def send(self, job_id: str) -> None:
        # kombu retries a publish while the broker is briefly unreachable; a job whose message is lost anyway stays
        # queued in the database and is sent again (server/brokerqueue.py, resend_lost)
        self.app.send_task(TASK, args=[job_id], queue=QUEUE, retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2})

    def waiting(self) -> int | None:
        """Messages waiting in the queue (None when the broker cannot be asked)."""
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
                with connection.channel() as channel:
                    return int(channel.client.llen(QUEUE))
        except Exception:
            return None

    def health(self) -> dict:
        """For readiness: whether the broker answers, how many messages wait in it, how many workers answer."""
        waiting = self.waiting()
        if waiting is None:
            return {"reachable": False, "problems": ["the broker cannot be reached"]}
        replies = self.app.control.ping(timeout=1.0) or []
        problems = [] if replies else ["no worker answers: start python -m server worker"]
        return {"reachable": True, "waiting": waiting, "workers": len(replies), "problems": problems}


def run_worker(overrides: Mapping[str, Any] | None = None) -> int:
    """`python -m server worker`: the server's services (server/services.py: no Flask app, no HTTP), and a Celery
    worker on them; `overrides`: settings over the environment's, as config keys."""
    from .config import load_settings
    from .services import build_services

    settings = load_settings(os.environ, {**(overrides or {}), "WORKER_PROCESS": True})
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings.check()
    services = build_services(settings)
    services.start()
    celery = make_celery(settings)

    @celery.task(name=TASK, acks_late=True)
    def run_job(job_id: str) -> str:
        return services.analyses.jobs.run(job_id)

    services.models.get()  # load the model before taking any job
    name = f"deepfake-worker-{os.getpid()}@{socket.gethostname()}"
    print(f"deepfake checker worker {name} taking jobs from {celery.conf.broker_url}", flush=True)
    try:
        celery.worker_main(
            ["worker", "--pool=solo", "--concurrency=1", f"--queues={QUEUE}", f"--hostname={name}", "--without-gossip",
             "--without-mingle", f"--loglevel={settings.log_level}"]
        )  # fmt: skip
    finally:
        services.stop()
    return 0

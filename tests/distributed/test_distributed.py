"""DEEPFAKE_QUEUE=celery on real parts: Debian's Redis as the broker and PostgreSQL as the database (both started on
127.0.0.1 by the fixtures), API processes that only accept and answer, and `python -m server worker` processes
that run the jobs. Nothing is lost when a worker is killed with -9 or Redis restarts, and each job runs once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from tests.conftest import ROOT
from tests.integration.test_server_process import ServerProcess, server_env
from tests.support.waiting import wait_for

if TYPE_CHECKING:
    from server.records import Job

pytestmark = pytest.mark.slow


class Worker:
    hostname = __import__("socket").gethostname()

    def __init__(self, env: dict, log: Path):
        self.log = log
        self.handle = open(log, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "server", "worker"], cwd=ROOT, env=env, stdout=self.handle, stderr=subprocess.STDOUT)

    def wait_started(self, timeout_s: float = 120) -> None:
        """Until the worker has loaded the model and starts its Celery loop (readiness then counts it)."""
        deadline = time.monotonic() + timeout_s
        while "taking jobs" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the worker did not start:\n" + self.log.read_text()
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.handle.close()


@pytest.fixture
def cluster(tmp_path, postgres, redis_server):
    """(environment of the shared settings, start_api, start_worker): every process started is stopped at the end."""
    settings = {
        "QUEUE": "celery",
        "SHARED_DATA_DIR": 1,  # one host here (the S3 test gives each process its own folder)
        "BROKER_URL": redis_server.url,
        "DATABASE_URL": postgres.new_database(),
        "ALLOW_PRIVATE_URLS": 1,
        "HEATMAPS": 0,
        "BROKER_VISIBILITY_S": 8,  # a killed worker's job is redelivered after this
        "JOB_HEARTBEAT_S": 1,
        "THREADS": 1,
        "RATE_LIMIT": "100000/minute",  # one test client sends everything
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "CLIENT_URL_JOBS": 64,
        "QUEUE_SIZE": 256,
    }
    env = server_env(tmp_path / "data", **settings)  # one data folder: uploads and artefacts on this host
    started: list = []

    def start_api(name: str, **settings) -> ServerProcess:
        mine = {**env, **{f"DEEPFAKE_{key}": str(value) for key, value in settings.items()}}
        api = ServerProcess([sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0"], mine, tmp_path / f"{name}.log")
        started.append(api)
        return api

    def start_worker(name: str, **settings) -> Worker:
        worker = Worker({**env, **{f"DEEPFAKE_{key}": str(value) for key, value in settings.items()}}, tmp_path / f"{name}.log")
        started.append(worker)
        return worker

    try:
        yield env, start_api, start_worker
    finally:
        for process in started:
            process.stop()


def wait_ready(api: ServerProcess, workers: int = 1, timeout_s: float = 120) -> dict:
    """Until the API is ready and sees `workers` workers answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        ready = requests.get(api.url("/readyz"), timeout=10)
        if ready.status_code == 200 and ready.json()["jobs"]["broker"]["workers"] >= workers:
            return ready.json()
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.3)


def test_two_apis_and_two_workers_run_200_jobs_each_once(cluster, face_photo, fake_video, media_server, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    env, start_api, start_worker = cluster
    apis = [start_api("api-a"), start_api("api-b")]
    workers = [start_worker("worker-a"), start_worker("worker-b")]
    for worker in workers:
        worker.wait_started()
    ready = wait_ready(apis[0], workers=2)
    assert ready["queue"] == "celery" and ready["jobs"]["broker"]["workers"] == 2

    photo = np.asarray(Image.open(face_photo).convert("RGB"))
    requests_ = []  # 150 distinct images (one pixel differs), 25 video uploads and 25 links (distinct frame counts)
    for n in range(150):
        variant = photo.copy()
        variant[n // photo.shape[1], n % photo.shape[1]] ^= 1
        Image.fromarray(variant).save(tmp_path / f"photo-{n}.png")
        requests_.append(("file", tmp_path / f"photo-{n}.png", 1))
    requests_ += [("file", fake_video, n) for n in range(1, 26)]
    requests_ += [("url", media_server.url("/files/video.mp4"), n) for n in range(26, 51)]  # not cache hits of those

    def submit(n_request):
        n, (kind, what, frames) = n_request
        api = apis[n % 2]  # alternately to both APIs
        if kind == "url":
            response = requests.post(api.url("/api/v1/analyze"), json={"url": what, "frames": frames}, timeout=120)
        else:
            with open(what, "rb") as handle:
                response = requests.post(api.url("/api/v1/analyze"), files={"file": handle}, data={"frames": str(frames)}, timeout=120)
        assert response.status_code in (200, 202), response.text
        body = response.json()
        if "job_id" not in body:
            return body["id"]
        other = apis[(n + 1) % 2]  # the other API answers the long-poll: the state is in the database
        job = finish(other, body["job_id"])
        assert job["status"] == "done", job
        return job["id"]

    with ThreadPoolExecutor(16) as pool:  # 16 clients at once
        finished = list(pool.map(submit, enumerate(requests_)))
    assert len(set(finished)) == len(finished) == 200  # 200 analyses, none shared, none twice
    assert requests.get(apis[0].url("/api/v1/analyses"), timeout=30).json()["total"] == 200
    from server.db import Database

    jobs = Database(env["DEEPFAKE_DATABASE_URL"]).jobs_with_status("done")
    assert len(jobs) == 200 and {job.attempts for job in jobs} == {1}  # each run once
    assert {job.worker for job in jobs} == {f"{worker.hostname}:{worker.process.pid}" for worker in workers}


def job_row(env: dict, job_id: str) -> Job:
    from server.db import Database

    return Database(env["DEEPFAKE_DATABASE_URL"]).get_job(job_id)


def finish(api: ServerProcess, job_id: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = requests.get(api.url(f"/api/v1/jobs/{job_id}?wait=20"), timeout=60).json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job


def test_a_job_of_a_worker_killed_with_9_is_finished_by_the_other(cluster, media_root, redis_server):
    from tests.support.mediaserver import MediaServer

    env, start_api, start_worker = cluster
    api = start_api("api")
    workers = {}
    for name in ("worker-a", "worker-b"):
        worker = start_worker(name)
        worker.wait_started()
        workers[worker.process.pid] = worker
    wait_ready(api, workers=2)
    # a source that sends the video 64 kB every quarter second: about 4 s in the fetch, time enough to kill its worker
    with MediaServer(media_root, slow_chunk=65536, slow_pause_s=0.25) as slow:
        job_id = requests.post(api.url("/api/v1/analyze"), json={"url": slow.url("/slow/video.mp4")}, timeout=60).json()["job_id"]
        running = wait_for(lambda: (row := job_row(env, job_id)).status == "running" and row.worker and row, 60, "the job's start")
        victim = int(running.worker.rsplit(":", 1)[1])
        os.kill(victim, signal.SIGKILL)
        workers[victim].process.wait(timeout=10)
        redis_server.stop()  # and the broker restarts empty: the unacknowledged message is gone too
        redis_server.start()
        job = finish(api, job_id)
    assert job["status"] == "done", job
    row = job_row(env, job_id)
    assert row.attempts == 2 and int(row.worker.rsplit(":", 1)[1]) != victim
    assert requests.get(api.url("/api/v1/analyses"), timeout=30).json()["total"] == 1  # one analysis, not two
    assert "running job(s) whose worker stopped beating sent again" in "".join(
        Path(process.log).read_text() for process in [api, *workers.values()]
    )


def test_redis_restarting_mid_run_loses_no_job_and_clients_poll_through_an_api_restart(cluster, redis_server, fake_video):
    env, start_api, start_worker = cluster
    api = first = start_api("api")
    wait_until_broker = time.monotonic() + 60
    while requests.get(api.url("/readyz"), timeout=30).json().get("jobs", {}).get("broker", {}).get("reachable") is not True:
        assert time.monotonic() < wait_until_broker
        time.sleep(0.3)
    jobs = []
    for n in range(6):  # no worker yet: every job waits in Redis
        with open(fake_video, "rb") as handle:
            jobs.append(requests.post(api.url("/api/v1/analyze"), files={"file": handle}, data={"frames": str(8 + n)}, timeout=60).json()["job_id"])
    assert requests.get(api.url("/readyz"), timeout=30).json()["jobs"]["broker"]["waiting"] == 6
    redis_server.stop()  # the broker goes away mid-run, and its waiting messages with it (no persistence)
    ready = requests.get(api.url("/readyz"), timeout=30)
    assert ready.status_code == 503 and "broker" in ready.json()["error"]["message"]
    redis_server.start()
    worker = start_worker("worker")
    worker.wait_started()
    api.stop()  # the API restarts too, while clients poll
    api = start_api("api-again")
    for job_id in jobs:  # the jobs Redis lost are sent again from the database
        assert finish(api, job_id)["status"] == "done"
    assert requests.get(api.url("/api/v1/analyses"), timeout=30).json()["total"] == 6
    logs = "".join(Path(process.log).read_text() for process in (first, api, worker))  # whichever process saw it first
    assert "missing from the broker sent again" in logs


def test_a_worker_told_to_stop_finishes_its_job_first(cluster, media_root):
    from tests.support.mediaserver import MediaServer

    env, start_api, start_worker = cluster
    api = start_api("api")
    worker = start_worker("worker")
    worker.wait_started()
    wait_ready(api)
    with MediaServer(media_root, slow_chunk=65536, slow_pause_s=0.25) as slow:  # about 4 s in the fetch
        job_id = requests.post(api.url("/api/v1/analyze"), json={"url": slow.url("/slow/video.mp4")}, timeout=60).json()["job_id"]
        wait_for(lambda: job_row(env, job_id).status == "running", 60, "the job's start")
        worker.process.send_signal(signal.SIGTERM)  # what a deployment sends to stop a worker: a warm shutdown
        assert worker.process.wait(timeout=120) == 0
    row = job_row(env, job_id)
    assert row.status == "done" and row.attempts == 1, row


def test_with_s3_the_api_and_the_worker_share_no_folder(cluster, s3_server, tmp_path, face_photo, fake_video, media_server):
    settings, client = s3_server
    env, start_api, start_worker = cluster
    hosts = {name: tmp_path / f"host-{name}" for name in ("api", "worker")}  # as if on two machines
    worker = start_worker("worker", SHARED_DATA_DIR=0, DATA_DIR=hosts["worker"], **settings)
    worker.wait_started()
    api = start_api("api", SHARED_DATA_DIR=0, DATA_DIR=hosts["api"], **settings)
    wait_ready(api)
    ids = []
    for media in (face_photo, fake_video):
        with open(media, "rb") as handle:
            body = requests.post(api.url("/api/v1/analyze"), files={"file": handle}, data={"frames": "4"}, timeout=60).json()
        ids.append(body["id"] if "id" in body else finish(api, body["job_id"])["id"])
    link = requests.post(api.url("/api/v1/analyze"), json={"url": media_server.url("/files/video.mp4"), "frames": 6}, timeout=60).json()
    ids.append(finish(api, link["job_id"])["id"])
    for analysis_id in ids:  # the report and its pictures, written by the worker, served by the API from the bucket
        detail = requests.get(api.url(f"/api/v1/analyses/{analysis_id}"), timeout=30).json()
        assert detail["report"]["verdict"] in ("real", "fake", "uncertain")
        assert requests.get(detail["artefacts"][0]["url"], timeout=30).status_code == 200
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=settings["S3_BUCKET"]).get("Contents", [])]
    assert not [key for key in keys if "/uploads/" in key or key.startswith("uploads/")]  # uploads removed once analysed
    assert not list((hosts["api"] / "uploads").rglob("*.*")) and not list((hosts["worker"] / "uploads").rglob("*.*"))
    assert not (hosts["api"] / "artefacts").exists() and not (hosts["worker"] / "artefacts").exists()


def test_celery_without_s3_or_a_shared_folder_refuses_to_start(tmp_path, redis_server):
    env = server_env(tmp_path / "data", QUEUE="celery", BROKER_URL=redis_server.url)
    result = subprocess.run([sys.executable, "-m", "server", "--port", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "DEEPFAKE_S3_BUCKET" in result.stderr and "Traceback" not in result.stderr

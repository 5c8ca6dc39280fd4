"""The cost of growing: jobs per second and job latency, one process against API + Celery workers, on this machine.

    python -m bench --only scale

Four set-ups, each on its own new data folder and database, measured the same way: 16 clients at once upload
`jobs` distinct copies of the 15-s FaceForensics++ clip (remuxed with a different title, so the content cache never
answers; 8 key frames each) and long-poll each job to its end.
- local-1, local-2: `python -m server` alone (the default), with 1 and 2 analysis threads (DEEPFAKE_WORKERS);
- celery-1, celery-2: one API process, Debian's Redis and PostgreSQL (started on 127.0.0.1 as the tests start
  them), and 1 or 2 `python -m server worker` processes.
Latency is from the upload to the answer that says `done`; jobs/s is jobs over the wall time of the whole batch.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 8


def variants(video: Path, folder: Path, count: int) -> list[Path]:
    out = []
    for n in range(count):
        target = folder / f"clip-{n:03d}.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(video), "-c", "copy", "-metadata", f"title=bench {n}",
                        str(target)], check=True)  # fmt: skip
        out.append(target)
    return out


def _env(data: Path, **settings) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPFAKE_") or k == "DEEPFAKE_SHARED_DIR"}
    env.update({"HF_HUB_OFFLINE": "1", "DEEPFAKE_DATA_DIR": str(data), "DEEPFAKE_LOG_LEVEL": "WARNING",
                "DEEPFAKE_RATE_LIMIT": "100000/minute", "DEEPFAKE_RATE_LIMIT_DEFAULT": "100000/minute",
                "DEEPFAKE_QUEUE_SIZE": "1000", "DEEPFAKE_CLIENT_WAITING": "64", "DEEPFAKE_WAITING_REQUESTS": "64"})  # fmt: skip
    env.update({f"DEEPFAKE_{key}": str(value) for key, value in settings.items()})
    return env


def _start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _api(env: dict, folder: Path) -> tuple[subprocess.Popen, str]:
    from bench.run import free_port

    port = free_port()
    process = _start([sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)], env, folder / "api.log")
    return process, f"http://127.0.0.1:{port}"


def _ready(base: str, process: subprocess.Popen, workers: int | None, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the API process exited")
        try:
            ready = requests.get(base + "/readyz", timeout=5)
            if ready.status_code == 200 and (workers is None or ready.json()["jobs"]["broker"]["workers"] >= workers):
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("the set-up did not become ready")


def _batch(base: str, clips: list[Path], clients: int) -> dict:
    def one(clip: Path) -> float:
        started = time.perf_counter()
        with open(clip, "rb") as handle:
            body = requests.post(base + "/api/v1/analyze", files={"file": handle}, data={"frames": str(FRAMES)}, timeout=600).json()
        while body.get("status") not in ("done", "failed"):
            body = requests.get(f"{base}/api/v1/jobs/{body['job_id']}?wait=30", timeout=120).json()
        if body["status"] != "done":
            raise RuntimeError(f"a job failed: {body}")
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = sorted(pool.map(one, clips))
    wall = time.perf_counter() - started
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    return {"jobs_per_s": round(len(clips) / wall, 2), "p50_s": round(statistics.median(latencies), 2), "p95_s": round(p95, 2)}


def measure(video: Path, jobs: int = 48, clients: int = 16) -> dict:
    from tests.support.postgres import PostgresServer
    from tests.support.redisserver import RedisServer

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp = Path(tmp)
        clips = variants(video, tmp, jobs * 4)  # distinct content for every job of every set-up
        batches = [clips[n * jobs : (n + 1) * jobs] for n in range(4)]
        for n, workers in enumerate((1, 2)):  # the default: one process
            folder = tmp / f"local-{workers}"
            folder.mkdir()
            api, base = _api(_env(folder / "data", WORKERS=workers), folder)
            try:
                _ready(base, api, None)
                results[f"scale_local_{workers}"] = _batch(base, batches[n], clients)
            finally:
                api.terminate()
                api.wait(timeout=60)
        with PostgresServer() as postgres, RedisServer() as redis:  # stopped also when the other fails to start
            for n, workers in enumerate((1, 2), start=2):
                folder = tmp / f"celery-{workers}"
                folder.mkdir()
                env = _env(folder / "data", QUEUE="celery", SHARED_DATA_DIR=1, BROKER_URL=redis.url, DATABASE_URL=postgres.new_database(),
                           THREADS=max(1, (os.cpu_count() or 1) // workers))  # fmt: skip
                started = [_start([sys.executable, "-m", "server", "worker"], env, folder / f"worker-{k}.log") for k in range(workers)]
                api, base = _api(env, folder)
                started.append(api)
                try:
                    _ready(base, api, workers)
                    results[f"scale_celery_{workers}"] = _batch(base, batches[n], clients)
                finally:
                    for process in started:
                        process.terminate()
                    for process in started:
                        process.wait(timeout=60)
    return results

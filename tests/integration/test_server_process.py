"""The server as people run it: `python -m server`, gunicorn, the API key CLI, and a crash and restart.

Each test starts real server processes on 127.0.0.1 with their own data folder; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.integration.test_analyze import check_report_contract

VENV_BIN = Path(sys.executable).parent


def server_env(data_dir: Path, **settings) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPFAKE_") or k == "DEEPFAKE_SHARED_DIR"}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "DEEPFAKE_DATA_DIR": str(data_dir),
            "DEEPFAKE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "DEEPFAKE_MODEL": "default",  # the fast view: these processes test serving (the extension's test runs the pair)
        }
    )
    env.update({f"DEEPFAKE_{key}": str(value) for key, value in settings.items()})
    return env


class ServerProcess:
    """A server started as a command; its address is read from what it prints when it listens."""

    def __init__(self, command: list[str], env: dict, log: Path):
        self.log = log
        self.handle = open(log, "w")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.handle, stderr=subprocess.STDOUT)
        try:
            self.base = self._address()
        except BaseException:  # no object for the caller to stop: not left running
            self.stop()
            raise

    def _address(self, timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        pattern = re.compile(r"(?:serving on|Listening at:) (http://(?:127\.0\.0\.1|\[::1\]):\d+)")
        while time.monotonic() < deadline:
            found = pattern.search(self.log.read_text())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log.read_text()}")
            time.sleep(0.1)
        raise AssertionError(f"the server did not start:\n{self.log.read_text()}")

    def url(self, path: str) -> str:
        return self.base + path

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if requests.get(self.url("/readyz"), timeout=10).status_code == 200:
                return
            time.sleep(0.2)
        raise AssertionError("the model did not load")

    def job(self, job_id: str) -> dict:
        return requests.get(self.url(f"/api/v1/jobs/{job_id}"), timeout=30).json()

    def wait_job(self, job_id: str, statuses: tuple[str, ...], timeout_s: float = 180) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} never reached {statuses}: {job}")

    def kill(self) -> None:
        """Crash: no chance to clean up."""
        self.process.kill()
        self.process.wait(timeout=30)
        self.handle.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()
        return self.process.returncode


@pytest.fixture
def processes():
    started: list[ServerProcess] = []

    def start(command: list[str], env: dict, log: Path) -> ServerProcess:
        server = ServerProcess(command, env, log)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


PYTHON_SERVER = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0"]


def run_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_python_m_server_analyses_a_video_url_like_the_readme_says(processes, tmp_path, media_server):
    server = processes(PYTHON_SERVER, server_env(tmp_path / "data", ALLOW_PRIVATE_URLS=1), tmp_path / "server.log")
    # The README's example: POST a video URL served from 127.0.0.1 (the request waits for the fetch and the model).
    response = requests.post(
        server.url("/api/v1/analyze?wait=120"), json={"url": media_server.url("/files/video.mp4")}, timeout=180
    )
    assert response.status_code == 200, response.text
    body = response.json()
    check_report_contract(body["report"])
    assert body["report"]["media"]["kind"] == "video" and body["report_url"].startswith(server.base)
    assert requests.get(body["report_url"], timeout=30).status_code == 200
    assert server.stop() == 0


def assert_json_error(response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["message"]


@pytest.mark.slow
def test_requests_over_the_http_servers_own_limits_get_json_errors(processes, tmp_path):
    gunicorn = [str(VENV_BIN / "gunicorn"), "server:create_app()", "-c", "server/gunicorn.conf.py", "-b", "127.0.0.1:0"]
    development = processes(PYTHON_SERVER, server_env(tmp_path / "a"), tmp_path / "server.log")
    production = processes(gunicorn, server_env(tmp_path / "b"), tmp_path / "gunicorn.log")
    # gunicorn: request line up to 8190 bytes, 100 headers of up to 8190 bytes; werkzeug: 65536, 100 headers
    for server, line in ((production, 9000), (development, 70000)):
        assert_json_error(requests.get(server.url("/api/v1/analyses?q=" + "a" * line), timeout=30), 414)
        too_many = {f"X-Header-{n}": "x" for n in range(120)}
        assert_json_error(requests.get(server.url("/healthz"), headers=too_many, timeout=30), 431)
    assert_json_error(requests.get(production.url("/healthz"), headers={"X-Big": "a" * 9000}, timeout=30), 431)


@pytest.mark.slow
def test_ipv6_addresses_can_be_bound(processes, tmp_path):
    env = server_env(tmp_path / "data", HOST="::1", PORT=0)
    gunicorn = processes([str(VENV_BIN / "gunicorn"), "server:create_app()", "-c", "server/gunicorn.conf.py"], env, tmp_path / "g.log")
    assert gunicorn.base.startswith("http://[::1]:")
    assert requests.get(gunicorn.url("/healthz"), timeout=30).json() == {"status": "ok"}
    development = processes([sys.executable, "-m", "server"], env, tmp_path / "server.log")
    assert development.base.startswith("http://[::1]:")
    assert requests.get(development.url("/healthz"), timeout=30).json() == {"status": "ok"}


def test_refuses_to_listen_beyond_loopback_without_api_keys(tmp_path):
    env = server_env(tmp_path / "data")
    result = run_cli(env, "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2 and "no API key exists" in result.stderr


@pytest.mark.slow
def test_gunicorn_production_entry(processes, tmp_path, face_photo):
    gunicorn = [str(VENV_BIN / "gunicorn"), "server:create_app()", "-c", "server/gunicorn.conf.py", "-b", "127.0.0.1:0"]
    server = processes(gunicorn, server_env(tmp_path / "data"), tmp_path / "gunicorn.log")
    server.wait_ready()
    with open(face_photo, "rb") as handle:
        response = requests.post(server.url("/api/v1/analyze"), files={"file": handle}, timeout=120)
    assert response.status_code == 200, response.text
    check_report_contract(response.json()["report"])
    assert server.stop() == 0
    refused = subprocess.run(
        [*gunicorn[:-2], "-b", "0.0.0.0:0"],
        cwd=ROOT,
        env=server_env(tmp_path / "other"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "no API key exists" in refused.stderr


def test_api_key_cli(tmp_path):
    env = server_env(tmp_path / "data")
    created = run_cli(env, "keys", "create", "browser-extension")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("dfk_") and len(key) > 40
    listed = run_cli(env, "keys", "list")
    assert "browser-extension" in listed.stdout and key not in listed.stdout and "active" in listed.stdout
    key_id = listed.stdout.split()[0]
    assert key not in (tmp_path / "data" / "deepfake.sqlite3").read_bytes().decode("latin-1")  # stored hashed
    assert run_cli(env, "keys", "revoke", key_id).returncode == 0
    assert "revoked" in run_cli(env, "keys", "list").stdout
    assert run_cli(env, "keys", "revoke", key_id).returncode == 1


@pytest.mark.slow
def test_api_keys_protect_a_real_server_process(processes, tmp_path):
    env = server_env(tmp_path / "data")
    key = run_cli(env, "keys", "create", "ops").stdout.strip()
    server = processes(PYTHON_SERVER, env, tmp_path / "server.log")
    assert requests.get(server.url("/api/v1/analyses"), timeout=30).status_code == 401
    assert requests.get(server.url("/api/v1/analyses"), headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code == 200


@pytest.mark.slow
def test_jobs_survive_a_crash_and_restart(processes, tmp_path, media_server, full_frame, fake_video):
    settings = {"WORKERS": 1, "FETCH_WORKERS": 1, "CLIENT_FETCHES": 1, "HEATMAPS": 1, "MAX_WAIT_S": 0.5}
    env = server_env(tmp_path / "data", ALLOW_PRIVATE_URLS=1, **settings)
    first = processes(PYTHON_SERVER, env, tmp_path / "first.log")
    first.wait_ready()

    def upload(path, **form):
        with open(path, "rb") as handle:
            return requests.post(first.url("/api/v1/analyze"), files={"file": handle}, data=form, timeout=60)

    # A slow source keeps the only fetch worker busy and a long analysis the only analysis worker; a URL and an
    # upload wait behind them.
    fetching = requests.post(first.url("/api/v1/analyze"), json={"url": media_server.url("/slow/video.mp4")}, timeout=60).json()
    first.wait_job(fetching["job_id"], ("running",))
    analysing = upload(fake_video, frames="64").json()
    first.wait_job(analysing["job_id"], ("running",))
    queued_url = requests.post(first.url("/api/v1/analyze"), json={"url": media_server.url("/files/photo.jpg")}, timeout=60)
    queued_upload = upload(full_frame)
    assert queued_url.status_code == queued_upload.status_code == 202
    for accepted in (queued_url, queued_upload):
        assert first.job(accepted.json()["job_id"])["status"] == "queued"
    first.kill()

    second = processes(PYTHON_SERVER, env, tmp_path / "second.log")
    for job_id in (fetching["job_id"], analysing["job_id"]):
        interrupted = second.job(job_id)
        assert interrupted["status"] == "failed" and interrupted["retryable"] is True
        assert interrupted["error"]["code"] == "interrupted"
    for accepted in (queued_url, queued_upload):
        done = second.wait_job(accepted.json()["job_id"], ("done", "failed"))
        assert done["status"] == "done", done
        check_report_contract(done["report"])
        assert done["report"]["media"]["kind"] == "image"
    # The interrupted upload was kept for its retry, which finishes it; then nothing is left in the uploads folder.
    assert requests.post(second.url(f"/api/v1/jobs/{analysing['job_id']}/retry"), timeout=30).status_code == 202
    retried = second.wait_job(analysing["job_id"], ("done", "failed"))
    assert retried["status"] == "done" and retried["report"]["media"]["kind"] == "video", retried
    assert not any((tmp_path / "data" / "uploads").iterdir())
    retried = requests.post(second.url(f"/api/v1/jobs/{fetching['job_id']}/retry"), timeout=30)
    assert retried.status_code == 202 and retried.json()["status"] in ("queued", "running")

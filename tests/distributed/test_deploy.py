"""deploy/compose.yaml and deploy/Dockerfile: no container engine runs here, so the compose file's API and worker
services are run as processes, with their own commands and environments, against real parts on 127.0.0.1
(Debian's Redis and PostgreSQL, moto's S3 server standing in for MinIO), as README "Deploying" tells an operator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import ROOT, shared_file
from tests.distributed.test_distributed import Worker, wait_ready
from tests.integration.test_server_process import VENV_BIN, ServerProcess, server_env
from tests.support.documentation import documented_variables

COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
CHECKER_SERVICES = ("api-1", "api-2", "worker-1", "worker-2")


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def interpolate(value) -> str:
    """Compose's `${NAME:-default}` with nothing set, and `$$` for a literal dollar."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value)).replace("$$", "$")


def test_compose_file_runs_the_documented_topology_with_known_settings():
    from detector.settings import CoreSettings, environment
    from server.config import ENVIRONMENT

    found = services()
    assert {"redis", "postgres", "minio", "minio-bucket", *CHECKER_SERVICES} <= set(found)
    known = set(ENVIRONMENT) | set(environment(CoreSettings)) | {"DEEPFAKE_HTTP_THREADS"}
    for name in CHECKER_SERVICES:
        service = found[name]
        unknown = sorted(key for key in service["environment"] if key.startswith("DEEPFAKE_") and key not in known)
        assert not unknown, f"{name} sets variables the code does not read: {unknown}"
        assert service["environment"]["DEEPFAKE_QUEUE"] == "celery"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert [found[name]["command"][0] for name in CHECKER_SERVICES] == ["gunicorn", "gunicorn", "python", "python"]
    for name, service in found.items():  # images pinned, so that a deployment does not change under the operator
        if "image" in service and "build" not in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name
    # The bucket the workers write to is the one the one-shot service creates.
    bucket = found["api-1"]["environment"]["DEEPFAKE_S3_BUCKET"]
    assert f"store/{bucket}" in " ".join(found["minio-bucket"]["command"])
    # The image holds every package the project installs, and runs the API by default.
    copied = set(re.findall(r"^COPY (\w+) \1$", DOCKERFILE.read_text(), re.M))
    assert copied == {"detector", "server", "gradio_demo", "model_hub"}
    assert '["gunicorn", "server:create_app()", "-c", "server/gunicorn.conf.py"]' in DOCKERFILE.read_text()
    # README "Deploying" names only variables the code reads.
    readme = documented_variables((ROOT / "README.md").read_text(), "### Deploying on several machines", "## Gradio demo")
    assert readme and readme <= known, sorted(readme - known)


def here(service: dict, redis_url: str, database_url: str, s3_endpoint: str, data_dir: Path) -> dict:
    """A compose service's environment with the containers' host names pointed at the servers on 127.0.0.1."""
    env = server_env(data_dir)
    redis_host = redis_url.removeprefix("redis://").split("/")[0]
    for key, value in service["environment"].items():
        value = interpolate(value).replace("redis:6379", redis_host).replace("http://minio:9000", s3_endpoint)
        env[key] = value
    assert env["DEEPFAKE_DATABASE_URL"].startswith("postgresql+psycopg://deepfake:")
    env["DEEPFAKE_DATABASE_URL"] = database_url  # the fixture's own role and database
    env["DEEPFAKE_YUNET_MODEL"] = str(shared_file("models/face_detection_yunet.onnx"))  # the compose's ./models
    if "DEEPFAKE_HOST" in env:
        env.update(DEEPFAKE_HOST="127.0.0.1", DEEPFAKE_PORT="0")  # 0.0.0.0:8000 in a container
    env.update(DEEPFAKE_HEATMAPS="0", DEEPFAKE_THREADS="1")
    return env


def command(service: dict) -> list[str]:
    program, *args = service["command"]
    return [str(VENV_BIN / "gunicorn") if program == "gunicorn" else sys.executable, *args]


@pytest.mark.slow
def test_compose_api_and_worker_services_analyse_an_upload(tmp_path, postgres, redis_server, s3_server, face_photo):
    settings, client = s3_server
    found = services()
    database = postgres.new_database()
    api_env = here(found["api-1"], redis_server.url, database, settings["S3_ENDPOINT_URL"], tmp_path / "api")
    worker_env = here(found["worker-1"], redis_server.url, database, settings["S3_ENDPOINT_URL"], tmp_path / "worker")
    assert api_env["DEEPFAKE_S3_BUCKET"] == settings["S3_BUCKET"]

    # Step 2 of README "Deploying": an API key first (the API listens on 0.0.0.0 in its container).
    created = subprocess.run(
        [sys.executable, "-m", "server", "keys", "create", "ops"],
        cwd=ROOT,
        env=api_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()

    worker = Worker(worker_env, tmp_path / "worker.log")
    api = None
    try:
        worker.wait_started()
        api = ServerProcess(command(found["api-1"]), api_env, tmp_path / "api.log")
        ready = wait_ready(api)
        assert ready["queue"] == "celery" and ready["jobs"]["broker"]["workers"] == 1
        assert requests.post(api.url("/api/v1/analyze"), json={"url": "http://127.0.0.1/x.mp4"}, timeout=30).status_code == 401
        headers = {"Authorization": f"Bearer {key}"}
        with open(face_photo, "rb") as handle:
            answer = requests.post(api.url("/api/v1/analyze"), files={"file": handle}, headers=headers, timeout=60)
        assert answer.status_code in (200, 202), answer.text
        body = answer.json()
        job = body if "id" in body else finish_with_key(api, body["job_id"], headers)
        detail = requests.get(api.url(f"/api/v1/analyses/{job['id']}"), headers=headers, timeout=30).json()
        assert detail["report"]["verdict"] in ("real", "uncertain")  # a real person's photo
        keys = [item["Key"] for item in client.list_objects_v2(Bucket=settings["S3_BUCKET"]).get("Contents", [])]
        assert any(key.endswith("report.json") for key in keys), keys  # written by the worker into the bucket
    finally:
        if api is not None:
            api.stop()
        worker.stop()


def finish_with_key(api: ServerProcess, job_id: str, headers: dict) -> dict:
    for _ in range(10):
        job = requests.get(api.url(f"/api/v1/jobs/{job_id}?wait=20"), headers=headers, timeout=60).json()
        if job["status"] in ("done", "failed"):
            assert job["status"] == "done", job
            return job
    raise AssertionError(f"job {job_id} did not finish: {job}")

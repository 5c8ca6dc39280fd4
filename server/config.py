"""The server's settings: one typed class, `ServerSettings`, read once at start-up and handed to every part.

A field is read from `DEEPFAKE_<FIELD>` (detector/settings.py: the model, the limits and the URL policy come from
`ServingSettings`, the same variables and defaults the demo reads). `load_settings` starts from the defaults,
applies the variables, then overrides named like config keys (the field in capitals: the factory's `test_config`).
Nothing is built at import: the model defaults look for the CLIP tower on disk. The README's table is tested
against `ENVIRONMENT`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from detector.settings import ServingSettings, SettingsError, env_field, environment, values_from_env


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return str(Path(base) / "deepfake-checker")


def resolve_data_dir(configured: str | None) -> Path:
    return Path(configured or default_data_dir()).expanduser().resolve()


def database_path(data_dir: Path) -> Path:
    return data_dir / "deepfake.sqlite3"


def database_target(settings: ServerSettings, data_dir: Path) -> str | Path:
    """DATABASE_URL when set, else the SQLite file in the data folder."""
    return settings.database_url or database_path(data_dir)


@dataclass(frozen=True)
class ServerSettings(ServingSettings):
    host: str = "127.0.0.1"
    port: int = 8000
    http_head_timeout_s: float = 10.0  # gunicorn only: a request head not complete by then closes its connection
    public_url: str = ""  # e.g. https://checker.example.com when behind a reverse proxy; else the request's host
    trust_proxy: bool = False  # honour X-Forwarded-For/-Proto/-Host from one reverse proxy
    data_dir: str | None = None  # None: default_data_dir(), resolved in create_app
    database_url: str = ""  # e.g. postgresql+psycopg://user:password@host/db; empty: SQLite in the data folder
    heatmaps: bool = True  # Grad-CAM heatmaps in the HTML report
    # Jobs
    workers: int = 2  # analyses at once
    fetch_workers: int = 8  # URL fetches at once (network-bound threads, apart from the analyses)
    client_fetches: int = 2  # fetches at once for one client (API key, or address without one)
    client_analyses: int = 0  # analyses at once for one client; 0: all workers but one (at least one)
    client_url_jobs: int = 8  # URL jobs one client may have waiting for or in a fetch; more answer 429
    fetch_queue_wait_s: float = 20.0  # a link waiting longer for a fetch worker fails: 503 fetch_queue_timeout
    queue_size: int = 32  # jobs waiting for a worker; more answer 503
    max_wait_s: float = 120.0  # longest a request waits for its result (POST ?wait= and image uploads)
    max_poll_wait_s: float = 60.0  # longest GET /jobs/<id>?wait= holds a request
    waiting_requests: int = 24  # requests that may wait (long-poll) at once; more answer at once
    client_waiting: int = 8  # of which one client's
    retry_after_s: int = 10  # what a 503 for a full queue (and a 429 for too many URL jobs) advises
    job_timeout_s: float = 600.0  # an analysis running longer is stopped (504 job_timeout)
    job_retention_s: float = 7 * 86400.0  # ended jobs (and uploads nobody retried) are deleted after this
    db_timeout_s: float = 30.0  # how long a database write waits for another writer
    # Scaling out (server/celeryapp.py)
    queue: str = "local"  # local: this process runs the jobs; celery: workers (python -m server worker) do
    broker_url: str = ""  # e.g. redis://127.0.0.1:6379/0 (DEEPFAKE_QUEUE=celery)
    broker_visibility_s: float = 0.0  # a lost worker's job goes to another worker after this; 0: job + fetch timeout + 60 s
    job_heartbeat_s: float = 5.0  # a worker refreshes its running job this often; 3 missed beats: the job is taken over
    shared_data_dir: bool = False  # celery without S3: every API process and worker shares DATA_DIR (one host)
    worker_process: bool = env_field(False, env=None)  # set by python -m server worker
    # Limits (the others: ServingSettings)
    max_json_bytes: int = 64 * 1024  # JSON request bodies (uploads have max_upload_bytes)
    max_page_bytes: int = 8 * 1024**2  # an HTML page a link leads to, decoded (gzip bombs); larger: 413
    # Memory of one analysis: a picture over max_decoded_pixels is analysed scaled down, and the RGB of the frames
    # one analysis keeps stays under max_decoded_bytes (more frames asked for: each scaled down further)
    max_decoded_pixels: int = 16_000_000
    max_decoded_bytes: int = 1024**3
    # Cache and storage
    cache_ttl_s: float = 24 * 3600.0  # 0 disables the cache
    # a link the same client sent this recently is answered without fetching it again; any other answer comes from
    # the content fetched (what a link serves may change; another client's request never decides it)
    url_cache_ttl_s: float = 300.0
    keep_media: bool = False
    min_free_disk_mb: float = 100.0  # /readyz answers 503 while the uploads or temporary folder has less free
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key_id: str = ""  # empty: boto3's usual credential chain (AWS_* variables, profiles, roles)
    s3_secret_access_key: str = ""
    # Security
    cors_origins: tuple[str, ...] = ()  # e.g. chrome-extension://<extension id>, http://127.0.0.1:7860 (the demo)
    rate_limit: str = "30/minute"  # POST /api/v1/analyze, per API key (or per IP without keys)
    rate_limit_default: str = "600/minute"  # every other API route
    rate_limit_storage_uri: str = "memory://"
    # Alerts
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str = ""
    alert_verdicts: tuple[str, ...] = ("fake",)
    alert_min_probability: float = 0.8
    webhook_retries: int = 5
    webhook_backoff_s: float = 2.0
    webhook_timeout_s: float = 10.0
    webhook_allow_private: bool = False  # deliver to private/loopback addresses (a receiver on the same network)
    log_level: str = "INFO"

    @property
    def max_request_bytes(self) -> int:
        """The largest request body: an upload with room for its multipart wrapping."""
        return int(self.max_upload_bytes) + 64 * 1024

    def model_threads(self) -> int:
        """OpenCV and ONNX Runtime threads of each analysis worker: THREADS, or the cores shared among the workers."""
        return self.threads or max(1, (os.cpu_count() or 1) // max(1, self.workers))

    def check(self) -> None:
        """Refuse settings that cannot work together (ConfigError, naming the variables)."""
        if self.queue not in ("local", "celery"):
            raise ConfigError(f"DEEPFAKE_QUEUE={self.queue!r}: choose local or celery")
        if self.queue == "celery" and not self.broker_url:
            raise ConfigError("DEEPFAKE_QUEUE=celery needs DEEPFAKE_BROKER_URL, e.g. redis://127.0.0.1:6379/0")
        if self.queue == "celery" and not self.s3_bucket and not self.shared_data_dir:
            raise ConfigError(
                "DEEPFAKE_QUEUE=celery needs DEEPFAKE_S3_BUCKET: uploads and reports go through it to workers and API "
                "processes on other hosts. On one host, or with a data folder they all share, set DEEPFAKE_SHARED_DATA_DIR=1"
            )


# Environment variable -> config key
ENVIRONMENT: dict[str, str] = {variable: name.upper() for variable, name in environment(ServerSettings).items()}

ConfigError = SettingsError


def load_settings(environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> ServerSettings:
    """The settings of this process: defaults, the DEEPFAKE_* variables of `environ`, then `overrides` (config keys:
    fields in capitals); the data folder resolved. Call it at start-up: the model defaults look for the CLIP tower."""
    names = {f.name.upper(): f.name for f in fields(ServerSettings)}
    unknown = sorted(set(overrides or {}) - set(names))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    given = {**values_from_env(ServerSettings, environ), **{names[key]: value for key, value in (overrides or {}).items()}}
    settings = ServerSettings(**given)
    return replace(settings, data_dir=str(resolve_data_dir(settings.data_dir)))


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The config keys the DEEPFAKE_* variables of `environ` set, with their typed values."""
    return {name.upper(): value for name, value in values_from_env(ServerSettings, environ).items()}


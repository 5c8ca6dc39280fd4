"""The server's settings: defaults, and how `DEEPFAKE_*` environment variables map onto them.

`create_app` starts from `DEFAULTS`, applies `settings_from_env(os.environ)`, then the factory's `test_config`.
Every setting is a Flask config key; the README's table lists the environment variable of each.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detector.env import parse_bool


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return str(Path(base) / "deepfake-checker")


def resolve_data_dir(configured: str | None) -> Path:
    return Path(configured or default_data_dir()).expanduser().resolve()


def database_path(data_dir: Path) -> Path:
    return data_dir / "deepfake.sqlite3"


DEFAULTS: dict[str, Any] = {
    "HOST": "127.0.0.1",
    "PORT": 8000,
    "PUBLIC_URL": "",  # e.g. https://checker.example.com when behind a reverse proxy; else the request's host
    "TRUST_PROXY": False,  # honour X-Forwarded-For/-Proto/-Host from one reverse proxy
    "DATA_DIR": None,  # None: default_data_dir(), resolved in create_app
    # Models
    "MODEL": "default",  # the model analyses use unless a request names another allowed one
    "MODELS": [],  # other model names requests may ask for (checkpoint folders or Hub ids)
    "FACE_DETECTOR": None,  # auto | yunet | dlib (None: the checkpoint's choice)
    "THREADS": 0,  # torch/OpenCV threads (0: the CPU count divided by WORKERS)
    "HEATMAPS": True,  # Grad-CAM heatmaps in the HTML report
    # Jobs
    "WORKERS": 2,  # analyses at once
    "FETCH_WORKERS": 8,  # URL fetches at once (network-bound threads, apart from the analyses)
    "CLIENT_FETCHES": 2,  # fetches at once for one client (API key, or address without one)
    "CLIENT_URL_JOBS": 8,  # URL jobs one client may have waiting for or in a fetch; more answer 429
    "QUEUE_SIZE": 32,  # jobs waiting for a worker; more answer 503
    "MAX_WAIT_S": 120.0,  # longest a request waits for its result (POST ?wait= and image uploads)
    "MAX_POLL_WAIT_S": 60.0,  # longest GET /jobs/<id>?wait= holds a request
    "WAITING_REQUESTS": 24,  # requests that may wait (long-poll) at once; more answer at once
    "CLIENT_WAITING": 8,  # of which one client's
    "RETRY_AFTER_S": 10,  # what a 503 for a full queue (and a 429 for too many URL jobs) advises
    "JOB_TIMEOUT_S": 600.0,  # an analysis running longer makes /readyz report its worker as stuck
    "JOB_RETENTION_S": 7 * 86400.0,  # ended jobs (and uploads nobody retried) are deleted after this
    "DB_TIMEOUT_S": 30.0,  # how long a database write waits for another writer
    # Limits
    "MAX_UPLOAD_BYTES": 100 * 1024**2,
    "MAX_FETCH_BYTES": 200 * 1024**2,
    "MAX_DURATION_S": 600.0,
    "MAX_PIXELS": 40_000_000,
    "FETCH_TIMEOUT_S": 60.0,
    "MAX_FRAMES": 64,
    "MAX_JSON_BYTES": 64 * 1024,  # JSON request bodies (uploads have MAX_UPLOAD_BYTES)
    "ALLOW_PRIVATE_URLS": False,
    "URL_TRUSTED_ENDPOINTS": [],  # (ip, port) pairs treated as public: tests only, no environment variable
    # Cache and storage
    "CACHE_TTL_S": 24 * 3600.0,  # 0 disables the cache
    "KEEP_MEDIA": False,
    "S3_BUCKET": "",
    "S3_PREFIX": "",
    "S3_ENDPOINT_URL": "",
    "S3_REGION": "",
    "S3_ACCESS_KEY_ID": "",  # empty: boto3's usual credential chain (AWS_* variables, profiles, roles)
    "S3_SECRET_ACCESS_KEY": "",
    # Security
    "CORS_ORIGINS": [],  # e.g. chrome-extension://<extension id>, http://127.0.0.1:7860 (the demo)
    "RATE_LIMIT": "30/minute",  # POST /api/v1/analyze, per API key (or per IP without keys)
    "RATE_LIMIT_DEFAULT": "600/minute",  # every other API route
    "RATE_LIMIT_STORAGE_URI": "memory://",
    # Alerts
    "WEBHOOK_URLS": [],
    "WEBHOOK_SECRET": "",
    "ALERT_VERDICTS": ["fake"],
    "ALERT_MIN_PROBABILITY": 0.8,
    "WEBHOOK_RETRIES": 5,
    "WEBHOOK_BACKOFF_S": 2.0,
    "WEBHOOK_TIMEOUT_S": 10.0,
    "WEBHOOK_ALLOW_PRIVATE": False,  # deliver to private/loopback addresses (a receiver on the same network)
    "LOG_LEVEL": "INFO",
}

# Environment variable suffix (after DEEPFAKE_) -> (config key, type)
ENVIRONMENT: dict[str, tuple[str, type | str]] = {
    "HOST": ("HOST", str),
    "PORT": ("PORT", int),
    "PUBLIC_URL": ("PUBLIC_URL", str),
    "TRUST_PROXY": ("TRUST_PROXY", bool),
    "DATA_DIR": ("DATA_DIR", str),
    "MODEL": ("MODEL", str),
    "MODELS": ("MODELS", list),
    "FACES": ("FACE_DETECTOR", str),
    "THREADS": ("THREADS", int),
    "HEATMAPS": ("HEATMAPS", bool),
    "WORKERS": ("WORKERS", int),
    "FETCH_WORKERS": ("FETCH_WORKERS", int),
    "CLIENT_FETCHES": ("CLIENT_FETCHES", int),
    "CLIENT_URL_JOBS": ("CLIENT_URL_JOBS", int),
    "QUEUE_SIZE": ("QUEUE_SIZE", int),
    "MAX_WAIT_S": ("MAX_WAIT_S", float),
    "MAX_POLL_WAIT_S": ("MAX_POLL_WAIT_S", float),
    "WAITING_REQUESTS": ("WAITING_REQUESTS", int),
    "CLIENT_WAITING": ("CLIENT_WAITING", int),
    "RETRY_AFTER_S": ("RETRY_AFTER_S", int),
    "JOB_TIMEOUT_S": ("JOB_TIMEOUT_S", float),
    "JOB_RETENTION_S": ("JOB_RETENTION_S", float),
    "DB_TIMEOUT_S": ("DB_TIMEOUT_S", float),
    "MAX_UPLOAD_BYTES": ("MAX_UPLOAD_BYTES", int),
    "MAX_FETCH_BYTES": ("MAX_FETCH_BYTES", int),
    "MAX_DURATION_S": ("MAX_DURATION_S", float),
    "MAX_PIXELS": ("MAX_PIXELS", int),
    "FETCH_TIMEOUT_S": ("FETCH_TIMEOUT_S", float),
    "MAX_FRAMES": ("MAX_FRAMES", int),
    "MAX_JSON_BYTES": ("MAX_JSON_BYTES", int),
    "ALLOW_PRIVATE_URLS": ("ALLOW_PRIVATE_URLS", bool),
    "CACHE_TTL_S": ("CACHE_TTL_S", float),
    "KEEP_MEDIA": ("KEEP_MEDIA", bool),
    "S3_BUCKET": ("S3_BUCKET", str),
    "S3_PREFIX": ("S3_PREFIX", str),
    "S3_ENDPOINT_URL": ("S3_ENDPOINT_URL", str),
    "S3_REGION": ("S3_REGION", str),
    "S3_ACCESS_KEY_ID": ("S3_ACCESS_KEY_ID", str),
    "S3_SECRET_ACCESS_KEY": ("S3_SECRET_ACCESS_KEY", str),
    "CORS_ORIGINS": ("CORS_ORIGINS", list),
    "RATE_LIMIT": ("RATE_LIMIT", str),
    "RATE_LIMIT_DEFAULT": ("RATE_LIMIT_DEFAULT", str),
    "RATE_LIMIT_STORAGE_URI": ("RATE_LIMIT_STORAGE_URI", str),
    "WEBHOOK_URLS": ("WEBHOOK_URLS", list),
    "WEBHOOK_SECRET": ("WEBHOOK_SECRET", str),
    "ALERT_VERDICTS": ("ALERT_VERDICTS", list),
    "ALERT_MIN_PROBABILITY": ("ALERT_MIN_PROBABILITY", float),
    "WEBHOOK_RETRIES": ("WEBHOOK_RETRIES", int),
    "WEBHOOK_BACKOFF_S": ("WEBHOOK_BACKOFF_S", float),
    "WEBHOOK_TIMEOUT_S": ("WEBHOOK_TIMEOUT_S", float),
    "WEBHOOK_ALLOW_PRIVATE": ("WEBHOOK_ALLOW_PRIVATE", bool),
    "LOG_LEVEL": ("LOG_LEVEL", str),
}


class ConfigError(ValueError):
    """A DEEPFAKE_* variable has a value that cannot be used."""


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings named by DEEPFAKE_* variables in `environ`, converted to their types."""
    settings: dict[str, Any] = {}
    for suffix, (key, kind) in ENVIRONMENT.items():
        raw = environ.get(f"DEEPFAKE_{suffix}")
        if raw is None:
            continue
        try:
            if kind is bool:
                settings[key] = parse_bool(raw)
            elif kind is list:
                settings[key] = [item.strip() for item in raw.split(",") if item.strip()]
            elif kind in (int, float):
                settings[key] = kind(raw.strip())
            else:
                settings[key] = raw.strip()
        except ValueError as exc:
            raise ConfigError(f"DEEPFAKE_{suffix}={raw!r}: {exc}") from None
    return settings

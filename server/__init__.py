"""The Flask backend: fetch media from post URLs, analyse it with the core, store the history, send alerts.

    from server import create_app
    app = create_app()                       # settings from DEEPFAKE_* environment variables
    app = create_app({"DATA_DIR": "/tmp/x"}) # or given to the factory (tests)

Run it with `python -m server [--host H] [--port P]` (development) or `gunicorn 'server:create_app()' -c
server/gunicorn.conf.py` (production). Importing this package starts nothing; `create_app` opens the database,
starts the job workers and loads the default model in the background; `shutdown(app)` stops them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request

from detector.errors import DetectorError

from .config import DEFAULTS, ConfigError, database_target, resolve_data_dir, settings_from_env

__all__ = ["create_app", "shutdown"]


@dataclass
class Services:
    """Everything one app holds on to: found under `app.extensions["deepfake"]`."""

    db: Any
    store: Any
    models: Any
    analyses: Any
    notifier: Any
    limiter: Any
    waiting: Any

    def stop(self) -> None:
        self.analyses.stop()
        self.notifier.stop()


def create_app(test_config: dict | None = None) -> Flask:
    from detector.pool import ModelPool

    from .alerts import WebhookNotifier
    from .analysis import AnalysisService
    from .artefacts import make_store
    from .db import Database
    from .waiting import WaitingRoom

    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.update(settings_from_env(os.environ))
    if test_config:
        app.config.update(test_config)
    config = app.config
    logging.basicConfig(level=config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    data_dir = resolve_data_dir(config["DATA_DIR"])
    config["DATA_DIR"] = str(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    config["MAX_CONTENT_LENGTH"] = int(config["MAX_UPLOAD_BYTES"]) + 64 * 1024  # room for the multipart wrapping
    config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False

    if config["QUEUE"] not in ("local", "celery"):
        raise ConfigError(f"DEEPFAKE_QUEUE={config['QUEUE']!r}: choose local or celery")
    if config["QUEUE"] == "celery" and not config["BROKER_URL"]:
        raise ConfigError("DEEPFAKE_QUEUE=celery needs DEEPFAKE_BROKER_URL, e.g. redis://127.0.0.1:6379/0")
    if config["QUEUE"] == "celery" and not config["S3_BUCKET"] and not config["SHARED_DATA_DIR"]:
        raise ConfigError(
            "DEEPFAKE_QUEUE=celery needs DEEPFAKE_S3_BUCKET: uploads and reports go through it to workers and API "
            "processes on other hosts. On one host, or with a data folder they all share, set DEEPFAKE_SHARED_DATA_DIR=1"
        )

    if config["TRUST_PROXY"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    db = Database(database_target(config, data_dir), timeout_s=float(config["DB_TIMEOUT_S"]))
    store = make_store(config, data_dir)
    models = ModelPool(
        config["MODEL"],
        config["MODELS"],
        face_detector=config["FACE_DETECTOR"],
        threads=config["THREADS"] or max(1, (os.cpu_count() or 1) // max(1, config["WORKERS"])),
        preloaded=config.get("DETECTORS"),  # tests hand over already loaded detectors
    )
    try:
        notifier = WebhookNotifier(
            config["WEBHOOK_URLS"],
            config["WEBHOOK_SECRET"],
            config["WEBHOOK_RETRIES"],
            config["WEBHOOK_BACKOFF_S"],
            config["WEBHOOK_TIMEOUT_S"],
            allow_private=bool(config["WEBHOOK_ALLOW_PRIVATE"]),
        )
    except DetectorError as exc:
        raise ConfigError(f"DEEPFAKE_WEBHOOK_URLS: {exc.message}") from None
    (data_dir / "tmp").mkdir(exist_ok=True)
    analyses = AnalysisService(config, db, store, models, notifier, data_dir / "uploads", data_dir / "tmp")
    _response_headers(app)  # before the rate limiter: its header hook must run first (Flask runs them in reverse)
    limiter = _rate_limiter(app, db)
    waiting = WaitingRoom(config["WAITING_REQUESTS"], config["CLIENT_WAITING"])
    app.extensions["deepfake"] = Services(db, store, models, analyses, notifier, limiter, waiting)

    from . import api, pages
    from .errors import register_error_handlers

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    register_error_handlers(app)
    _cors(app)

    if config["QUEUE"] == "local" or config["WORKER_PROCESS"]:
        models.start()  # an API process in front of Celery workers runs no model
    notifier.start()
    analyses.start()
    return app


def shutdown(app: Flask) -> None:
    """Stop the app's workers and background threads (queued jobs stay stored and run at the next start)."""
    services: Services | None = app.extensions.get("deepfake")
    if services is not None:
        services.stop()


# Security headers of every answer. Report pages are HTML built only from our own data: no script at all, pictures
# and styles from this server, never framed, and no Referer (a report's link is the permission to read it).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# Statuses whose Retry-After means something: rate limited, and busy or not ready yet.
RETRY_AFTER_STATUSES = (429, 503)


def _response_headers(app: Flask) -> None:
    @app.after_request
    def headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if app.config["CORS_ORIGINS"] and request.path.startswith("/api/"):
            response.vary.add("Origin")  # the answer depends on the Origin: caches must keep one per origin
        # Flask-Limiter puts Retry-After (seconds to its window's reset) on every answer, and over our own on a
        # 503 or a 429 of ours; clients wait that long before their next request. Keep it where it means
        # something: on its own 429s, and ours where we set one.
        if response.status_code not in RETRY_AFTER_STATUSES:
            response.headers.pop("Retry-After", None)
        elif "retry_after" in g:
            response.headers["Retry-After"] = g.retry_after
        return response


def _rate_limiter(app: Flask, db):
    from flask_limiter import Limiter

    from .auth import client_identity

    def limit_for_this_route() -> str:
        config = current_app.config
        return config["RATE_LIMIT"] if request.endpoint == "api.analyze" else config["RATE_LIMIT_DEFAULT"]

    limiter = Limiter(
        key_func=lambda: client_identity(db),
        app=app,
        default_limits=[limit_for_this_route],
        storage_uri=app.config["RATE_LIMIT_STORAGE_URI"],
        headers_enabled=True,
        retry_after="delta-seconds",
    )

    @limiter.request_filter
    def exempt() -> bool:
        # Probes, preflights and the report pages (opened by people, found by unguessable links) are not limited.
        return request.method == "OPTIONS" or (request.endpoint or "").startswith("pages.")

    return limiter


def _cors(app: Flask) -> None:
    origins = app.config["CORS_ORIGINS"]
    if not origins:
        return  # no cross-origin access at all
    from flask_cors import CORS

    CORS(
        app,
        resources={r"/api/*": {"origins": origins}},
        allow_headers=["Content-Type", "Authorization", "X-API-Key"],
        expose_headers=["Retry-After", "Location", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"],
        methods=["GET", "POST", "DELETE", "OPTIONS"],
        max_age=600,
    )

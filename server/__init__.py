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

from flask import Flask, g, request

from .config import ServerSettings, load_settings
from .services import Services, build_services

__all__ = ["create_app", "shutdown"]


def create_app(test_config: dict | None = None) -> Flask:
    """The app of the settings the environment gives, with `test_config` over them (config keys: the settings'
    fields in capitals; `DETECTORS`: detectors already loaded, by model name)."""
    overrides = dict(test_config or {})
    preloaded = overrides.pop("DETECTORS", None)  # tests hand over already loaded detectors
    settings = load_settings(os.environ, overrides)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings.check()

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes  # Flask's own limit on request bodies
    app.json.sort_keys = False
    if settings.trust_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    services = build_services(settings, preloaded)
    _response_headers(app, settings)  # before the rate limiter: its header hook must run first (Flask runs them in reverse)
    services.limiter = _rate_limiter(app, services.db, settings)
    services.waiting = _waiting_room(settings)
    app.extensions["deepfake"] = services

    from . import api, pages
    from .errors import register_error_handlers

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    register_error_handlers(app)
    _cors(app, settings)
    services.start()
    return app


def shutdown(app: Flask) -> None:
    """Stop the app's workers and background threads (queued jobs stay stored and run at the next start)."""
    services: Services | None = app.extensions.get("deepfake")
    if services is not None:
        services.stop()


def _waiting_room(settings: ServerSettings):
    from .waiting import WaitingRoom

    return WaitingRoom(settings.waiting_requests, settings.client_waiting)


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


def _response_headers(app: Flask, settings: ServerSettings) -> None:
    @app.after_request
    def headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if settings.cors_origins and request.path.startswith("/api/"):
            response.vary.add("Origin")  # the answer depends on the Origin: caches must keep one per origin
        # Flask-Limiter puts Retry-After (seconds to its window's reset) on every answer, and over our own on a
        # 503 or a 429 of ours; clients wait that long before their next request. Keep it where it means
        # something: on its own 429s, and ours where we set one.
        if response.status_code not in RETRY_AFTER_STATUSES:
            response.headers.pop("Retry-After", None)
        elif "retry_after" in g:
            response.headers["Retry-After"] = g.retry_after
        return response


def _rate_limiter(app: Flask, db, settings: ServerSettings):
    from flask_limiter import Limiter

    from .auth import client_identity

    def limit_for_this_route() -> str:
        return settings.rate_limit if request.endpoint == "api.analyze" else settings.rate_limit_default

    limiter = Limiter(
        key_func=lambda: client_identity(db),
        app=app,
        default_limits=[limit_for_this_route],
        storage_uri=settings.rate_limit_storage_uri,
        headers_enabled=True,
        retry_after="delta-seconds",
    )

    @limiter.request_filter
    def exempt() -> bool:
        # Probes, preflights and the report pages (opened by people, found by unguessable links) are not limited.
        return request.method == "OPTIONS" or (request.endpoint or "").startswith("pages.")

    return limiter


def _cors(app: Flask, settings: ServerSettings) -> None:
    origins = settings.cors_origins
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

"""Every error the server answers is JSON `{"error": {"code", "message"}}` with the right status; mapped once here.

Core errors (`DetectorError`) carry a stable code and no HTTP status: `HTTP_STATUS` (server/statuses.py) maps each code to one; the
service and job layers' errors (`server.serviceerrors.ServiceError`) get theirs from `SERVICE_STATUSES`, here, as do
the failed jobs they recorded (`failed_job_status`); HTTP errors from Flask/werkzeug (404, 405, 413, 429...) get a
code named after the status; a write refused for want of disk space (anywhere: an upload, a spooled form, a
fetched file) is `507 insufficient_storage`; anything unexpected is logged and answered as a plain 500.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, g, has_request_context, jsonify
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from detector.errors import DetectorError, storage_error

from .context import current_settings
from .serviceerrors import FETCH_QUEUE_TIMEOUT, INTERRUPTED, ServiceError
from .statuses import class_status, http_status

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "upload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}


# The status of each service error's code (server/serviceerrors.py), and of the failures the job layer records.
SERVICE_STATUSES = {
    "bad_request": 400,
    "bad_option": 400,
    "not_found": 404,
    "not_retryable": 409,
    "upload_gone": 410,
    "too_many_jobs": 429,
    "queue_full": 503,
    "cache_miss": 503,
    "job_timeout": 504,
    INTERRUPTED: 503,  # a job whose process stopped: the server's side
    FETCH_QUEUE_TIMEOUT: 503,  # every fetch worker held by sources that do not answer
    "internal_error": 500,
}


def service_status(exc: ServiceError) -> int:
    return SERVICE_STATUSES.get(exc.code, 500)


def core_statuses() -> dict[str, int]:
    """The status of every core error's code, by `http_status`'s rule (a code not in `HTTP_STATUS` takes its nearest
    base class's)."""
    statuses, classes = {}, [DetectorError]
    while classes:
        cls = classes.pop()
        statuses.setdefault(cls.code, class_status(cls))
        classes += cls.__subclasses__()
    return statuses


def failed_job_status(code: str | None, stored: int | None = None) -> int:
    """The status a failed job answers with, from its error code; `stored`: what rows written before the codes were
    mapped here hold."""
    return SERVICE_STATUSES.get(code or "") or core_statuses().get(code or "") or stored or 500


def protocol_error(status: int, message: str) -> bytes:
    """The JSON body of an error the HTTP server itself answers (request line or headers over its limits, a
    malformed request) before the app sees the request."""
    body = {"error": {"code": HTTP_CODES.get(status, "http_error"), "message": message}}
    return json.dumps(body).encode()


class ApiError(Exception):
    """An error of the HTTP layer itself (bad options, unknown ids, a full queue...)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra


def error_response(status: int, code: str, message: str, headers: dict | None = None, **extra):
    response = jsonify({"error": {"code": code, "message": message}, **extra})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    if has_request_context() and "Retry-After" in response.headers:
        g.retry_after = response.headers["Retry-After"]  # ours, whatever the rate limiter adds later
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
        return error_response(service_status(exc), exc.code, exc.message, headers)

    @app.errorhandler(DetectorError)
    def detector_error(exc: DetectorError):
        return error_response(http_status(exc), exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            limit = current_settings().max_request_bytes
            message = f"the upload is over the {limit / 1e6:.0f} MB limit"
        elif status == 429:
            message = f"too many requests: the limit is {exc.description}; retry later"
        elif status == 404:
            message = "no such resource"
        elif status == 405:
            message = f"{exc.name.lower()}: see /api/v1/openapi.json"
        headers = {k: v for k, v in exc.get_headers() if k.lower() not in ("content-type", "content-length")}
        return error_response(status, HTTP_CODES.get(status, "http_error"), message, headers)

    @app.errorhandler(SQLAlchemyError)
    def database_error(exc: SQLAlchemyError):
        log.error("database error: %s", exc)
        return error_response(503, "database_unavailable", "the server cannot use its database just now; retry shortly", {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(500, "internal_error", "the server failed unexpectedly; the error was logged")

    @app.errorhandler(OSError)
    def os_error(exc: OSError):
        full = storage_error(exc)
        if full is None:
            return unexpected(exc)
        log.error("a write failed for want of disk space: %s", exc)
        return error_response(http_status(full), full.code, full.message)

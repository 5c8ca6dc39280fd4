"""Every error the server answers is JSON `{"error": {"code", "message"}}` with the right status; mapped once here.

Core errors (`DetectorError`) carry a stable code and no HTTP status: `HTTP_STATUS` below maps each code to one;
HTTP errors from Flask/werkzeug (404, 405, 413,
429...) get a code named after the status; anything unexpected is logged and answered as a plain 500.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, g, has_request_context, jsonify
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from detector.errors import DetectorError

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


# The status a core error (detector/errors.py, and the shells' own DetectorError subclasses) is answered with, by its
# stable code; a code not listed takes its nearest base class's, else 500. The one place these statuses are decided.
HTTP_STATUS = {
    "detector_error": 500,
    # the input
    "bad_media": 422,
    "unsupported_media": 415,
    "file_not_found": 404,
    "empty_media": 422,
    "corrupt_media": 422,
    "media_too_large": 413,
    "media_too_long": 413,
    # models
    "model_error": 500,
    "model_not_found": 404,
    "unknown_model": 400,
    "model_format": 422,
    "model_file_missing": 422,
    "model_offline": 503,
    "model_upload_failed": 502,
    "face_detector": 500,
    # links and fetching
    "bad_url": 400,
    "invalid_url": 400,
    "unsupported_url_scheme": 400,
    "unsafe_url": 400,
    "host_not_found": 400,
    "no_media_found": 422,
    "fetch_failed": 502,
    "host_lookup_failed": 502,
    "fetch_timeout": 504,
    # the shells' and tools' own
    "bad_input": 400,
    "bad_dataset": 422,
    "bad_evaluation_report": 422,
}


def http_status(exc: DetectorError) -> int:
    """The HTTP status of a core error: its code's in `HTTP_STATUS`, else its nearest base class's, else 500."""
    for cls in type(exc).__mro__:
        status = HTTP_STATUS.get(getattr(cls, "code", None))
        if status is not None:
            return status
    return 500


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

    @app.errorhandler(DetectorError)
    def detector_error(exc: DetectorError):
        return error_response(http_status(exc), exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"the upload is over the {limit / 1e6:.0f} MB limit" if limit else "the upload is too large"
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
